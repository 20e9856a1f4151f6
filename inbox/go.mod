module github.com/msgkit/messaging/inbox

go 1.26.8

require (
	github.com/jackc/pgx/v5 v5.13.0
	github.com/msgkit/messaging v0.0.0-00010101000000-000000000000
	github.com/msgkit/messaging/internal/pgschema v0.0.0-00010101000000-000000000000
)

require (
	github.com/cenkalti/backoff/v5 v5.0.3 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/text v0.41.0 // indirect
)

replace (
	github.com/msgkit/messaging => ..
	github.com/msgkit/messaging/internal/pgschema => ../internal/pgschema
)
