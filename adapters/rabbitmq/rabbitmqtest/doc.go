// Package rabbitmqtest gives tests a RabbitMQ server, for the RabbitMQ
// adapter's own tests and for a user's integration tests:
//
//   - Broker.Endpoint finds one: MESSAGING_AMQP_URL, else a rabbitmq:4
//     container when a Docker engine answers; failing both it skips, naming
//     the variable (fails under MESSAGING_REQUIRE_BROKERS=1). Open returns an
//     adapter client for a URL; Management finds the management API
//     (MESSAGING_AMQP_MANAGEMENT_URL).
//   - StartNode and StartCluster run private rabbitmq-server nodes (a
//     three-node cluster with quorum queues) on free ports, which fault tests
//     kill with SIGKILL and restart.
//
// It is a module of its own (github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest)
// so that the adapter's users do not download testcontainers or the Docker
// client: only test code imports it. The adapter's broker tests
// (conformance, faults, failover, benchmarks) live beside it.
package rabbitmqtest
