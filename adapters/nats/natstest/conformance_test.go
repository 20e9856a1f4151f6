package natstest_test

import (
	"os"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestConformance runs the shared suite against JetStream mode on the test
// server (MESSAGING_NATS_URL, else an in-process nats-server).
func TestConformance(t *testing.T) {
	h, ok := integration.LookupHarness("nats")
	if !ok {
		t.Fatal("nats harness not registered")
	}
	integration.RunConformance(t, h)
}

// TestConformanceCore runs the suite against core mode; it skips what core
// NATS does not claim (groups with redelivery, replay, ack deadlines).
func TestConformanceCore(t *testing.T) {
	h, ok := integration.LookupHarness("nats-core")
	if !ok {
		t.Fatal("nats-core harness not registered")
	}
	integration.RunConformance(t, h)
}

// TestConformanceCallerIDs runs the suite against JetStream mode with
// ids=caller (WithCallerIDs): Publish assigns no ID nor Time.
func TestConformanceCallerIDs(t *testing.T) {
	integration.RunConformance(t, integration.Harness{
		Name: "nats-caller-ids",
		Open: func(t testing.TB) messaging.Client { return natstest.Open(t, natsadapter.WithCallerIDs()) },
		Kill: natstest.Kill,
	})
}

// TestConformanceCurrentServer runs the suite against JetStream mode on an
// in-process nats-server of the version this module builds against, when
// MESSAGING_NATS_URL names another server (without it, TestConformance
// runs there already). The adapter takes other paths on servers from 2.10
// (a Permanent failure's Term with its reason, the server's delivery count
// as Attempt, consumer metadata), which an older shared server never
// exercises.
func TestConformanceCurrentServer(t *testing.T) {
	if os.Getenv(natstest.Broker.EnvVar) == "" {
		t.Skipf("TestConformance runs on the in-process server already (%s is not set)", natstest.Broker.EnvVar)
	}
	url := "nats://" + startSecureServer(t, &server.Options{JetStream: true})
	if v := natstest.OpenURL(t, url).Conn().ConnectedServerVersion(); v != server.VERSION {
		t.Fatalf("in-process server %s, want %s", v, server.VERSION)
	}
	integration.RunConformance(t, integration.Harness{
		Name: "nats-current-server",
		Open: func(t testing.TB) messaging.Client { return natstest.OpenURL(t, url) },
		Kill: natstest.Kill,
	})
}
