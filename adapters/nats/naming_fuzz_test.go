package nats

import (
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

// FuzzNames: stream and consumer names are valid JetStream names, differ
// for different topics and groups, and map back to the name.
func FuzzNames(f *testing.F) {
	f.Add("a.b", "gx.y", "a_b", "gx_y")
	f.Add("a", "b__c", "a__b", "c")
	f.Add("a-b.c", "x", "a-b", "c.x")
	f.Fuzz(func(t *testing.T, t1, g1, t2, g2 string) {
		for _, n := range []string{t1, g1, t2, g2} {
			if messaging.ValidateName(n) != nil {
				return
			}
		}
		for _, bind := range []bool{false, true} {
			c := &Client{cfg: config{bindStreams: bind, streamPrefix: "P_"}}
			s1, s2 := c.StreamName(t1), c.StreamName(t2)
			c1, c2 := c.ConsumerName(t1, g1), c.ConsumerName(t2, g2)
			for _, n := range []string{s1, s2, c1, c2} {
				if n == "" || len(n) > maxStoreName || strings.ContainsAny(n, " \t\r\n\f.*>/\\") {
					t.Fatalf("invalid JetStream name %q", n)
				}
			}
			if t1 != t2 && s1 == s2 {
				t.Fatalf("topics %q and %q share stream %q", t1, t2, s1)
			}
			if (bind && t1 != t2 || g1 != g2) && c1 == c2 {
				t.Fatalf("bind %v: %s/%s and %s/%s share consumer %q", bind, t1, g1, t2, g2, c1)
			}
			if back := strings.ReplaceAll(storeName(t1), "~", "."); back != t1 {
				t.Fatalf("storeName(%q) does not map back: %q", t1, back)
			}
		}
	})
}
