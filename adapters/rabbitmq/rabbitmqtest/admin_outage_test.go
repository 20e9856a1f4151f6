package rabbitmqtest_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to the broker cut (the
// connection lost, every redial refused, no resource alarm), each
// topology and admin call fails with messaging.ErrUnavailable within
// about unavailable_timeout, or with its context's error when that ends
// first (fault.AdminWhileUnreachable); with streams, Read too.
func TestAdminWhileUnreachable(t *testing.T) {
	for _, streams := range []string{"false", "true"} {
		t.Run("streams="+streams, func(t *testing.T) {
			u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
			if err != nil {
				t.Fatal(err)
			}
			direct := rabbitmqtest.Open(t, u.String()+"?streams="+streams)
			p := fault.NewProxy(t, u.Host)
			u.Host = p.Addr()
			c := rabbitmqtest.Open(t, u.String()+"?unavailable_timeout=1s&streams="+streams)
			topic, group := integration.UniqueName(t, "adm"), integration.UniqueName(t, "g")
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := direct.DeleteTopic(ctx, topic); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			})
			fault.AdminWhileUnreachable(t, c, p.Cut, topic, group, integration.UniqueName(t, "gone"), nil)
		})
	}
}
