package kafkatest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
)

// Broker is how tests reach a Kafka cluster: MESSAGING_KAFKA_BROKERS
// ("host:port[,host:port]"), else an in-process kfake cluster (three brokers
// on loopback speaking the Kafka wire protocol). No container is started: a
// Kafka container must advertise the host-mapped port as its listener, which
// needs the port before the container starts; run docker compose and set
// MESSAGING_KAFKA_BROKERS for a real Kafka instead.
var Broker = &brokertest.Broker{
	Name:      "Kafka",
	EnvVar:    "MESSAGING_KAFKA_BROKERS",
	InProcess: startKfake,
}

// TestParams are the URL parameters test clients use: quick rebalances
// (short heartbeat interval) and frequent commits, with a session timeout
// real brokers accept (group.min.session.timeout.ms defaults to 6s).
const TestParams = "heartbeat_interval=250ms&session_timeout=6s&commit_interval=100ms&join_backoff=250ms"

func startKfake() (string, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(3),
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		return "", err
	}
	// The cluster lives until the test process exits.
	return strings.Join(c.ListenAddrs(), ","), nil
}

// URL returns a kafka:// URL for the test cluster with the test
// parameters plus extra ("partitions=4"), or skips the test.
func URL(t testing.TB, extra ...string) string {
	t.Helper()
	u := "kafka://" + Broker.Endpoint(t) + "?" + TestParams
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

// Open opens a Kafka client for a test, closed when the test ends (a test
// may close it sooner: Close is idempotent).
func Open(t testing.TB, extra ...string) *kafka.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kafka.Open(ctx, URL(t, extra...))
	if err != nil {
		t.Fatalf("open Kafka client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func init() {
	integration.RegisterHarness(integration.Harness{
		Name: "kafka",
		Open: func(t testing.TB) messaging.Client { return Open(t) },
	})
}
