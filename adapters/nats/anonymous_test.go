package nats

import (
	"fmt"
	"testing"

	"github.com/nats-io/nuid"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// TestNameAnonymous: the messages of Receive calls that came without an
// ID get distinct ones, "<NUID>.<n>" with n counting those the
// subscription named (from 9 to 10 within a call: one more digit); a
// message that came with an ID keeps it.
func TestNameAnonymous(t *testing.T) {
	base := nuid.Next()
	r := &coreReceiver{idBase: base, named: 3}
	seen := map[string]bool{}
	named := 3
	for call := range 2 {
		var ds []driver.Delivery
		for i := range 25 {
			m := &messaging.Message{}
			if i%4 == 1 {
				m.ID = fmt.Sprintf("own-%d-%d", call, i)
			}
			ds = append(ds, driver.Delivery{Msg: m})
		}
		r.nameAnonymous(ds)
		for i, d := range ds {
			id := d.Msg.ID
			if i%4 == 1 {
				if want := fmt.Sprintf("own-%d-%d", call, i); id != want {
					t.Errorf("message with ID %s now has %q", want, id)
				}
				continue
			}
			if want := fmt.Sprintf("%s.%d", base, named); id != want {
				t.Errorf("call %d: message %d named %q; want %s", call, i, id, want)
			}
			if seen[id] {
				t.Errorf("ID %q given twice", id)
			}
			seen[id] = true
			named++
		}
	}
	if len(seen) != 2*19 {
		t.Errorf("%d distinct IDs, want %d", len(seen), 2*19)
	}
	r.nameAnonymous(nil) // nothing to name
}
