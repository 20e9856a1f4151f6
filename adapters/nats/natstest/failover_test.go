package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestFailoverStreamLeader: a three-server cluster holds the topic in a
// replicated (R3) stream; publishers and two groups (one member, two
// members) run through clients given the multi-host URL while the
// stream's leader is killed with SIGKILL and later restarted. Nothing
// confirmed is lost; the stalls are logged (fault.RunFailover). A Read
// from the start gets every confirmed message, in stream order, once.
func TestFailoverStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	cl := natstest.StartCluster(t, 3)
	// publish_timeout=1s: a publish sent to the dead leader gets no
	// acknowledgement, ever; it fails after publish_timeout, and with it the
	// Publish call, so this bounds how long after the election publishing
	// stays stuck (see the package documentation, Clusters).
	url := cl.URL() + "?replicas=3&reconnect_wait=100ms&unavailable_timeout=2s&publish_timeout=1s"
	open := func() *natsadapter.Client { return natstest.OpenURL(t, url) }
	pub := open()
	topic := integration.UniqueName(t, "fo")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := pub.Provision(ctx, topic, one, two); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(pub.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream := pub.StreamName(topic)
	info, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("stream %s has %d replicas, want 3 (replicas=3 in the URL)", stream, r)
	}

	w := fault.StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() },
		messaging.Concurrency(4), messaging.AckDeadline(2*time.Second))
	reader := integration.NewCollector()
	rs, err := open().Read(ctx, topic, messaging.Earliest, reader.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })

	// leaders returns the server names leading the stream and the groups'
	// consumers ("" while one has no leader).
	leaders := func(ctx context.Context) []string {
		var out []string
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return []string{""}
		}
		out = append(out, s.CachedInfo().Cluster.Leader)
		for _, g := range []string{one, two} {
			c, err := s.Consumer(ctx, pub.ConsumerName(topic, g))
			if err != nil || c.CachedInfo().Cluster == nil {
				return append(out, "")
			}
			out = append(out, c.CachedInfo().Cluster.Leader)
		}
		return out
	}
	victim := leaders(ctx)[0]
	srv := cl.Server(victim)
	if srv == nil {
		t.Fatalf("stream leader %q is none of the cluster's servers %v", victim, cl.Names)
	}
	t.Logf("stream %s: leaders (stream, consumers) %v; killing %s", stream, leaders(ctx), victim)

	fault.RunFailover(t, "nats", w, fault.NodeLoss{
		Kill: srv.Kill,
		Elected: func(timeout time.Duration) {
			// A separate connection to the surviving servers asks for the
			// leaders; elections are polled (JetStream has no event for
			// them a client can wait on).
			nc, err := natsgo.Connect(cl.URL(), natsgo.Timeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js2, _ := jetstream.New(nc)
			deadline := time.Now().Add(timeout)
			for {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				var now []string
				s, err := js2.Stream(ctx, stream)
				if err == nil && s.CachedInfo().Cluster != nil {
					now = append(now, s.CachedInfo().Cluster.Leader)
					for _, g := range []string{one, two} {
						if c, err := s.Consumer(ctx, pub.ConsumerName(topic, g)); err == nil && c.CachedInfo().Cluster != nil {
							now = append(now, c.CachedInfo().Cluster.Leader)
						}
					}
				}
				cancel()
				if len(now) == 3 && !slices.Contains(now, "") && !slices.Contains(now, victim) {
					t.Logf("new leaders (stream, consumers): %v", now)
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new leaders after %v: %v", timeout, now)
				}
				time.Sleep(50 * time.Millisecond) // polling the elections, see above
			}
		},
		Restart: srv.Start,
	})
	// The read catches up on all the workload published; how much that is
	// depends on how long the election took (28.5s once under CI's load,
	// 26,000 messages, which a race-built cluster did not serve within a
	// fixed 30s), so what is bounded is a stall.
	reader.WaitDistinctProgress(t, w.Confirmed(), 10*time.Second)
	var last uint64
	for _, m := range reader.Messages() {
		off, err := strconv.ParseUint(m.Offset, 10, 64)
		if err != nil || off <= last {
			t.Fatalf("Read delivered offset %q after %d (out of order or twice)", m.Offset, last)
		}
		last = off
	}
	t.Logf("Read got %d messages in order", reader.Total())
}

// TestMultiHostURL: a multi-host URL is nats.go's server list, so a host
// that refuses connections is passed over; a URL with an empty host is
// invalid.
func TestMultiHostURL(t *testing.T) {
	ep := natstest.Broker.Endpoint(t)
	host := strings.TrimPrefix(ep, "nats://")
	host, _, _ = strings.Cut(host, "?")
	dead := fmt.Sprintf("127.0.0.1:%d", fault.FreePort(t)) // nothing listens there
	for _, hosts := range []string{dead + "," + host, host + "," + dead} {
		c := natstest.OpenURL(t, "nats://"+hosts)
		topic := integration.UniqueName(t, "multi")
		t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
			t.Fatalf("publish with hosts %s: %v", hosts, err)
		}
	}
	for _, u := range []string{"nats://" + host + ",", "nats://," + host, "nats://" + host + ",:4222"} {
		if _, err := natsadapter.Open(t.Context(), u); !errors.Is(err, messaging.ErrInvalidURL) {
			t.Errorf("Open(%q): %v, want ErrInvalidURL", u, err)
		}
	}
}
