module github.com/msgkit/messaging/adapters/rabbitmq

go 1.26.8

require (
	github.com/cenkalti/backoff/v5 v5.0.3
	github.com/msgkit/messaging v0.0.0-00010101000000-000000000000
	github.com/rabbitmq/amqp091-go v1.16.0
)

require github.com/google/uuid v1.6.0 // indirect

replace github.com/msgkit/messaging => ../..
