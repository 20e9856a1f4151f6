// Package redis is the Redis Streams adapter. It registers the schemes
// "redis" and "rediss" (TLS).
//
// # Construction
//
// Open(ctx, url) dials a new go-redis client and owns it; New(rc) wraps a
// go-redis UniversalClient the application already has (standalone,
// sentinel/failover or cluster) and leaves it open on Close.
//
// URL:
//
//	redis[s]://[[user]:password@]host[:port][/db][?param=value&...]
//
// The user and password are sent with AUTH (ACL user when a user is given).
// Parameters of this adapter (unknown parameters are passed to go-redis,
// which rejects those it does not know, so every typo is an error):
//
//	prefix=<s>                 stream key prefix (default none)
//	hash_tag=true|false        keys as prefix{topic} (default: true in cluster mode)
//	cluster=true               treat the URL as a cluster seed (go-redis ParseClusterURL; add more nodes with addr=host:port)
//	maxlen=<n>                 XADD MAXLEN ~ n on every publish (default 0: keep all)
//	max_age=<duration>         XADD MINID ~ now-age on every publish (not with maxlen)
//	max_message_size=<size>    largest Message.Size accepted (default 1MiB)
//	block=<duration>           XREAD / XREADGROUP block time (default 1s)
//	dead_letter_suffix=<s>     dead-letter given-up messages to topic+s (WithDeadLetterSuffix)
//	stale_consumer_after=<d>   delete consumers idle this long with nothing pending (default 1h)
//	coalesce=<n>               merge concurrent Publish calls, n sending goroutines (default 0: off)
//	unavailable_timeout=<d>    how long a published message waits for an unreachable server before
//	                           failing with messaging.ErrUnavailable (default 5s, counted from the
//	                           call's start, for PublishAsync from when the message was queued);
//	                           so do Provision, DeleteTopic, Inspect, Topics, Subscribe and Read
//	ids=assign|caller          Publish gives every message an ID and Time (assign, the default),
//	                           or writes only those callers set (WithCallerIDs)
//
// Clusters: redis://host1:6379?cluster=true&addr=host2:6379&addr=host3:6379
// (go-redis ParseClusterURL; any reachable node is enough to find the
// rest). A cluster client made from a URL reloads the slot map after a
// connection failure (go-redis alone reloads it only on a MOVED reply or
// every 60s), so when a master dies and its replica is promoted
// (cluster-node-timeout plus the election) the client follows within about
// a second. Replication is asynchronous: see Durability.
//
// What paces a subscription's return after the promotion is its read in
// flight: go-redis sends an XREADGROUP for a dead master's slot to that
// master up to four times (max_redirects=3), dialling it five times 100ms
// apart each time (dialer_retries=5), about 1.6s in all, before the read
// fails and the slot map is reloaded; once pool_size dials to it have
// failed, go-redis fails the reads at once and tries a dial a second. The
// engine then fetches again after its backoff (50ms, growing to 1s, ±50%).
// In 9 runs of TestFailoverMaster (under -race) the groups were back
// 154ms to 1.28s after the promotion. dialer_retries=1 does not bring them
// back sooner: the reads then fail at once, so the backoff grows to its
// cap and the dial circuit opens early in the election, and the groups
// were back 0.81s to 2.48s after it (4 runs).
//
// go-redis parameters include dial_timeout, read_timeout, write_timeout,
// pool_size, min_idle_conns, max_retries, protocol, client_name and, with
// rediss://, skip_verify. A client made from a URL has go-redis's
// ContextTimeoutEnabled set: a call's context deadline (for Publish, also
// unavailable_timeout) bounds its reads and writes on the connection, and
// read_timeout and write_timeout (default 5s) those of calls with a later
// deadline or none. Blocking reads (XREADGROUP, XREAD) are bounded by the
// block time plus 10s instead.
//
// # Logging
//
// What the adapter cannot return goes to the logger of WithLogger (default
// slog.Default()): fetch failures, logged as runs (see package engine),
// given-up messages, failed releases. go-redis logs some connection
// failures itself, not through that logger: a dial that failed after its
// retries ("redis: connection pool: failed to dial after 5 attempts", a
// line per failed dial, repeated while a server is away) goes to
// standard error through go-redis's logger, which is one for the whole
// process. The adapter leaves it as it is, since every go-redis client of
// the program shares it: goredis.SetLogger routes it (any value with a
// Printf(ctx, format, args...) method, one calling a slog.Logger for
// example), and the Disable function of go-redis's package logging
// silences it.
//
// # Mapping
//
// A topic is a stream with key prefix+topic (prefix+"{"+topic+"}" with hash
// tags, so a topic's keys stay in one cluster slot). An entry's fields are
// "id", "key" (omitted when empty), "time" (Unix nanoseconds; omitted when
// the ID, a version 7 UUID as Publish makes it, carries the time), one
// "h:<name>" field per header, and "payload". Entries written by other producers are
// readable too: their fields become headers, their ID is the entry ID.
// With ids=caller (WithCallerIDs) Publish generates no ID nor Time, so a
// message with nothing but a payload is the entry {payload}, as a plain
// XADD writes it; consumers get its entry ID as ID (stable across
// redeliveries) and the entry ID's millisecond as Time.
// Message.Offset is the stream entry ID ("1700000000000-0").
//
// A group is a Redis consumer group, created with XGROUP CREATE ... MKSTREAM
// when a subscription or Provision first names it, starting at StartAt
// (Earliest by default; Latest, an entry ID or a time otherwise; StartAt is
// ignored for a group that exists). Each subscription is a consumer with a
// unique name (host-pid-random).
//
// # Delivery
//
// Delivery is at-least-once. The consumer side is the library's engine
// (package engine) over the wire calls in driver.go. A subscription reads
// new entries with XREADGROUP and acknowledges with batched XACK.
//
// Ack deadline: entries stay in the group's pending list until acknowledged.
// Every subscription runs XAUTOCLAIM with min-idle = its AckDeadline every
// AckDeadline/4 (at least 100ms, at most the block time) and takes over
// entries whose consumer died or hung; while it holds an entry it keeps
// resetting the entry's idle time. Members of a group should use the same
// AckDeadline. Attempt is the entry's delivery counter kept by Redis: 1 for
// a new entry, incremented by every claim, so it survives restarts.
//
// Nack and Release (fetched, not handled to the end): the entry's idle time
// is set to AckDeadline (XCLAIM IDLE), so any member's next XAUTOCLAIM takes
// it; a release sets the delivery counter back (RETRYCOUNT). When the group
// has other members (see below), the member that nacked or released
// publishes on the group's wake channel (Pub/Sub channel
// "msgkit:wake:<stream key>:<group>"; one Pub/Sub connection per Client
// that has group subscriptions), the other members reclaim at once (within
// milliseconds: TestNackHandOverPrompt), and it waits a reclaim period
// before reclaiming, so that they take it first. A wake that Pub/Sub
// loses, or that an ACL without PUBLISH or SUBSCRIBE stops, leaves the
// entry to their next periodic reclaim (within a reclaim period: 1s with
// the defaults). Alone in its group, the member reclaims at once. A
// subscription registers its consumer when it starts (XGROUP
// CREATECONSUMER; Redis before 7.2 shows a member only once it got an
// entry) and deletes it at Close, also when Redis serves its last blocked
// read after Close (Redis then creates the consumer again; the
// subscription releases what it got and deletes it once more). What it
// still owns at Close (the entries it released, a delayed nack) it hands to
// the group's consumer "msgkit:released", which is no member: the entries
// keep their idle time and delivery counter, any member claims them when
// it would have claimed them from the member, and the member that claims
// the last one deletes that consumer. Other members are the consumers seen
// (XINFO CONSUMERS idle) within 3 block times plus 2s (5s with the
// defaults): every reclaim marks the member's consumer seen (with an
// XREADGROUP of its own pending entries that returns nothing; before Redis
// 7.2 a read or claim that finds nothing does not count), and a member
// with room for more messages reclaims at most 2.25 reclaim periods plus
// 200ms apart. A crashed process's consumer stays in the group until the
// stale consumer cleanup deletes it, but no longer counts once silent that
// long (TestNackBackPromptlyAfterOtherCrashed); nor does a member too busy
// to reclaim, which could not take the entries either, or one whose
// WithBlock is much longer than the nacking member's (the entries then
// come back to the member that nacked them at once: nothing is lost). The
// engine holds a RetryAfter delay (the idle time kept at 0) before the
// nack; if the process dies meanwhile, the message comes back after
// AckDeadline. A subscription closed meanwhile nacks it at once with the
// entry's idle time set to AckDeadline less the delay left, so that no
// member claims it before the delay has passed (a delay longer than
// AckDeadline is cut to it).
//
// The RedeliveryBackoff option is ignored (Capabilities().BrokerBackoff is
// false: a pending list keeps no redelivery schedule): a failed message can
// be claimed after its RetryAfter delay (at once without one), which
// another member does at once when woken, else at its next reclaim, and the
// member that failed it after about a period and a quarter when no other
// did; a member alone in its group gets it back within milliseconds of the
// delay (TestRetryAfterOnTime: a RetryAfter of 20ms comes back within
// 750ms, typically in 1-5ms; it took about 1.3s before members counted the
// others). An unacknowledged message comes back after AckDeadline. A
// shorter WithBlock shortens the period, at the cost of more reads by idle
// subscriptions.
//
// Term (Permanent error, MaxAttempts reached, or the ack deadline passed on
// the last allowed attempt): with WithDeadLetterSuffix the message is first
// added to the dead-letter topic with the headers of package dlheader (the
// envelope middleware/deadletter writes too, plus dlheader.HeaderOffset), then
// acknowledged; otherwise it is acknowledged and logged. A dead letter that
// cannot be written is retried while Redis is unreachable, within the
// settle timeout, but not after an error reply (WRONGTYPE, OOM, NOPERM...):
// its entry stays pending and comes back after AckDeadline, and the other
// outcomes of the batch are applied all the same.
//
// Consumers: at Close a subscription hands what its consumer owns to
// msgkit:released and deletes the consumer; consumers of dead processes are
// deleted by live members once they own nothing and were idle
// WithStaleConsumerAfter. XGROUP DELCONSUMER is only ever run (atomically,
// in a script) on a consumer without pending entries, because deleting one
// drops its pending entries from the group.
//
// Connections: every subscription and Stream.Read keeps one go-redis pool
// connection busy while it blocks in XREADGROUP / XREAD (up to WithBlock);
// size the pool (pool_size, default 10 per CPU) above the number of
// concurrent subscriptions. Close does not wait for a blocked read.
//
// Without a Group option a subscription reads with XREAD from StartAt
// (Latest by default, resolved when Subscribe returns) and keeps no state in
// Redis: a failed message is redelivered in process only. A deleted stream
// ends subscriptions and Reads with messaging.ErrTopicDeleted. A blocked
// read that Redis fails for another reason (a master demoted to a replica
// in a Sentinel failover, CLIENT UNBLOCK ... ERROR) is retried.
//
// Stream.Read reads with XREAD and never touches groups. AtTime(t) starts
// at the first entry whose ID time is at or after t; entry IDs carry the
// server's clock, so clock skew between client and server shifts it.
//
// # Durability
//
// Publish returns when Redis has appended the entries. Whether they survive
// a crash depends on the server: with appendonly yes and appendfsync always
// an acknowledged entry is on disk (fsync before the reply). With the default
// appendfsync everysec it is normally handed to the OS before the reply, so
// killing the server process loses nothing, but a power failure or OS crash
// can lose about the last second, and when fsync falls behind Redis may
// postpone the write by up to two seconds, which a kill -9 then loses too.
// Without AOF only RDB snapshots are kept. With
// replication, a failover can lose writes the replica had not received
// (Redis replication is asynchronous); the same holds for group state
// (acks, claims). Capabilities().Persistent assumes AOF with fsync always.
//
// # Inspection
//
// Client.Inspect (messaging.Inspector) reads a topic's figures from Redis in
// two pipelined round trips (XINFO STREAM, XINFO GROUPS, TIME; one XRANGE
// of one entry per group with a backlog):
//
//	messages        XLEN; First/Last: the first and last entry IDs
//	backlog         the group's lag, at most XLEN (entries trimmed away are
//	                not counted; unknown after XDEL in the middle of the
//	                stream, or for a group created at an arbitrary ID)
//	in flight       the group's pending entries
//	oldest age      server time minus the ID time of the first entry after
//	                the group's last-delivered ID
//	consumers       consumers registered in the group (a crashed process's
//	                stay until stale_consumer_after)
//	bytes, redeliveries   unknown
//
// Client.Topics (messaging.TopicLister) lists the streams under the prefix
// (SCAN TYPE stream, every master in cluster mode). A dead-letter topic is a
// stream of its own.
//
// # Capabilities
//
// Persistent (see above), Groups, Replay, ReplayByTime, GroupStartAt,
// PerKeyOrder (within a subscription), AckDeadline, BrokerAttempts,
// NativeDeadLetter only with WithDeadLetterSuffix (the
// adapter moves the message; Redis has no dead-lettering of its own).
// MaxMessageSize is 1 MiB by default.
//
// Not provided: exactly-once (duplicates happen after crashes and ack
// deadline expiry); per-key order across the members of a group; retention
// that respects groups (MAXLEN / MINID trim entries unread by a group).
package redis
