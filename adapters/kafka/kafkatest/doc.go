// Package kafkatest gives tests a Kafka cluster, for the Kafka adapter's own
// tests and for a user's integration tests:
//
//   - Broker.Endpoint finds one: MESSAGING_KAFKA_BROKERS, else an in-process
//     kfake cluster (the Kafka wire protocol, groups and offsets, from
//     franz-go). URL and Open build the adapter's URL and client with
//     TestParams (quick rebalances).
//   - StartCluster runs a private kfake cluster behind fault.Proxy
//     instances, which fault tests cut, restore and kill.
//
// It is a module of its own (github.com/msgkit/messaging/adapters/kafka/kafkatest)
// so that the adapter's users do not download kfake or franz-go: only test
// code imports it. The adapter's broker tests (conformance, faults,
// failover, benchmarks, the producer's tests) live beside it.
package kafkatest
