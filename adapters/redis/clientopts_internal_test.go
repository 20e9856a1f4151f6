package redis

import (
	"net/url"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestURLClientsHonourContextDeadlines: the go-redis clients made from a
// URL, standalone and cluster (whose nodes' clients inherit it), apply
// context deadlines to reads and writes on their connections (see
// parseURL; the calls' bounds against a server that never answers are
// tested in redistest).
func TestURLClientsHonourContextDeadlines(t *testing.T) {
	for _, raw := range []string{"redis://127.0.0.1:1", "redis://127.0.0.1:1?cluster=true&addr=127.0.0.1:2"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := parseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		var on bool
		switch rc := rc.(type) {
		case *goredis.Client:
			on = rc.Options().ContextTimeoutEnabled
		case *goredis.ClusterClient:
			on = rc.Options().ContextTimeoutEnabled
		default:
			t.Fatalf("%s: %T", raw, rc)
		}
		_ = rc.Close()
		if !on {
			t.Errorf("%s: the go-redis client has ContextTimeoutEnabled false, want true", raw)
		}
	}
}
