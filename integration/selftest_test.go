package integration_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
)

// brokenEnv selects the broken adapter TestBrokenAdapter runs the suite on.
const brokenEnv = "CONFORMANCE_SELFTEST_BROKEN"

// broken wraps the memory adapter with one deliberate defect.
type broken struct {
	*memory.Client
	defect  string
	counter atomic.Int64
}

func (b *broken) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if b.defect == "drops-messages" {
		var kept []*messaging.Message
		for _, m := range msgs {
			if b.counter.Add(1)%997 != 0 { // lose about one in a thousand, report success
				kept = append(kept, m)
			} else if m.ID == "" {
				m.ID = "dropped-" + time.Now().Format(time.RFC3339Nano)
			}
		}
		return b.Client.Publish(ctx, topic, kept...)
	}
	return b.Client.Publish(ctx, topic, msgs...)
}

func (b *broken) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	switch b.defect {
	case "acks-before-handler":
		// Acknowledge first, then run the handler: failures are lost.
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			func() {
				defer func() { _ = recover() }()
				_ = inner(ctx, m)
			}()
			return nil
		}
	case "loses-headers":
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			m.Header = nil
			return inner(ctx, m)
		}
	}
	return b.Client.Subscribe(ctx, topic, h, opts...)
}

// TestBrokenAdapter is run by TestSuiteCatchesBrokenAdapters in a child
// process; on its own it skips.
func TestBrokenAdapter(t *testing.T) {
	defect := os.Getenv(brokenEnv)
	if defect == "" {
		t.Skip("run by TestSuiteCatchesBrokenAdapters with " + brokenEnv + " set")
	}
	broker, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	integration.RunConformance(t, integration.Harness{
		Name: "broken-" + defect,
		Open: func(t testing.TB) messaging.Client {
			c, err := broker.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			return &broken{Client: c, defect: defect}
		},
		Timeout: 3 * time.Second,
	})
}

// TestSuiteCatchesBrokenAdapters proves the suite can fail: each broken
// adapter must fail the cases its defect breaks.
func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite three times in child processes")
	}
	for defect, mustFail := range map[string][]string{
		"acks-before-handler": {"NackRedelivers", "PanicRedelivers", "RetryAfterDelays", "MaxAttempts"},
		"drops-messages":      {"Count10000"},
		"loses-headers":       {"RoundTrip"},
	} {
		t.Run(defect, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenAdapter$", "-test.v", "-test.count=1", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), brokenEnv+"="+defect)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed an adapter that %s:\n%s", defect, out)
			}
			for _, c := range mustFail {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenAdapter/"+c+" ") {
					t.Errorf("case %s did not fail for an adapter that %s", c, defect)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
}
