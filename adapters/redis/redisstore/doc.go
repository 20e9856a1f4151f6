// Package redisstore keeps the state of consumer-side middleware in Redis:
// DedupeStore for middleware/dedupe and CursorStore for middleware/poll,
// shared by every process that uses the same key prefix. They live beside
// the Redis adapter, in its module, so that the middleware packages (in the
// core module) do not bring the Redis client to programs that use another
// broker.
package redisstore
