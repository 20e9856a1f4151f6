package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
)

// TestSASL: a private cluster requiring SASL accepts the adapter with PLAIN
// and SCRAM credentials from the URL (publish and read a message), and
// rejects a wrong password without showing it.
func TestSASL(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plain-pw"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "s256-pw"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "s512-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	for _, tc := range []struct{ name, userinfo, mech string }{
		{"plain", "plainuser:plain-pw", "plain"},
		{"scram-sha-256", "scram256:s256-pw", "scram-sha-256"},
		{"scram-sha-512", "scram512:s512-pw", "scram-sha-512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, err := kafka.Open(ctx, "kafka://"+tc.userinfo+"@"+addr+"?sasl="+tc.mech)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer c.Close()
			topic := integration.UniqueName(t, "sasl")
			if err := c.Publish(ctx, topic, &messaging.Message{ID: "authed"}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			got := make(chan string, 1)
			sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
				got <- m.ID
				return nil
			})
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			defer sub.Close()
			select {
			case id := <-got:
				if id != "authed" {
					t.Fatalf("read %s", id)
				}
			case <-ctx.Done():
				t.Fatal("nothing read over SASL")
			}
			if err := c.DeleteTopic(ctx, topic); err != nil {
				t.Errorf("delete topic: %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := messaging.Open(ctx, "kafka://scram256:not-the-pw@"+addr+"?sasl=scram-sha-256")
		if err == nil {
			t.Fatal("open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), "not-the-pw") {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}
