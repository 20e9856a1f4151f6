module github.com/msgkit/messaging

go 1.26.8

require (
	github.com/cenkalti/backoff/v5 v5.0.3
	github.com/google/uuid v1.6.0
	github.com/sony/gobreaker/v2 v2.4.0
	golang.org/x/time v0.16.0
)

require github.com/stretchr/testify v1.12.1 // indirect
