package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestFailoverQueueLeader: a three-node cluster on this machine; each
// group is a quorum queue with a member on every node. Publishers and two
// groups (one member, two members) run through clients given the
// multi-host URL while the node leading group one's queue is killed with
// SIGKILL (the queues elect new leaders among the two others; the clients
// connected to it redial the other hosts) and later restarted. Nothing
// confirmed is lost; the stalls are logged (fault.RunFailover).
func TestFailoverQueueLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cl := rabbitmqtest.StartCluster(t, 3)
	url := cl.URL() + "?unavailable_timeout=3s"
	open := func() *rabbitmq.Client { return rabbitmqtest.Open(t, url) }
	pub := open()
	topic := integration.UniqueName(t, "fo")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := pub.Provision(t.Context(), topic, one, two); err != nil {
		t.Fatal(err)
	}
	queues := []string{rabbitmq.GroupQueueName(topic, one), rabbitmq.GroupQueueName(topic, two)}
	leaders := cl.QueueLeaders(cl.Nodes[0], queues...)
	victim := cl.Node(leaders[queues[0]])
	if victim == nil {
		t.Fatalf("queue %s: leader %q is none of the cluster's nodes", queues[0], leaders[queues[0]])
	}
	via := cl.Nodes[0]
	if via == victim {
		via = cl.Nodes[1]
	}
	t.Logf("queue leaders %v; killing %s", leaders, victim.Name)

	w := fault.StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() }, messaging.Concurrency(4))
	fault.RunFailover(t, "rabbitmq", w, fault.NodeLoss{
		Kill: victim.Kill,
		Elected: func(timeout time.Duration) {
			// Elections are polled through rabbitmqctl: no client event
			// tells them.
			deadline := time.Now().Add(timeout)
			for {
				now := cl.QueueLeaders(via, queues...)
				if now[queues[0]] != "" && now[queues[0]] != victim.Name && now[queues[1]] != "" && now[queues[1]] != victim.Name {
					t.Logf("new queue leaders %v", now)
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new queue leaders after %v: %v", timeout, now)
				}
				time.Sleep(100 * time.Millisecond) // polling the elections, see above
			}
		},
		Restart: victim.Start,
	})
}

// TestMultiHostURL: Open dials the hosts of a multi-host URL in turn, so a
// first host that refuses connections is passed over; a URL with an empty
// host is invalid.
func TestMultiHostURL(t *testing.T) {
	ep, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("127.0.0.1:%d", fault.FreePort(t)) // nothing listens there
	live := *ep
	live.Host = dead + "," + ep.Host
	c := rabbitmqtest.Open(t, live.String())
	topic, group := integration.UniqueName(t, "multi"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
		t.Fatalf("publish through the second host: %v", err)
	}
	bad := *ep
	bad.Host = ep.Host + ","
	if _, err := rabbitmq.Open(t.Context(), bad.String()); !errors.Is(err, messaging.ErrInvalidURL) {
		t.Errorf("Open with an empty host in the list: %v, want ErrInvalidURL", err)
	}
}

// TestRedialStartsWithNextHost: with a host list, the redial after a lost
// connection starts with the host after the one the client was connected
// to, so the node that just died is tried last.
func TestRedialStartsWithNextHost(t *testing.T) {
	ep, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	first, second := fault.NewProxy(t, ep.Host), fault.NewProxy(t, ep.Host)
	var mu sync.Mutex
	var dialled []string // the address of each dial, in order
	dial := amqp.DefaultDial(30 * time.Second)
	u := *ep
	u.Host = first.Addr() + "," + second.Addr()
	c := rabbitmqtest.Open(t, u.String(), rabbitmq.WithAMQPConfig(amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		mu.Unlock()
		return dial(network, addr)
	}}))
	topic, group := integration.UniqueName(t, "redial"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	first.Cut() // the connection lost, the host refusing
	// Publish waits for the reconnect.
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
		t.Fatalf("publish after the cut: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialled) < 2 || dialled[0] != first.Addr() || dialled[1] != second.Addr() {
		t.Errorf("dialled %v, want %s (Open), then %s (the redial, starting with the next host)", dialled, first.Addr(), second.Addr())
	}
}

// TestReconnectBackoffHonoured: while the broker is unreachable the client
// redials at the pace WithReconnectBackoff sets (here at most 100ms
// apart, with jitter), not at a default backoff growing to a minute: 20
// attempts come within a few seconds of the cut, and the client is back
// once the broker is.
func TestReconnectBackoffHonoured(t *testing.T) {
	const attempts = 20
	ep, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	p := fault.NewProxy(t, ep.Host)
	dialled := make(chan struct{}, 1000)
	dial := amqp.DefaultDial(30 * time.Second)
	u := *ep
	u.Host = p.Addr()
	c := rabbitmqtest.Open(t, u.String(), rabbitmq.WithReconnectBackoff(50*time.Millisecond, 100*time.Millisecond),
		rabbitmq.WithAMQPConfig(amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
			dialled <- struct{}{}
			return dial(network, addr)
		}}))
	<-dialled // Open's
	topic, group := integration.UniqueName(t, "backoff"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	cut := time.Now()
	limit := time.After(15 * time.Second) // 20 attempts at most 120ms apart take 2.4s
	for i := range attempts {
		select {
		case <-dialled:
		case <-limit:
			t.Fatalf("%d redial attempts in the 15s after the cut, want %d at most 100ms apart (WithReconnectBackoff)", i, attempts)
		}
	}
	t.Logf("%d redial attempts in %v", attempts, time.Since(cut).Round(time.Millisecond))
	p.Restore()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
		t.Fatalf("publish after the broker was back: %v", err)
	}
}
