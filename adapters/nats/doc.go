// Package nats is the NATS adapter: JetStream (the default) for persistent
// topics, consumer groups and replay, and core NATS for fire-and-forget
// events; native request/reply in both modes (Client.Request, Client.Serve,
// the Requester interface). It registers the schemes "nats" and "tls".
//
// # URL
//
//	nats://[user:password@|token@]host:4222[?param=value&...]
//	nats://host1:4222,host2:4222,host3:4222?replicas=3   (a cluster)
//	tls://host:4222?...            (TLS; nats:// with tls_ca/tls_cert also does TLS)
//
// Parameters (unknown ones are errors):
//
//	mode=jetstream|core       default jetstream
//	name=N                    connection name shown by the server
//	token=T                   token authentication
//	creds=FILE                user JWT + nkey credentials file
//	nkey=FILE                 nkey seed file
//	tls_ca=FILE, tls_cert=FILE, tls_key=FILE
//	connect_timeout=5s, reconnect_wait=250ms
//	prefetch=256              messages pulled ahead per subscription
//	max_in_flight=4096        unacknowledged JetStream publishes per client
//	max_ack_pending=N         MaxAckPending of created consumers
//	publish_timeout=30s       wait for one publish acknowledgement
//	request_timeout=10s       Request without a context deadline
//	unavailable_timeout=5s    Publish's (and the topology calls') wait for
//	                          a lost connection, or for an answer from a
//	                          server answering nothing, then
//	                          messaging.ErrUnavailable
//	streams=create|bind       create a stream per topic, or bind to the
//	                          existing stream capturing the topic's subject
//	stream_prefix=P           prefix of created stream names
//	storage=file|memory, replicas=1, max_age=0, max_bytes=0,
//	retention=limits|interest, duplicates=2m   (created streams)
//	ids=assign|caller         Publish gives every message an ID and Time
//	                          (assign), or sends only those callers set
//
// Each has an Option (WithMode, WithPrefetch, ...); a bad value, of a
// parameter or an option, makes Open (and New) fail with an error wrapping
// messaging.ErrInvalidOption that names it, as do options that contradict
// each other (WithExistingStreams or core mode with the options about
// created streams). New wraps an existing *nats.Conn instead, leaving it
// to the caller.
//
// # Clusters
//
// A URL with several comma-separated hosts is nats.go's server list: the
// client connects to one of them (in random order) and, when that server
// is lost, reconnects to another (reconnect_wait applies per server), also
// to servers the cluster announced after the connection. Credentials and
// parameters apply to every host. replicas=3 makes the streams the client
// creates replicated on three servers (R3; at most 5, at most the cluster
// size), which survive the loss of one server: when the stream's leader
// dies, the stream and its consumers elect new leaders among the others
// (nats-server 2.9 took about 4-7s in TestFailoverStreamLeader, its raft
// election timeout; publishing and consumption resume as soon as the new
// leaders serve). A message published to the dead leader, or while the
// stream has no leader, is never acknowledged (or answered with "no
// responders", after which the adapter looks the stream up again, also
// within publish_timeout): its Publish call fails after publish_timeout
// (or the context's end; or unavailable_timeout after the call when the
// server answers nothing else on the connection meanwhile) and reports it
// failed, never
// confirmed and lost (publishing it again is safe: the stream drops a
// message ID it holds). publish_timeout therefore bounds how long after the
// election a publisher stays stuck: with the default 30s it is up to 30s,
// with publish_timeout=1s (TestFailoverStreamLeader) under 1s, at the cost
// of failing messages whose acknowledgement takes longer than that on a
// slow server. Messages delivered but not yet acknowledged come again.
// A subscription whose consumer lost its leader pulls again as soon as the
// server announces the new one (the consumer's leader-elected advisory), or
// after two silent heartbeats (2s); lookups and acknowledgement
// confirmations that get no answer while the consumer has no leader are
// given up after 1s and retried, so a group resumes within about a second
// of the election (TestFailoverStreamLeader: 2-266ms in 10 runs).
//
// # JetStream mode
//
//   - A topic is the subject of the same name, stored in its own stream
//     (StreamName: '.' becomes '~', which names cannot contain, so the
//     mapping is injective and reversible; groups map to consumer names the
//     same way), created on first use with the
//     configured storage, replicas, age and size limits and retention; or,
//     with WithExistingStreams, the stream that already captures the subject.
//     A creation that races the deletion of the account's last stream (the
//     server then removes the account's streams directory, and answers
//     "error creating store for stream") is made once more.
//   - Publish is pipelined (asynchronous publishes, at most max_in_flight
//     unacknowledged) and returns once the stream acknowledged every message.
//     Each message carries its ID as Nats-Msg-Id: the stream drops a message
//     whose ID it already holds within its duplicate window (duplicates=,
//     default 2m), and Publish reports that one with messaging.ErrDuplicate
//     (Capabilities().DedupeByID). Durability is the server's: a
//     file-store server syncs to disk per its sync_interval.
//   - With ids=caller (WithCallerIDs) Publish generates no ID nor Time: a
//     message carries the ID and Time its caller set, and a payload-only
//     message goes out without a header block, as from nats.go's plain
//     publish. A consumer then names a message published without an ID
//     "<stream>:<sequence>" (stable across redeliveries) and gives it the
//     time the stream stored it. Only messages with a caller's ID are
//     deduplicated, so publishing again a message whose acknowledgement was
//     lost may store it twice. The trade: the Nats-Msg-Id on every message
//     and the server's duplicate tracking cost about a fifth of the publish
//     rate (README, Performance); retries are safe only with it.
//   - A Group is a durable pull consumer (ConsumerName) with explicit acks,
//     filtered on the topic's subject, created at StartAt (default Earliest).
//     AckDeadline is the consumer's AckWait (the latest subscriber's value
//     wins). Without a Group, a subscription has its own ephemeral consumer
//     (default start Latest).
//   - MaxAttempts is enforced by the engine, not as the consumer's
//     MaxDeliver, which stays unlimited (2^31-1 with a BackOff; a consumer
//     an earlier version made with MaxDeliver = MaxAttempts is updated at
//     the next Subscribe). The server counts every delivery, also the naks
//     that release messages no handler finished (a stopping subscription's
//     prefetched messages, an interrupted handler's), and would drop a
//     message released at its last delivery without a log: with
//     MaxAttempts(1), every message a subscription held when it closed.
//     The releases still count in Attempt, so a message released k times
//     gets k fewer handler calls before it is given up. The cost: no
//     server-side backstop for a message whose handling crashes the
//     process; it comes back after each AckDeadline, as on Redis and Kafka.
//   - Delivery is at-least-once. The consumer side is the library's engine
//     (package engine) over this adapter's driver: a subscription sends
//     pull requests for no more than the engine has room for, so the
//     server never has more than Prefetch of its messages delivered and
//     unsettled, and the engine runs the handlers (Concurrency, per-key
//     order, Prefetch held). With Subscribe, the room that settled
//     messages leave is asked for in an acknowledgement (AckNext, "+NXT"),
//     which the server applies after the outcomes sent before it and
//     before the request it carries: no round trip is awaited
//     (SubscribeBatch awaits the server's confirmation of each settled
//     batch instead).
//     nil acks; an error naks (RetryAfter: nak with delay, kept by the
//     server); Permanent, and the last allowed attempt, terminate the
//     message (logged). A nak without delay, and a message released
//     unhandled (the subscription closed or shut down first, or its handler
//     returned the context's error after Close or Shutdown), is nak'ed at
//     once: another member of the group gets it right away, not after
//     AckDeadline. Before its first release a stopping subscription ends
//     its pull requests on the server (drains their inbox, then reads the
//     consumer's info, which makes the server drop requests nobody listens
//     to), so a released message does not come back to it for one more
//     delivery; and it naks nothing while such a stale request waits, as
//     nats-server 2.9 would hold the nak'ed message until AckDeadline.
//     Attempt is the server's delivery count. While messages
//     wait for or run in a handler the engine sends in-progress signals
//     every third of their ack wait, so a slow handler keeps its messages;
//     the messages the pull delivered and the engine has not taken yet get
//     theirs at the same time (with Concurrency 1 the engine may run a
//     handler in its fetching goroutine and take nothing until it
//     returns). Only a crashed or disconnected client has its messages
//     redelivered, after AckDeadline.
//   - RedeliveryBackoff is the consumer's BackOff: the ack wait of the k-th
//     delivery is its (k-1)-th entry (the last repeats) instead of
//     AckDeadline, so a crashed member's messages come back on the
//     schedule, and a failed attempt without RetryAfter is nak'ed with its
//     entry as delay. The schedule is cut to MaxAttempts-1 entries; the
//     consumer's MaxDeliver is then 2^31-1 (servers before 2.10 reject -1
//     with a BackOff). Messages the server has pushed to the
//     client but the engine has not taken yet (up to twice Prefetch: the
//     pull buffer and the hand-over to the engine) get in-progress signals
//     only with those of the messages the engine holds, at the pace of
//     those messages' ack wait: with a first entry shorter than they wait
//     there, another member may get them too (a duplicate, never a loss).
//     Keep the shortest entry above a prefetch's handling time, or lower
//     Prefetch.
//   - SubscribeBatch (messaging.BatchConsumer) uses the consumer Subscribe
//     would use; a batch is what arrives up to BatchSize, waiting at most
//     BatchWait after its first message, and each message is settled by
//     its entry of the handler's result as Subscribe settles a handler's.
//   - Close returns promptly, also while a subscription waits for messages
//     (the wait is cancelled), and within about unavailable_timeout while
//     the server is unreachable (a subscription waits at most 1s for the
//     end of its pull, and leaves an ephemeral consumer it cannot delete
//     to expire on the server); Shutdown(ctx) waits for running handlers
//     until ctx ends, then cancels them and naks every message not finished
//     back to the group at once.
//   - A subscription or Read whose topic's stream is deleted (DeleteTopic,
//     or by anyone) ends with an error wrapping messaging.ErrTopicDeleted,
//     also when the stream is created again (a Publish recreates it) before
//     the subscription finds its consumer gone: it remembers the stream's
//     creation time from when it started (one stream info request more per
//     Subscribe and Read), and a stream of its name found with another
//     creation time is the topic deleted, never resumed on (which skipped
//     the new stream's first messages).
//     A group's durable consumer created again on the new stream in that
//     moment stays, as a new subscription of the group would create it.
//     With WithExistingStreams, where DeleteTopic leaves the stream and
//     deletes the topic's consumers, so does a group subscription whose
//     consumer is deleted under it (DeleteTopic, or by anyone), found
//     missing by a lookup, with or without a pull waiting, or when it
//     resumes; and a group-less subscription or a Read whose consumer is
//     found deleted after the server told its waiting pull so, or (a
//     subscription) with no reconnect since the consumer last answered (an
//     ephemeral consumer also expires while its client is away; a Read's,
//     which gets no in-progress signals, also while its handler runs long).
//     A consumer lost otherwise (deleted while its stream exists without
//     WithExistingStreams, or not found after a server restart) is
//     recreated; disconnects and leader elections are retried with backoff.
//     A group-less subscription resumes on its ephemeral consumer, which
//     the server keeps for a minute (or the AckDeadline, or the longest
//     RedeliveryBackoff entry, if longer) after its client went away, so
//     what it holds for redelivery (nak'ed with RetryAfter, or delivered
//     and not acknowledged) comes again; only once that consumer is gone
//     (expired, or not restored by a restarted server) does the
//     subscription get a new one, after the last message it received, and
//     messages the old one held are lost to it. A Read always resumes
//     after the last message it received. A closed connection ends the
//     subscription with an error wrapping messaging.ErrClosed.
//   - Messages with the same Key reach a subscription's handler in publish
//     order (first deliveries), also with Concurrency > 1.
//   - Message.Offset is the stream sequence (decimal). Read uses an
//     ephemeral consumer without acknowledgements from DeliverAll / the
//     current end / a sequence / a time, read with pull requests of up to
//     100 messages like a subscription's; when a pull is lost (a reconnect,
//     a new leader, a failed pull) it is created again after the last
//     message returned, as what the server sent meanwhile is not
//     redelivered.
//   - The connection reconnects forever; pull subscriptions and reads
//     resume after a reconnect or server restart; unacknowledged messages
//     are redelivered.
//
// # Core mode
//
// Plain subjects, nothing stored. Publish returns once the server received
// the messages (a flush), whoever listens.
//
// Core mode is the fire-and-forget mode, and its publish path does no
// per-message work the caller did not ask for: Publish (and PublishAsync)
// set no ID and no Time (Capabilities().PublishAssignsID is false), and a
// message with nothing but a payload goes out without a header block,
// exactly as nats.go's Publish sends it. PublishAsync without a callback
// (done nil) is nats.go's Publish after Publish's checks: the message is
// not tracked, and the next Flush or Close flushes the connection once for
// all such messages (see Client.PublishAsync). Core NATS neither
// redelivers nor deduplicates, so an ID there serves only the user's own
// correlation: set Message.ID (and Time) to send them, and they arrive as
// set. A consumer gives a message that came without an ID one generated on
// delivery, unique and known to that delivery only: its subscription's
// NUID (nats-io/nuid) and the count of messages the subscription named
// before it, "<NUID>.<n>". One without a Time gets the time its
// subscription took it from the connection. Request and Serve's replies
// still set ID and Time like JetStream-mode Publish: one message per round
// trip, whose ID names it in both sides' logs.
//
// A Group is a queue group (members
// share messages), but a failed handler's message is logged and dropped:
// core NATS cannot redeliver, so the Groups capability is not claimed; nor
// are Persistent, Replay or AckDeadline. Attempt is always 1 and Offset
// empty. Same-key order holds per subscription. Messages received but not
// handled when a subscription closes are dropped. SubscribeBatch and Read
// fail with messaging.ErrUnsupported.
//
// # Headers
//
// Message.Header entries are NATS headers of the same name; ID, Key and
// Time travel as Nats-Msg-Id, Messaging-Key and Messaging-Time (each only
// when set: in core mode a message may carry none), and are removed from
// Header on delivery. Entries NATS headers cannot carry verbatim
// (reserved Nats-/Messaging- names; Status and Description, which NATS
// clients read as a server status on a message without payload; names
// other than printable ASCII without ':', the double quote and the
// separators ()/,;<=>?@[\]{} that nats.go refuses in a name; values that
// are not UTF-8, hold control characters such as CR/LF, or have edge white
// space) travel encoded in Messaging-Encoded, so the consumer sees the
// publisher's headers byte for byte.
// MaxMessageSize is the server's max_payload less 512 bytes for these
// headers; a message whose encoding (payload and every header) still
// exceeds max_payload, or whose header block exceeds the 65535 bytes
// JetStream stores, fails with ErrMessageTooLarge naming the limit.
//
// # Inspection
//
// In JetStream mode Client.Inspect (messaging.Inspector) reads a topic's
// figures from the server without creating anything: the stream's state
// (messages, bytes, first and last sequence; with WithExistingStreams the
// subject's message count only), and per group (durable consumer filtered
// on the topic) NumPending as the backlog, NumAckPending as in flight,
// NumRedelivered (pending messages delivered more than once), and the age of
// the first message after the consumer's delivered sequence. Consumers is
// unknown: groups are pull consumers, and the server counts pull requests,
// not subscriptions. Client.Topics lists the topics of the streams the
// adapter created. In core mode both fail with messaging.ErrUnsupported:
// core NATS keeps no messages nor consumer state.
//
// # Capabilities
//
// JetStream: Persistent (file storage), Groups, Replay, ReplayByTime,
// GroupStartAt, PerKeyOrder, AckDeadline, BrokerBackoff, NativeDelay,
// DedupeByID (within the stream's duplicate window), and BrokerAttempts on
// servers 2.10 and later (a 2.9.10 server was seen restarting a nak'ed
// message's delivery count when its redelivery met the pull request of a
// subscription that had ended, so Attempt is not claimed reliable there).
// Not NativeDeadLetter: a terminated message stays
// in the stream (the server publishes a termination advisory); use
// middleware/deadletter.
package nats
