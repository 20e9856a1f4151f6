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
//	ids=assign              assign | caller: whether Publish gives every
//	                        message an ID (see WithCallerIDs)
//	commit_interval=500ms   how often group offsets are committed
//	session_timeout=10s     consumer-group session timeout
//	heartbeat_interval=1s   group heartbeat (bounds how fast a rebalance is noticed)
//	rebalance_timeout=30s   how long the coordinator waits for members to rejoin
//	join_backoff=500ms      pause before rejoining after a group error
//	metadata_ttl=1s         how long cluster metadata is kept (bounds how long
//	                        Publish sends to a lost or replaced leader)
//	unavailable_timeout=5s  how long a published record waits for an
//	                        unreachable broker, from when it was published,
//	                        before failing with messaging.ErrUnavailable
//	                        (and Provision, DeleteTopic, Inspect, Topics,
//	                        Subscribe and Read, from the call)
//	client_id=msgkit        client ID sent to the brokers
//	tls=false               connect with TLS (system roots)
//	tls_skip_verify=false   do not verify the server certificate (tests only)
//	sasl=plain              plain | scram-sha-256 | scram-sha-512; credentials
//	                        from the URL's user:password (plain when only
//	                        credentials are given)
//
// Each parameter has an Option (partitions: WithPartitions, tls:
// WithTLSConfig, ...); a bad value, of a parameter or an option, makes Open
// and New fail with an error wrapping messaging.ErrInvalidOption that names
// it, as do options that contradict each other (a heartbeat interval not
// below the session timeout; WithWriter with WithBatchSize,
// WithBatchTimeout, WithRequiredAcks or WithCompression; WithMetadataTTL
// with a given transport).
//
// New builds a client from broker addresses and options, and can reuse
// existing kafka-go pieces: WithDialer (readers and groups), WithTransport
// (produce and admin requests), WithWriter (an existing *kafkago.Writer).
//
// # Mapping
//
//   - Topic: a Kafka topic of the same name, created on first use with the
//     configured partitions and replication unless auto_create=false
//     (Provision always creates it), and created again by Publish,
//     Subscribe and Read when another client deleted it since. With
//     auto_create=false, Publish and PublishAsync to a topic that does not
//     exist, or that another client deleted since, fail at once with an
//     error wrapping messaging.ErrTopicNotFound. Kafka refuses a topic
//     whose name differs from an existing one only in '.' versus '_'
//     (their metric names collide): that fails with ErrInvalidTopic naming
//     the topic and the rule. A group is the consumer group of the same
//     name.
//   - Key: the record key; its murmur2 hash picks the partition (as in the
//     Java client), so one key stays in one partition, in order. An empty
//     key is sent as a null key; the keyless records of one Publish go to
//     one partition, those of the next Publish to the next (round robin).
//   - ID travels in the record header "msgkit-id"; Time is the record
//     timestamp, so consumers see it with millisecond precision and AtTime
//     positions use it. Application headers are carried verbatim; names
//     starting with "msgkit-" are reserved and rejected by Publish. Records
//     from other producers, and with ids=caller (WithCallerIDs) messages
//     published without an ID (no header is written then), get the ID
//     "topic/partition/offset".
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
// are retried in order, backing off from 50ms to 250ms. A record not
// acknowledged within unavailable_timeout (5s) of when its call entered
// Publish (for PublishAsync, of when the message was queued) fails with an
// error wrapping messaging.ErrUnavailable, also when the call's context ends
// first: the time it waited behind the partition's earlier requests counts,
// so a call queued behind a request to an unreachable broker fails on time
// too (at once, when its deadline passed while it waited). The deadline is
// never sooner than unavailable_timeout after the partition's last
// acknowledged request: a broker that is slow but acknowledging is not
// unavailable, and the records queued behind it wait their turn. The deadline
// bounds the attempts, so a broker that takes a request and never answers
// fails it on time. The records of a request with time left are retried
// without those that failed. A request the broker refuses as too large
// (a topic's max.message.bytes may be below the 1 MB a request holds) is
// split in halves, sent one after the other, so only a record too large on
// its own fails (with messaging.ErrMessageTooLarge) and the others are
// written, in order. Publishing resumes within about 250ms of the
// broker's return. A failure returns a
// *messaging.PublishError naming the records that were not acknowledged (they
// may still have been written: retrying can duplicate, never lose). This is
// the work kafka-go's Writer does, minus its per-record metadata lookup and
// batch copies; WithWriter makes Publish use a given Writer instead.
//
// # Consuming
//
// The consumer side is the library's engine (package engine) over this
// adapter's driver: the engine runs Subscribe, SubscribeBatch and Read, the
// per-key worker pool, prefetch, local redelivery and its attempt count,
// backoff and bounded shutdown; the driver fetches records, tracks offsets
// and takes part in the consumer group.
//
// A group subscription joins the consumer group; each generation's assigned
// partitions are read by one fetcher each and handed to the engine's workers
// (messages with the same key go to the same worker, so per-key order holds
// with any concurrency). Offsets are committed every commit_interval, only up
// to the first record of each partition that is not settled (acknowledged or
// given up): workers settle out of order, across keys, and a commit never
// passes an unsettled record. When partitions are revoked (rebalance) the
// member stops fetching, drops the records it fetched but did not hand out
// yet, waits for the handed-out ones to be settled (at most half of
// rebalance_timeout, after which a stuck handler's message may be delivered
// twice; those held for a RetryAfter delay are released at once) and commits
// with the ending generation before it rejoins, so no commit is made for
// partitions it no longer owns; settlements arriving after that are ignored.
// A commit rejected by the coordinator means redelivery, never loss. A crash
// redelivers what was settled since the last commit.
//
// Close and Shutdown settle what the subscription holds (handled records
// are acknowledged; records fetched but not handled are released: their
// offsets stay uncommitted), commit, and leave the group at once, so the
// partitions go to the other members without waiting for session_timeout,
// and the next owner fetches the released records from the committed
// offset.
//
// The RedeliveryBackoff option is ignored (Capabilities().BrokerBackoff is
// false: Kafka keeps no redelivery schedule, and the engine applies none):
// a failed message comes back after its RetryAfter delay, at once without
// one (see Nack semantics).
//
// A new group (no committed offset on any partition of the topic) starts at
// StartAt (default Earliest); Subscribe and Provision commit that starting
// point while the group has no members, so the group exists before
// Subscribe returns and nothing published afterwards is missed. When the
// group has members (consuming other topics) the coordinator refuses that
// commit: the subscription then starts at the point resolved in Subscribe
// and commits it once its generation begins. A group whose offsets all
// expired (Kafka removes the offsets of a group without members after
// offsets.retention.minutes) is new again and starts at StartAt. A
// partition without a committed offset in a group that has one
// on another partition of the topic (a partition added to the topic later,
// or one whose offset alone was removed) starts at its earliest record,
// whatever StartAt says: nothing written to it is lost, including what was
// written before the rebalance that assigned it.
//
// A subscription without a group reads every partition from StartAt (default
// Latest, resolved before Subscribe returns) and commits nothing.
// Partitions added to a topic later are picked up by groups (on the next
// rebalance, which a member starts within about 5s of seeing a partition
// count other than the one it joined with, also when they were added
// during a rebalance) but not by group-less subscriptions or reads.
//
// Deleting the topic under a subscription or Read ends it with an error
// wrapping messaging.ErrTopicDeleted: a group learns of it from kafka-go's
// partition watcher (every 5s) or a failed commit, a reader without a group
// from a failed fetch or a check every 5s. The check asks a broker for the
// topic's metadata; a broker with auto.create.topics.enable recreates the
// topic then (as kafka-go's own metadata requests do).
//
// # Nack semantics
//
// Kafka has no per-message acknowledgement, so a handler error is handled in
// the process (Capabilities.BrokerAttempts is false): the engine redelivers
// the message to the handler after its RetryAfter delay with Attempt+1,
// while the partition's committed offset stays before it until it succeeds
// (or is given up). Later records of the partition keep flowing meanwhile,
// so a redelivery can come after messages published after it (first
// deliveries keep per-key order), up to 10,000 records past the stuck one,
// where the partition pauses until it is settled. If the member crashes or
// loses the partition first (its subscription closed included), the next
// owner gets the message from the committed offset with Attempt 1 again,
// at once: a RetryAfter delay still running is not kept. On a rebalance
// the member releases the messages it holds for a delay at once (their
// delivery's driver.Delivery.Lease is the generation) rather than waiting
// them out, and does not handle them again: only the next owner does.
// MaxAttempts and Permanent errors give a message up: it is logged and
// committed past. A failed message is never skipped silently.
//
// A nacked message is therefore never handed to another member of the group
// while this one runs (the conformance case NackHandOver is gated on
// AckDeadline, per-message delivery tracking, for that reason): on a log only the partition's owner
// fetches it, and giving the whole partition away for one failing message
// would stop its other records too.
//
// # Recovery
//
// A join the coordinator refuses with an error that joining again cannot
// change (an invalid session timeout, an inconsistent group protocol, a
// group or topic authorization failure, a full group: every Kafka error
// code but the temporary ones, a rebalance in progress, an unknown member
// ID and an illegal generation) ends the subscription with an error
// wrapping kafka-go's. The other group errors, failed connections among
// them, are retried every join_backoff, as follows.
//
// After a group error other than a rebalance (a cut connection, a broker
// restart, an unreachable coordinator) kafka-go's ConsumerGroup forgets the
// member ID, tries a LeaveGroup for it (which fails while the connection is
// what broke), waits join_backoff and joins again as a new member. The old
// member stays in the group until its session times out (session_timeout
// after its last heartbeat), and a rebalance waits for every member
// (up to rebalance_timeout) before it completes: so the new member and
// everyone else in the group waited for the one they replaced. Real Kafka
// and kfake behave alike here. The subscription therefore removes the
// member kafka-go gave up (LeaveGroup on its behalf, retried every 250ms
// until the coordinator answers, for at most session_timeout), and the
// rebalance completes as soon as the members that are running have
// rejoined. A generation's final commit that failed on its connection is
// retried on new connections (every 250ms at most, for up to half of
// rebalance_timeout): when the broker is back in time it lands, kafka-go
// then rejoins with the member ID it kept, and the next owner redelivers
// nothing handled before the cut. In TestNetworkCutsLoseNothing (three cuts of 2-3s, 1-1.5s
// apart) groups resumed 2.5-8.2s after the last cut before this and
// 0.2-0.6s after (10 runs each); duplicates per group were 40-440 (the
// commit retry halved them). See the test's log for the figures of a run. A group
// whose members were all cut is back about join_backoff after the broker;
// members that were not cut notice the rebalance at their next heartbeat
// (heartbeat_interval), so expect join_backoff + heartbeat_interval plus a
// join round trip.
//
// When a cut drops the coordinator's answer to a join instead, neither
// kafka-go nor this adapter learns the member ID it was given, and the
// coordinator keeps a member nobody runs. Kafka starts every member's
// session timer when it completes the join phase, answered or not, and
// removes it after session_timeout; a rebalance meanwhile waits for it. kfake,
// the in-process broker of the tests, starts a member's session timer only
// once its join answer was delivered (kfake groups.go at the pinned
// commit, group.reply, lines 1705-1715: updateHeartbeat is skipped when
// creq.reply fails), and a leader's SyncGroup stops the timer that removes
// members that never synced (completeLeaderSync, line 1483, calls
// clearPendingSync), so there such a member stays
// in the group for good, and the group's leader gave it partitions nobody
// fetched. Every join of this adapter therefore carries the subscription's
// identity and a join counter: a leader from this adapter gives a member
// that is an earlier join of a subscription also present no partitions and
// removes it from the group (LeaveGroup on its behalf). If that member was
// made the group's leader, the others wait for its SyncGroup until
// rebalance_timeout (kfake) or session_timeout (Kafka): keep
// rebalance_timeout short where handlers are quick.
//
// A broker stopped while a group is rebalancing: kfake saves every member
// at shutdown, also those whose JoinGroup was still waiting for its answer
// (their clients never learnt their member IDs), and once back waits for
// them until their session times out (session_timeout after they joined);
// the group stalls until then. A Kafka coordinator loads a group from its
// log, which holds the members of the last completed generation only, so
// it does not wait for such members. The outage tests (TestOutageCut,
// TestOutageRestart) therefore take the broker away while the groups are
// steady; TestNetworkCutsLoseNothing cuts during rebalances.
//
// Settings and their trade-offs: heartbeat_interval bounds how soon a member
// notices a rebalance (one small request per interval and member);
// session_timeout is how long the partitions of a member that crashed
// without Close stay unread (shorter: quicker takeover, but a member paused
// longer than that, by a GC or a stalled host, loses its partitions);
// rebalance_timeout is how long a rebalance may wait for slow members and
// for handlers to finish (half of it) when partitions are revoked;
// join_backoff is the retry pause after a group error (shorter: quicker
// return, more join attempts and warnings while the broker is down). Cut
// recovery does not depend on session_timeout any more.
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
// can be positioned at once: "0:12,1:40". Earliest and Latest are resolved
// before Read returns. Records of one partition arrive in log order;
// partitions are read concurrently and interleave. Nothing is committed. A
// handler error ends the read; Err reports it.
//
// # Inspection
//
// Client.Inspect (messaging.Inspector) reads a topic's figures from the
// cluster without creating the topic: per partition the first and last
// offsets (ListOffsets), and per group that committed offsets for the topic
// or has members on it (ListGroups, one OffsetFetch per group of the
// cluster, DescribeGroups) the lag, end minus committed offset, summed over
// partitions, the members on the topic, and the age of the oldest record at
// a committed offset (one Fetch per partition with a lag). Kafka keeps no
// delivery state: records fetched but not committed yet count in the
// backlog and the age, and in flight and redeliveries are unknown. Bytes is
// unknown. Client.Topics lists the cluster's topics (internal ones left
// out), as kafka-go's metadata cache knows them (refreshed every 10s).
//
// # Capabilities
//
// Persistent (with acks=all), Groups, Replay, ReplayByTime, GroupStartAt and
// PerKeyOrder. Lacking:
//
//   - AckDeadline: Kafka redelivers only when a member leaves or its session
//     times out, not when one handler is slow; a stuck handler holds its
//     partition's commit until it returns (and, on revocation, the
//     rebalance for up to half of rebalance_timeout).
//   - BrokerAttempts: Attempt is counted in process (see Nack semantics).
//   - NativeDelay and NativeDeadLetter: delays are held in process; use the
//     deadletter middleware for a dead-letter topic.
package kafka
