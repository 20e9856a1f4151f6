package redistest_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	redisadapter "github.com/msgkit/messaging/adapters/redis"
)

// mustNew is redisadapter.New failing the test on an error.
func mustNew(t testing.TB, rc goredis.UniversalClient, opts ...redisadapter.Option) *redisadapter.Client {
	t.Helper()
	c, err := redisadapter.New(rc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
