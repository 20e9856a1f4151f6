package rabbitmqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
)

// Broker is how tests reach a RabbitMQ broker: MESSAGING_AMQP_URL (an
// amqp:// URL with credentials), else a rabbitmq:4 container.
var Broker = &brokertest.Broker{
	Name:         "RabbitMQ",
	EnvVar:       "MESSAGING_AMQP_URL",
	Image:        "rabbitmq:4",
	Port:         "5672/tcp",
	FromHostPort: func(hp string) string { return "amqp://guest:guest@" + hp + "/" },
}

// ManagementInspectGaps are those it cannot report with the
// management API (quorum queues report no head message timestamp in
// RabbitMQ 3.x; an exchange keeps no messages).
var ManagementInspectGaps = integration.InspectGaps{Messages: true, Bytes: true, Offsets: true, OldestAge: true}

// ManagementEnvVar holds the RabbitMQ management API's URL
// ("http://127.0.0.1:15672") for the tests of Inspect with it.
const ManagementEnvVar = "MESSAGING_AMQP_MANAGEMENT_URL"

// Management returns the management API's URL from
// MESSAGING_AMQP_MANAGEMENT_URL, or skips the test naming the variable
// (fails instead under MESSAGING_REQUIRE_BROKERS=1).
func Management(t testing.TB) string {
	t.Helper()
	if v := os.Getenv(ManagementEnvVar); v != "" {
		return v
	}
	msg := fmt.Sprintf("RabbitMQ management API unavailable: set %s to its URL (http://host:15672)", ManagementEnvVar)
	if os.Getenv(integration.RequireBrokersEnv) == "1" {
		t.Fatalf("%s; %s=1 forbids skipping", msg, integration.RequireBrokersEnv)
	}
	t.Skip(msg)
	return ""
}

func init() {
	integration.RegisterHarness(integration.Harness{
		Name: "rabbitmq",
		Open: func(t testing.TB) messaging.Client { return Open(t, Broker.Endpoint(t)) },
		// Stream timestamps (used to position AtTime) have second resolution.
		TimeGap: 1100 * time.Millisecond,
		Kill:    killRabbitMQ,
	})
}

// rabbitKills holds, per client opened by Open, a way to cut its
// TCP connections and refuse new ones, for the harness's Kill.
var rabbitKills sync.Map // messaging.Client -> *rabbitKiller

type rabbitKiller struct {
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

var errKilled = errors.New("rabbitmqtest: client killed by the test")

func (k *rabbitKiller) dial(network, addr string) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.killed {
		return nil, errKilled
	}
	conn, err := amqp.DefaultDial(30*time.Second)(network, addr)
	if err == nil {
		k.conns = append(k.conns, conn)
	}
	return conn, err
}

func (k *rabbitKiller) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = true
	for _, c := range k.conns {
		_ = c.Close()
	}
}

// Open opens a RabbitMQ client on url (with opts after the test
// defaults) that is closed when the test ends. Its connections can be cut
// abruptly with the harness's Kill.
func Open(t testing.TB, url string, opts ...rabbitmq.Option) *rabbitmq.Client {
	t.Helper()
	k := &rabbitKiller{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The adapter's own reconnect backoff (DefaultReconnectMax): the fault
	// tests hold it to its recovery targets (a 2s cap here made publishing
	// resume up to 2s after the broker was back).
	all := append([]rabbitmq.Option{
		rabbitmq.WithAMQPConfig(amqp.Config{Dial: k.dial}),
	}, opts...)
	c, err := rabbitmq.Open(ctx, url, all...)
	if err != nil {
		t.Fatalf("open RabbitMQ client: %v", err)
	}
	rabbitKills.Store(messaging.Client(c), k)
	t.Cleanup(func() {
		_ = c.Close()
		rabbitKills.Delete(messaging.Client(c))
	})
	return c
}

// killRabbitMQ drops c's TCP connection without closing anything in AMQP
// (the broker sees a dead client and requeues its unacknowledged messages)
// and keeps it from reconnecting.
func killRabbitMQ(t testing.TB, c messaging.Client) {
	t.Helper()
	k, ok := rabbitKills.Load(c)
	if !ok {
		t.Fatalf("Kill: %T was not opened by the rabbitmq harness", c)
	}
	k.(*rabbitKiller).kill()
}
