// Package kafka is the Kafka adapter, built on github.com/segmentio/kafka-go.
// It registers the URL scheme "kafka".
//
// # URL
//
//	kafka://[user:password@]host:port[,host:port...][?param=value&...]
//
// Parameters (unknown ones are an error):
//
//	partitions=1            partitions of topics the client creates
//	replication=-1          replication factor of created topics (-1: broker default, Kafka >= 2.4)
//	auto_create=true        Publish/Subscribe/Read create a missing topic
//	acks=all                all | one | none: acknowledgement Publish waits for
//	batch_size=10000        records per produce request and partition (and
//	                        at most 1 MB)
//	batch_timeout=0s        linger before sending a request that is not full
//	compression=none        none | gzip | snappy | lz4 | zstd
//	max_message_size=1000000  largest Message.Size Publish accepts
//	commit_interval=500ms   how often group offsets are committed
//	session_timeout=10s     consumer-group session timeout
//	heartbeat_interval=1s   group heartbeat (bounds how fast a rebalance is noticed)
//	rebalance_timeout=30s   how long the coordinator waits for members to rejoin
//	join_backoff=1s         pause before rejoining after a group error
//	metadata_ttl=1s         how long cluster metadata is kept (bounds how long
//	                        Publish sends to a lost or replaced leader)
//	unavailable_timeout=5s  how long Publish retries an unreachable broker
//	                        before failing with messaging.ErrUnavailable
//	client_id=msgkit        client ID sent to the brokers
//	tls=false               connect with TLS (system roots)
//	tls_skip_verify=false   do not verify the server certificate (tests only)
//	sasl=plain              plain | scram-sha-256 | scram-sha-512; credentials
//	                        from the URL's user:password (plain when only
//	                        credentials are given)
//
// New builds a client from broker addresses and options, and can reuse
// existing kafka-go pieces: WithDialer (readers and groups), WithTransport
// (produce and admin requests), WithWriter (an existing *kafkago.Writer).
//
// # Mapping
//
//   - Topic: a Kafka topic of the same name, created on first use with the
//     configured partitions and replication unless auto_create=false
//     (Provision always creates it). Kafka refuses a topic whose name differs
//     from an existing one only in '.' versus '_' (their metric names
//     collide): that fails with ErrInvalidTopic naming the topic and the
//     rule. A group is the consumer group of the same name.
//   - Key: the record key; its murmur2 hash picks the partition (as in the
//     Java client), so one key stays in one partition, in order. An empty
//     key is sent as a null key; the keyless records of one Publish go to
//     one partition, those of the next Publish to the next (round robin).
//   - ID travels in the record header "msgkit-id"; Time is the record
//     timestamp, so consumers see it with millisecond precision and AtTime
//     positions use it. Application headers are carried verbatim; names
//     starting with "msgkit-" are reserved and rejected by Publish. Records
//     from other producers get the ID "topic/partition/offset".
//   - Message.Offset is "partition:offset", e.g. "3:1042".
//   - Group: a Kafka consumer group (classic protocol, kafka-go's
//     ConsumerGroup). Members offer the assignment protocols
//     "msgkit-range" (range assignment that skips stale members, see
//     Recovery), "range" and "roundrobin", so groups shared with plain
//     kafka-go readers still agree on one.
//
// # Publishing
//
// Publish sends its records with kafka-go's Client.Produce and returns once
// every record is acknowledged with RequiredAcks (all in-sync replicas by
// default). Each partition has at most one produce request in flight; the
// records queued for it meanwhile, from any number of concurrent calls, all
// go in the next request (group commit). So a Publish of N records to an
// idle partition is one request, concurrent calls share requests, and no
// linger timer delays a lone call. Requests failing with a temporary error
// (leader change, broken or refused connection: the broker is unreachable)
// are retried in order, backing off from 50ms to 250ms, for up to
// unavailable_timeout (5s); records still failing then fail with an error
// wrapping messaging.ErrUnavailable (also when the call's context ends
// first). Publishing resumes within about 250ms of the broker's return. A
// failure returns a
// *messaging.PublishError naming the records that were not acknowledged (they
// may still have been written: retrying can duplicate, never lose). This is
// the work kafka-go's Writer does, minus its per-record metadata lookup and
// batch copies; WithWriter makes Publish use a given Writer instead.
//
// # Consuming
//
// A group subscription joins the consumer group; each generation's assigned
// partitions are read by one fetcher each and handed to the subscription's
// workers (messages with the same key go to the same worker, so per-key order
// holds with any concurrency). Offsets are committed every commit_interval,
// only up to the first record of each partition whose handler has not
// succeeded, and once more when partitions are revoked (rebalance) or the
// subscription closes: on revocation the member stops fetching, lets handlers
// in flight finish, releases what was queued and commits with the ending
// generation before it rejoins, so no commit is made for partitions it no
// longer owns (a commit rejected by the coordinator means redelivery, never
// loss). A crash redelivers what finished since the last commit.
//
// The client is not a messaging.BatchConsumer: kafka-go's group Reader hands
// out one record at a time (it fetches in batches underneath), so
// middleware/batch gathers batches from single deliveries. The
// RedeliveryBackoff option is ignored (Kafka has no redelivery schedule).
//
// A new group (no committed offset on a partition) starts at StartAt
// (default Earliest); Subscribe and Provision commit that starting point
// while the group has no members, so the group exists before Subscribe
// returns and nothing published afterwards is missed.
//
// A subscription without a group reads every partition from StartAt (default
// Latest, resolved before Subscribe returns) and commits nothing.
// Partitions added to a topic later are picked up by groups (on the next
// rebalance) but not by group-less subscriptions or reads.
//
// # Nack semantics
//
// Kafka has no per-message acknowledgement, so a handler error is handled in
// the process: the message is redelivered to the handler after its
// RetryAfter delay with Attempt+1, while the partition's committed offset
// stays before it until it succeeds (or is given up). Later records of the
// partition keep flowing meanwhile, so a redelivery can come after messages
// published after it (first deliveries keep per-key order), up to 10,000
// records past the stuck one, where the partition pauses until it is
// settled. If the member
// crashes or loses the partition first, the next owner gets the message from
// the committed offset with Attempt 1 again. MaxAttempts and Permanent
// errors give a message up: it is logged and committed past. A failed message
// is never skipped silently.
//
// # Recovery
//
// After a group error (a cut connection, a broker restart) kafka-go forgets
// the member ID and joins again as a new member. When a cut drops the
// coordinator's answer to such a join, the coordinator keeps a member nobody
// runs. Kafka removes it once its session times out (session_timeout); a
// rebalance meanwhile waits for it (up to rebalance_timeout). kfake, the
// in-process broker of the tests, never starts that member's session timer
// (the timer starts only once the join answer was delivered), so there it
// stayed in the group for good, and the group's leader gave it partitions
// nobody fetched. Every join of this adapter therefore carries the
// subscription's identity and a join counter: a leader from this adapter
// gives a member that is an earlier join of a subscription also present no
// partitions and removes it from the group (LeaveGroup on its behalf). A
// rebalance that waits for such a member still takes up to
// rebalance_timeout: keep it short where handlers are quick.
//
// # Clusters
//
// The URL's comma-separated hosts are the bootstrap brokers
// (kafka://h1:9092,h2:9092,h3:9092); the rest of the cluster comes from the
// metadata. Topics the client creates get replication= (default: the
// broker's default.replication.factor). When a partition's leader is lost,
// Publish retries (refused or broken connection, "not leader") until the
// client's metadata names the new leader. kafka-go's transport refreshes
// its metadata only on a timer, at a random point within its MetadataTTL,
// never after an error; the transport the client builds uses metadata_ttl
// (default 1s; kafka-go's default is 6s), so requests go to the old leader
// for at most about that long, at the cost of a metadata request every
// metadata_ttl/2 on average per client. TestFailoverPartitionLeader uses
// 500ms: with 1s publishing resumed 0.2-1.5s after the leader moved (over
// 1s in 4 of 10 runs).
// This applies to the transport the client builds, not to one given with
// WithTransport or WithWriter. TestFailoverPartitionLeader runs this against
// a three-broker kfake cluster: the leader's broker is cut off (every
// connection closed, new ones refused) while its partitions and the group
// coordinators move to other brokers; kfake has no replication, so the test
// covers the clients' failover, not the brokers' (acks=all on a real
// cluster is what keeps an acknowledged record through a leader's loss).
//
// # Stream
//
// Read reads a topic without a group from Earliest, Latest, a time (per
// partition, the first record with a timestamp at or after it) or an offset.
// An offset "p:o" positions partition p; the other partitions start at their
// earliest record (nothing after the position is missed). Several partitions
// can be positioned at once: "0:12,1:40".
//
// # Capabilities
//
// Persistent (with acks=all), Groups, Replay, ReplayByTime, GroupStartAt and
// PerKeyOrder. Lacking:
//
//   - AckDeadline: Kafka redelivers only when a member leaves or its session
//     times out, not when one handler is slow; a stuck handler holds its
//     partition's commit (and, on revocation, the rebalance) until it returns.
//   - BrokerAttempts: Attempt is counted in process (see Nack semantics).
//   - NativeDelay and NativeDeadLetter: delays are held in process; use the
//     deadletter middleware for a dead-letter topic.
package kafka
