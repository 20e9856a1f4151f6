package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishHeaderNamesNATSRefuses: header names that messaging.
// ValidateHeader accepts but nats.go refuses to write verbatim (printable
// ASCII with one of "()/,;<=>?@[\]{}, which nats.go's publish rejects with
// ErrBadHeaderMsg) reach the consumer as published, through Publish and
// PublishAsync, in both modes.
func TestPublishHeaderNamesNATSRefuses(t *testing.T) {
	header := messaging.Header{
		"a/b": "slash", "x(y)": "parens", "k=v": "equals", "user@host": "at", "[i]": "brackets",
		`q"uote`: "quote", "a,b;c": "comma", "a<b>?": "angle", `back\slash`: "backslash", "{c}": "braces",
		"plain": "héllo",
	}
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			c := natstest.Open(t, natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "hdr-names")
			t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
			col := integration.NewCollector()
			var opts []messaging.SubscribeOption
			if mode == natsadapter.ModeJetStream {
				opts = append(opts, messaging.Group("g"), messaging.StartAt(messaging.Earliest))
			}
			sub, err := c.Subscribe(t.Context(), topic, col.Handler(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			sync := &messaging.Message{ID: "sync", Payload: []byte("p"), Header: header}
			if err := c.Publish(ctx, topic, sync); err != nil {
				t.Errorf("Publish: %v", err)
			}
			async := &messaging.Message{ID: "async", Payload: []byte("p"), Header: header}
			var asyncErr error
			c.PublishAsync(ctx, topic, async, func(_ *messaging.Message, err error) { asyncErr = err })
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if asyncErr != nil {
				t.Errorf("PublishAsync: %v", asyncErr)
			}
			if t.Failed() {
				return
			}
			col.WaitDistinct(t, 2, 10*time.Second)
			for _, m := range col.Messages() {
				if len(m.Header) != len(header) {
					t.Errorf("%s delivered with header %q, want %q", m.ID, m.Header, header)
					continue
				}
				for k, v := range header {
					if m.Header[k] != v {
						t.Errorf("%s delivered with header %q, want %q", m.ID, m.Header, header)
						break
					}
				}
			}
		})
	}
}
