// Package redistest gives tests a Redis server, for the Redis adapter's own
// tests and for a user's integration tests:
//
//   - Broker.Endpoint finds one: MESSAGING_REDIS_URL, else a redis:7
//     container when a Docker engine answers; failing both it skips, naming
//     the variable (fails under MESSAGING_REQUIRE_BROKERS=1). Open returns an
//     adapter client for it.
//   - StartServer and StartCluster run private redis-server processes (a
//     Redis Cluster with replicas) on free ports, which fault tests kill with
//     SIGKILL and restart.
//
// It is a module of its own (github.com/msgkit/messaging/adapters/redis/redistest)
// so that the adapter's users do not download testcontainers or the Docker
// client: only test code imports it. The adapter's broker tests
// (conformance, faults, failover, benchmarks) live beside it.
package redistest
