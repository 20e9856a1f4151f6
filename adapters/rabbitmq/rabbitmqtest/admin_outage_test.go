package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to the broker cut (the
// connection lost, every redial refused, no resource alarm), or the broker
// silent (fault.Proxy.Silence: it takes connections and requests and
// answers nothing, which no error reveals), each topology and admin call
// fails with messaging.ErrUnavailable within about unavailable_timeout, or
// with its context's error when that ends first
// (fault.AdminWhileUnreachable); with streams, Read too; with the
// management API (cut or silent as well), Inspect and Topics through it.
// Then Close returns within about unavailable_timeout too
// (fault.CloseWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	for _, tc := range []struct{ name, params string }{
		{"amqp", ""},
		{"streams", "&streams=true"},
		{"management", ""}, // Inspect and Topics through the management API
	} {
		for _, how := range unreachableWays {
			t.Run(tc.name+"/"+how.name, func(t *testing.T) {
				t.Parallel() // proxies, clients and topics of its own; waits mostly
				u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
				if err != nil {
					t.Fatal(err)
				}
				direct := rabbitmqtest.Open(t, u.String()+"?"+strings.TrimPrefix(tc.params, "&"))
				p := fault.NewProxy(t, u.Host)
				cut := how.of(p)
				params := "?unavailable_timeout=1s" + tc.params
				if tc.name == "management" {
					m, err := url.Parse(rabbitmqtest.Management(t))
					if err != nil {
						t.Fatal(err)
					}
					mp := fault.NewProxy(t, m.Host)
					m.Host = mp.Addr()
					params += "&management=" + url.QueryEscape(m.String())
					cut = func() { how.of(mp)(); how.of(p)() }
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
				fault.CloseWhileUnreachable(t, c)
			})
		}
	}
}

// unreachableWays are the ways TestAdminWhileUnreachable makes the broker
// unreachable through its proxy.
var unreachableWays = []struct {
	name string
	of   func(*fault.Proxy) func()
}{{"cut", func(p *fault.Proxy) func() { return p.Cut }}, {"silent", func(p *fault.Proxy) func() { return p.Silence }}}

// midCallDelay slows the link of the mid-call tests, per chunk forwarded:
// each round trip to the broker takes two.
const midCallDelay = 100 * time.Millisecond

// deleteAtEnd deletes topic through c when the test ends.
func deleteAtEnd(t *testing.T, c *rabbitmq.Client, topic string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DeleteTopic(ctx, topic); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// startMidCall opens a client with params to the broker at u through a
// proxy slowed by midCallDelay, starts call with it and returns the proxy
// and call's result after the given time, the call still running.
func startMidCall(t *testing.T, u *url.URL, params string, after time.Duration, call func(c *rabbitmq.Client) error) (*fault.Proxy, <-chan error) {
	t.Helper()
	p := fault.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	c := rabbitmqtest.Open(t, pu.String()+params)
	p.SetDelay(midCallDelay)
	res := make(chan error, 1)
	go func() { res <- call(c) }()
	time.Sleep(after) // where in the call the cut comes is the subject
	select {
	case err := <-res:
		t.Fatalf("the call returned within %v, before the cut: %v; slow the link more", after, err)
	default:
	}
	return p, res
}

// TestAdminConnectionLostMidCall: the connection is lost in the middle of
// a topology or admin call (the link slowed so that the call is still
// talking to the broker, then cut, every redial refused): the call fails
// with messaging.ErrUnavailable within about unavailable_timeout of the
// loss, as it does for a broker already unreachable when it starts, rather
// than failing at once with the connection's error or waiting for a
// reconnect until its context ends. The cut comes at several points of
// each call.
func TestAdminConnectionLostMidCall(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	calls := map[string]func(c *rabbitmq.Client, topic, group string) error{
		"Provision": func(c *rabbitmq.Client, topic, group string) error {
			return c.Provision(context.Background(), topic, group, group+"b")
		},
		"DeleteTopic": func(c *rabbitmq.Client, topic, _ string) error {
			return c.DeleteTopic(context.Background(), topic)
		},
		"Inspect": func(c *rabbitmq.Client, topic, _ string) error {
			_, err := c.Inspect(context.Background(), topic)
			return err
		},
	}
	for name, call := range calls {
		for _, after := range []time.Duration{3 * midCallDelay, 6 * midCallDelay, 9 * midCallDelay} {
			t.Run(fmt.Sprintf("%s/cut_after_%v", name, after), func(t *testing.T) {
				t.Parallel() // a proxy, client and topic of its own; waits mostly
				topic, group := integration.UniqueName(t, "mid"), integration.UniqueName(t, "g")
				if err := direct.Provision(t.Context(), topic, group, group+"b"); err != nil {
					t.Fatal(err)
				}
				deleteAtEnd(t, direct, topic)
				p, res := startMidCall(t, u, "?unavailable_timeout=1s", after, func(c *rabbitmq.Client) error {
					return call(c, topic, group)
				})
				p.Cut()
				cut := time.Now()
				select {
				case err := <-res:
					took := time.Since(cut)
					t.Logf("%s cut after %v: returned %v after the cut: %v", name, after, took.Round(time.Millisecond), err)
					if !errors.Is(err, messaging.ErrUnavailable) {
						t.Errorf("%s with the connection lost mid-call: %v, want an error wrapping messaging.ErrUnavailable", name, err)
					}
					if limit := fault.AdminUnavailableTimeout + fault.AdminMargin; took > limit {
						t.Errorf("%s returned %v after the cut, want within %v", name, took.Round(time.Millisecond), limit)
					}
				case <-time.After(fault.AdminGiveUp):
					t.Errorf("%s with the connection lost mid-call had not returned %v after the cut (left running until the client closes)", name, fault.AdminGiveUp)
				}
			})
		}
	}
}

// TestProvisionConnectionBackMidCall: the connection is lost in the middle
// of Provision and the broker is reachable again at once: Provision is made
// again on the new connection and succeeds, the group queue declared.
func TestProvisionConnectionBackMidCall(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	topic, group := integration.UniqueName(t, "back"), integration.UniqueName(t, "g")
	deleteAtEnd(t, direct, topic)
	p, res := startMidCall(t, u, "?unavailable_timeout=5s&reconnect_min=10ms&reconnect_max=50ms", 6*midCallDelay, func(c *rabbitmq.Client) error {
		return c.Provision(context.Background(), topic, group)
	})
	p.Cut()
	p.SetDelay(0)
	p.Restore()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Provision with the connection lost mid-call and back at once: %v", err)
		}
	case <-time.After(fault.AdminGiveUp):
		t.Fatalf("Provision had not returned %v after the cut", fault.AdminGiveUp)
	}
	st, err := direct.Inspect(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != group {
		t.Errorf("groups after Provision: %+v, want %s", st.Groups, group)
	}
}
