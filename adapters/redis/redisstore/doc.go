// Package redisstore keeps the state of consumer-side middleware and
// patterns in Redis: DedupeStore for middleware/dedupe (and the seen items
// of the pollers) and CheckpointStore, a patterns/checkpoint.Store for the
// cursors of middleware/poll and patterns/poll and the positions of stream
// projections, shared by every process that uses the same key prefix. They
// live beside the Redis adapter, in its module, so that the middleware
// packages (in the core module) do not bring the Redis client to programs
// that use another broker.
package redisstore

import "github.com/redis/go-redis/v9"

// keys is what every store holds: the client and the prefix of its keys.
type keys struct {
	c      redis.UniversalClient
	prefix string
}
