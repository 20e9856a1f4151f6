package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// managementHarness is the rabbitmq harness with the management API (from
// MESSAGING_AMQP_MANAGEMENT_URL), with or without stream queues.
func managementHarness(streams bool) integration.Harness {
	h, _ := integration.LookupHarness("rabbitmq")
	h.Name = "rabbitmq-management"
	gaps := rabbitmqtest.ManagementInspectGaps
	if streams {
		gaps.Messages = false // the stream queue's length
	}
	h.InspectGaps = &gaps
	h.Open = func(t testing.TB) messaging.Client {
		return rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t),
			rabbitmq.WithManagement(rabbitmqtest.Management(t)), rabbitmq.WithStreams(streams))
	}
	return h
}

// TestInspectManagement runs the suite's Inspect case with the management
// API: messages in flight and redeliveries become known (the plain harness,
// without it, runs the case in TestConformance).
func TestInspectManagement(t *testing.T) {
	t.Parallel() // own names on the shared broker; mostly waits for the management API's statistics
	integration.RunInspect(t, managementHarness(false))
}

// TestInspectManagementStreams: with stream queues, the topic's messages are
// the stream's length.
func TestInspectManagementStreams(t *testing.T) {
	t.Parallel() // own names on the shared broker; mostly waits for the management API's statistics
	integration.RunInspect(t, managementHarness(true))
}

// TestInspectRetryQueueInFlight: a message waiting in a retry queue
// (RetryAfter) was delivered and is not settled: the management API counts
// it in flight, not in the backlog.
func TestInspectRetryQueueInFlight(t *testing.T) {
	t.Parallel() // own names on the shared broker; mostly waits for the management API's statistics
	mgmt := rabbitmqtest.Management(t)
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithManagement(mgmt))
	ctx := t.Context()
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "a"}, &messaging.Message{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		return messaging.RetryAfter(errors.New("later"), time.Minute)
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	integration.InspectUntil(t, c, topic, 30*time.Second, func(st messaging.TopicStats, _, _ time.Time) error {
		if len(st.Groups) != 1 {
			return fmt.Errorf("groups %v, want %s", groupNames(st), group)
		}
		if g := st.Groups[0]; g.Backlog != messaging.KnownCount(0) || g.InFlight != messaging.KnownCount(2) {
			return fmt.Errorf("backlog %v in flight %v, want 0 and 2 (in the retry queue)", g.Backlog, g.InFlight)
		}
		return nil
	})
}

// TestTopicsManagement: Topics lists the vhost's topic exchanges with the
// management API (URL parameter management=), and is unsupported without.
func TestTopicsManagement(t *testing.T) {
	mgmt := rabbitmqtest.Management(t)
	amqpURL := rabbitmqtest.Broker.Endpoint(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("management", mgmt)
	u.RawQuery = q.Encode()
	ctx := t.Context()
	c, err := rabbitmq.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // after the topic's deletion below
	topic := integration.UniqueName(t, "listed")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	topics, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(topics, topic) || !slices.IsSorted(topics) || slices.ContainsFunc(topics, func(s string) bool { return strings.HasPrefix(s, "amq.") }) {
		t.Fatalf("Topics() = %v: want sorted, holding %s, no amq.*", topics, topic)
	}

	plain := rabbitmqtest.Open(t, amqpURL)
	if _, err := plain.Topics(ctx); !errors.Is(err, messaging.ErrUnsupported) || !errors.Is(err, rabbitmq.ErrNoManagement) {
		t.Fatalf("Topics without management: %v, want ErrUnsupported and ErrNoManagement", err)
	}
}

// TestManagementCredentials: the management API is called with the AMQP
// credentials by default; wrong credentials fail without showing them, and
// a URL parameter with credentials is refused without showing them.
func TestManagementCredentials(t *testing.T) {
	mgmt := rabbitmqtest.Management(t)
	ctx := t.Context()
	mu, err := url.Parse(mgmt)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "n0t-the-Passw0rd"
	mu.User = url.UserPassword("guest", secret)
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithManagement(mu.String()))
	topic := integration.UniqueName(t, "creds")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	_, err = c.Inspect(ctx, topic)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), secret) {
		t.Fatalf("Inspect with wrong management credentials: %v, want a 401 that does not show them", err)
	}

	au, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	q := au.Query()
	q.Set("management", mu.String())
	au.RawQuery = q.Encode()
	_, err = rabbitmq.Open(ctx, au.String())
	if !errors.Is(err, messaging.ErrInvalidOption) || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open with credentials in management=: %v, want ErrInvalidOption not showing them", err)
	}
	for _, bad := range []string{"ftp://host:15672", "http://", ":"} {
		if _, err := rabbitmq.Open(ctx, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithManagement(bad)); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("WithManagement(%q): %v, want ErrInvalidOption", bad, err)
		}
	}
}

// TestManagementCredentialsWithHeartbeat: the AMQP URL's credentials reach
// the management API also beside a heartbeat parameter amqp091 cannot parse
// (heartbeat=10s: it wants whole seconds); they were lost and Inspect failed
// with "no credentials". Without a user in the URL they are guest/guest, as
// amqp091 dials with.
func TestManagementCredentialsWithHeartbeat(t *testing.T) {
	mgmt := rabbitmqtest.Management(t)
	au, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	urls := []*url.URL{au}
	if p, _ := au.User.Password(); au.User.Username() == "guest" && p == "guest" {
		anon := *au
		anon.User = nil
		urls = append(urls, &anon)
	}
	for _, u := range urls {
		q := u.Query()
		q.Set("heartbeat", "10s")
		q.Set("management", mgmt)
		u.RawQuery = q.Encode()
		c := rabbitmqtest.Open(t, u.String())
		topic := integration.UniqueName(t, "hb")
		t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
		if err := c.Provision(t.Context(), topic, "g"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Inspect(t.Context(), topic); err != nil {
			t.Errorf("Inspect with %s: %v", messaging.RedactURL(u), err)
		}
	}
}

// BenchmarkInspect measures one Inspect call, without and with the
// management API.
func BenchmarkInspect(b *testing.B) {
	b.Run("amqp", func(b *testing.B) {
		integration.BenchInspect(b, rabbitmqtest.Open(b, rabbitmqtest.Broker.Endpoint(b)))
	})
	b.Run("management", func(b *testing.B) {
		integration.BenchInspect(b, rabbitmqtest.Open(b, rabbitmqtest.Broker.Endpoint(b),
			rabbitmq.WithManagement(rabbitmqtest.Management(b))))
	})
}

func groupNames(st messaging.TopicStats) []string {
	var out []string
	for _, g := range st.Groups {
		out = append(out, g.Group)
	}
	return out
}

// TestInspectLeavesRegistry: Inspect over AMQP (no management API) reads
// the topic's registry of queues without consuming it: a client that did
// not provision the topic finds its group at every Inspect, and its
// DeleteTopic afterwards still deletes the group's queue.
func TestInspectLeavesRegistry(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	owner, other := rabbitmqtest.Open(t, url), rabbitmqtest.Open(t, url)
	topic, group := integration.UniqueName(t, "registry"), integration.UniqueName(t, "g")
	deleteAtEnd(t, owner, topic)
	if err := owner.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		st, err := other.Inspect(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Groups) != 1 || st.Groups[0].Group != group {
			t.Fatalf("Inspect %d by a client that did not provision the topic: groups %+v, want %s", i+1, st.Groups, group)
		}
	}
	if err := other.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	_, ch := rawChannel(t, url)
	if _, err := ch.QueueDeclarePassive(rabbitmq.GroupQueueName(topic, group), true, false, false, false, nil); err == nil {
		t.Error("the group queue exists after DeleteTopic")
	}
}
