// Package backends registers the integration harness of every adapter this
// repository ships (memory, NATS core and JetStream, Redis, Kafka, RabbitMQ),
// so that integration.ForEachBackend runs a test on all of them. The test
// packages of this module import it for its side effect.
package backends

import (
	_ "github.com/msgkit/messaging/adapters/kafka/kafkatest"
	_ "github.com/msgkit/messaging/adapters/nats/natstest"
	_ "github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	_ "github.com/msgkit/messaging/adapters/redis/redistest"
	_ "github.com/msgkit/messaging/integration" // memory
)
