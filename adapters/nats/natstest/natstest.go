package natstest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
)

// Broker is how tests reach a NATS server with JetStream: MESSAGING_NATS_URL
// (a nats:// URL), else a nats:2 container, else a server started inside
// the test process (JetStream on, store in a temporary directory).
var Broker = &brokertest.Broker{
	Name:         "NATS",
	EnvVar:       "MESSAGING_NATS_URL",
	Image:        "nats:2",
	Port:         "4222/tcp",
	Cmd:          []string{"-js"},
	FromHostPort: func(hp string) string { return "nats://" + hp },
	InProcess:    startNATSServer,
}

// startNATSServer runs an in-process nats-server with JetStream on a random
// loopback port; it lives until the process exits.
func startNATSServer() (string, error) {
	dir, err := os.MkdirTemp("", "messaging-nats-")
	if err != nil {
		return "", err
	}
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return "", fmt.Errorf("natstest: nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return "", fmt.Errorf("natstest: nats-server not ready after 10s")
	}
	return s.ClientURL(), nil
}

// Open returns a NATS adapter client for the test server (opts apply
// after the URL), closed when the test ends.
func Open(t testing.TB, opts ...natsadapter.Option) *natsadapter.Client {
	t.Helper()
	return OpenURL(t, Broker.Endpoint(t), opts...)
}

// OpenURL is Open for a given server URL (a private server).
func OpenURL(t testing.TB, url string, opts ...natsadapter.Option) *natsadapter.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := natsadapter.Open(ctx, url, opts...)
	if err != nil {
		t.Fatalf("NATS at %s: %v", Broker.Source(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill crashes c abruptly: its connection is closed under it, so nothing
// it holds is acknowledged, nak'ed or kept in progress any more; JetStream
// redelivers its messages after the ack deadline.
func Kill(t testing.TB, c messaging.Client) {
	t.Helper()
	nc, ok := c.(*natsadapter.Client)
	if !ok {
		t.Fatalf("Kill: %T is not a NATS adapter client", c)
	}
	nc.Conn().Close()
}

func init() {
	integration.RegisterHarness(integration.Harness{
		Name: "nats",
		Open: func(t testing.TB) messaging.Client { return Open(t) },
		Kill: Kill,
	})
	integration.RegisterHarness(integration.Harness{
		Name: "nats-core",
		Open: func(t testing.TB) messaging.Client { return Open(t, natsadapter.WithMode(natsadapter.ModeCore)) },
		// Core NATS keeps no messages nor consumer state to inspect.
		InspectUnsupported: true,
	})
}
