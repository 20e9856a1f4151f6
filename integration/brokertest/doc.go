// Package brokertest finds a broker for a test: Broker.Endpoint tries an
// environment variable, then a container (testcontainers, when a Docker
// engine answers), then an in-process server where one exists, and else
// skips the test naming the variable (fails it under
// MESSAGING_REQUIRE_BROKERS=1). Each adapter's test package (natstest,
// redistest, kafkatest, rabbitmqtest) declares its broker with it; Postgres
// is the database of the outbox and inbox tests. Run, from a TestMain, lets
// more of a package's parallel tests wait side by side than go test's
// default.
//
// It is a module of its own so that testcontainers and the Docker client
// reach only test code, never a program that imports an adapter.
package brokertest
