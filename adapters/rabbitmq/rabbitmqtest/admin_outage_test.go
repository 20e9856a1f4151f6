package rabbitmqtest_test

import (
	"context"
	"net/url"
	"strings"
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
// first (fault.AdminWhileUnreachable); with streams, Read too; with the
// management API (cut as well), Inspect and Topics through it.
func TestAdminWhileUnreachable(t *testing.T) {
	for _, tc := range []struct{ name, params string }{
		{"amqp", ""},
		{"streams", "&streams=true"},
		{"management", ""}, // Inspect and Topics through the management API
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
			if err != nil {
				t.Fatal(err)
			}
			direct := rabbitmqtest.Open(t, u.String()+"?"+strings.TrimPrefix(tc.params, "&"))
			p := fault.NewProxy(t, u.Host)
			cut := p.Cut
			params := "?unavailable_timeout=1s" + tc.params
			if tc.name == "management" {
				m, err := url.Parse(rabbitmqtest.Management(t))
				if err != nil {
					t.Fatal(err)
				}
				mp := fault.NewProxy(t, m.Host)
				m.Host = mp.Addr()
				params += "&management=" + url.QueryEscape(m.String())
				cut = func() { mp.Cut(); p.Cut() }
			}
			u.Host = p.Addr()
			c := rabbitmqtest.Open(t, u.String()+params)
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
			fault.AdminWhileUnreachable(t, c, cut, topic, group, integration.UniqueName(t, "gone"), nil)
		})
	}
}
