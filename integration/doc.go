// Package integration is the conformance suite every adapter runs, plus the
// helpers tests use to reach brokers.
//
// An adapter (yours too) passes the suite with a small harness:
//
//	func TestConformance(t *testing.T) {
//		integration.RunConformance(t, integration.Harness{
//			Name: "mine",
//			Open: func(t testing.TB) messaging.Client { ... },
//		})
//	}
//
// The adapter's Capabilities decide which cases run; a skipped case logs
// why.
//
// Tests find brokers through Broker.Endpoint: the environment variable
// (MESSAGING_NATS_URL, MESSAGING_REDIS_URL, MESSAGING_KAFKA_BROKERS,
// MESSAGING_AMQP_URL), else a container started with testcontainers when a
// Docker engine answers, else an in-process server where one exists (NATS,
// Kafka), else the test is skipped with a message naming the variable. With
// MESSAGING_REQUIRE_BROKERS=1 a missing broker fails the test instead.
//
// The outbox and inbox tests find PostgreSQL the same way (Postgres,
// MESSAGING_POSTGRES_URL, else a postgres:15 container; no in-process
// server) and use OpenPostgres and PostgresSchema (a schema per test,
// dropped at the end).
//
// Each adapter's file in this package registers a Harness for its broker, so
// tests of middleware and patterns run on every backend with ForEachBackend.
package integration
