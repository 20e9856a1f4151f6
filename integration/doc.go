// Package integration is the conformance suite every adapter runs, plus the
// helpers tests share. It depends on the core module only, so a third-party
// adapter can run the suite without pulling in any broker.
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
// why. The cases run in parallel (as many at a time as go test's -parallel
// flag allows), each with clients of its own, so Open must be safe to call
// from several goroutines at once.
//
// Brokers are found by each adapter's test package, which lives beside the
// adapter in a module of its own (natstest, redistest, kafkatest,
// rabbitmqtest, built on brokertest): the environment variable
// (MESSAGING_NATS_URL, MESSAGING_REDIS_URL, MESSAGING_KAFKA_BROKERS,
// MESSAGING_AMQP_URL), else a container started with testcontainers when a
// Docker engine answers, else an in-process server where one exists (NATS,
// Kafka), else the test is skipped with a message naming the variable. With
// MESSAGING_REQUIRE_BROKERS=1 a missing broker fails the test instead.
//
// Importing one of those packages registers its Harness (this package
// registers the memory adapter's), so tests of middleware and patterns run
// on every registered backend with ForEachBackend.
package integration
