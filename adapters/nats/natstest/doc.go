// Package natstest gives tests a NATS server, for the NATS adapter's own
// tests and for a user's integration tests:
//
//   - Broker.Endpoint finds one: MESSAGING_NATS_URL, else a nats:2 container
//     when a Docker engine answers, else a nats-server inside the test
//     process; failing all three it skips, naming the variable (fails under
//     MESSAGING_REQUIRE_BROKERS=1). Open returns an adapter client for it.
//   - StartServer and StartCluster run private nats-server processes on free
//     ports, which fault tests kill with SIGKILL and restart.
//
// It is a module of its own (github.com/msgkit/messaging/adapters/nats/natstest)
// so that the adapter's users do not download testcontainers, the Docker
// client or nats-server: only test code imports it. The adapter's broker
// tests (conformance, faults, failover, benchmarks) live beside it.
//
//	func TestOrders(t *testing.T) {
//		c := natstest.Open(t) // closed when the test ends
//		...
//	}
package natstest
