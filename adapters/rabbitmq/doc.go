// Package rabbitmq is the RabbitMQ adapter, on github.com/rabbitmq/amqp091-go.
// It registers the schemes "amqp" and "amqps".
//
// # URL
//
//	amqp://user:password@host:5672/vhost?param=value&...
//	amqps://user:password@host:5671/vhost?...   (TLS; see WithTLSConfig)
//	amqp://user:password@host1:5672,host2:5672,host3:5672/vhost?...   (a cluster)
//
// Parameters (the last column names the Option of the same meaning):
//
//	max_message_size=4MiB       largest Message.Size accepted          WithMaxMessageSize
//	prefetch=100                default QoS prefetch of subscriptions  WithPrefetch
//	publish_channels=8          confirm channels shared by Publish     WithPublishChannels
//	streams=true                record topics in stream queues         WithStreams
//	                            (Replay)
//	dead_letter_exchange=X      exchange that receives given-up        WithDeadLetterExchange
//	                            messages
//	reconnect_min=100ms, reconnect_max=300ms   reconnect backoff       WithReconnectBackoff
//	unavailable_timeout=5s      Publish's and the topology calls'      WithUnavailableTimeout
//	                            wait for a connection (or on a
//	                            connection the broker blocked, or
//	                            for a silent broker's answer), then
//	                            messaging.ErrUnavailable
//	management=URL              management API URL, http(s)://host:15672,  WithManagement
//	                            without credentials (see Inspection)
//	heartbeat=D                 AMQP heartbeat interval (default: unavailable_timeout, 5s-10s)
//	connection_name=N           connection name shown by the broker
//
// Unknown parameters are errors. New wraps an *amqp091.Connection the
// caller already has (WithRedial lets it reconnect).
//
// # Topology
//
//   - A topic is a durable topic exchange named like the topic. Names starting
//     with "amq." are reserved by RabbitMQ and fail with ErrInvalidTopic.
//   - A group is a durable quorum queue "<topic>~<group>" bound to the exchange
//     with "#". Subscriptions of one group share its messages; each group gets
//     every message.
//   - A subscription without a group gets an exclusive, auto-deleted classic
//     queue bound to the exchange; it lives as long as its connection, so it
//     misses what is published while the client reconnects. DeleteTopic
//     tells it with a message (see Consuming).
//   - With WithStreams, the topic also gets a stream queue "<topic>~~stream"
//     (x-queue-type=stream) bound to the exchange, which Stream.Read reads.
//   - "<topic>~~queues" is a small durable queue listing the queues created for
//     the topic, so DeleteTopic, from any process, deletes all of them.
//
// RabbitMQ routes only to queues that exist: a group receives what is published
// after its queue was declared (by Provision or the first Subscribe), and
// Publish fails with ErrUnroutable for a message no queue receives (with
// WithStreams the stream queue always receives it, so that never happens). Call
// Provision(topic, groups...) before publishing when publishers may start
// first. Consequently a group cannot start at an earlier Position
// (Capabilities().GroupStartAt is false): Subscribe with Group and a StartAt
// other than Earliest (which means "from the queue's creation") fails with
// ErrUnsupported, as does an ephemeral subscription not starting at Latest.
//
// # Publishing
//
// Publish declares the topic's exchange (once per connection), sends all
// messages of the call on one confirm-mode channel with mandatory set, without
// waiting in between, then waits for every confirm; it returns nil only when
// all were confirmed. Returned (unroutable) messages fail with ErrUnroutable,
// negatively confirmed ones with ErrNacked, inside a *messaging.PublishError.
// Concurrent Publish calls use a pool of channels. If the connection drops
// before the confirms arrive, the unconfirmed messages are sent again on the
// next connection (possible duplicates, no loss) for as long as the context
// allows. The message Key is the routing key (at most 255 bytes). Time goes
// in the AMQP timestamp, which has seconds; the rest travels in the message
// ID when Publish made both (a version 7 UUID starts with its creation time,
// 256 ns steps), otherwise in the header "x-msgkit-time" (Unix nanoseconds).
// So a message with its own ID or Time costs a header table, one without
// costs none. A version 7 UUID from another publisher is taken for the time
// only when it agrees with the AMQP timestamp to the second. Headers follow
// messaging.ValidateHeader (names starting with "x-msgkit-" and the ones
// RabbitMQ sets, x-death, x-delivery-count, x-stream-offset, ..., are
// refused with ErrInvalidHeader). A header named "CC" or "BCC", which
// RabbitMQ would read as extra routing keys (refusing a string there by
// closing the channel), travels as "x-msgkit-header-CC" ("-BCC"), and
// consumers of this package give it back under its own name. A message a
// consumer could not receive fails with ErrMessageTooLarge naming the
// limit: more than 8192 header entries (amqp091-go's decoding limit), or
// properties and headers larger than one frame of the negotiated frame_max
// (AMQP sends them in a single frame; the body may span many). A message
// the broker refuses by closing the channel (PRECONDITION_FAILED: larger
// than its max_message_size, a limit AMQP does not tell the client) fails
// alone with the broker's reason, wrapping ErrMessageTooLarge for the
// size: the messages of its call or PublishAsync batch not confirmed are
// then sent one at a time until the broker refuses one again (those
// before it are sent again: possible duplicates), and the rest together.
//
// A broker low on memory or disk (a resource alarm) stays connected but
// blocks publishing: it sends connection.blocked, stops reading from the
// connections that publish, and the confirms do not come. The client follows
// connection.blocked and connection.unblocked on each connection it opens.
// While its connection is blocked, Publish waits; once the block has lasted
// unavailable_timeout (5s, WithUnavailableTimeout), counted from the start of
// the call or of the block, whichever is later, Publish fails the messages
// not confirmed with an error wrapping messaging.ErrUnavailable that names
// the broker's reason ("low on memory"), and abandons the channel, as when
// the context ends (for PublishAsync, counted from when the message was
// queued, or the block, whichever is later: the time it waited behind
// earlier batches counts). Such a message may still be taken and confirmed
// when the alarm clears (a retry can duplicate, never lose). A Publish whose write
// the broker stopped reading mid-way (a burst larger than the socket
// buffers) cannot be given up without ending the write: once the block and
// that write have lasted unavailable_timeout, the client closes the
// connection (a New connection too) and redials, and the messages not
// confirmed fail with ErrUnavailable, without being resent. Closing a
// subscription (Subscription.Close, Client.Close) waits for the broker's
// channel.close-ok, and a delayed retry's declarations, at most until the
// block has lasted unavailable_timeout (or the settle timeout, 10s; or
// until a broker that answers nothing, see below, has been silent for
// unavailable_timeout since the close began or its last answer), then
// lets the close finish in the background (the retry is requeued at once
// instead): the broker requeues the subscription's unacknowledged messages
// when it reads the close (the alarm clears) or loses the connection. So
// Close returns within about twice unavailable_timeout under an alarm
// (once for PublishAsync, once for the subscriptions), each PublishAsync
// message written failed with ErrUnavailable (one not yet written, with
// messaging.ErrClosed at once), and the connection closed without the
// broker's close-ok, which it would not send. Provision, Subscribe, Read,
// DeleteTopic, TopicExists and Inspect, and a subscription starting again
// after a lost connection, wait for the broker's answers until their
// context ends or the block has lasted unavailable_timeout (counted from
// the call or the block, whichever began later), then fail with
// ErrUnavailable (a subscription retries) and let what was sent finish in
// the background. On a connection Open dialled, they also fail with
// ErrUnavailable once the broker has sent nothing on it (no answer, no
// heartbeat) for unavailable_timeout, counted from the call or from the
// broker's last answer, whichever is later: a broker that takes the
// requests and never answers (a network dropping its packets, a hung
// node) is noticed, while a slow one answering each request within the
// timeout of the answer before is waited for however long the call takes
// in all. So is a single answer slower than the timeout when
// unavailable_timeout is 5s or more: Open asks for an AMQP heartbeat of
// unavailable_timeout (whole seconds, 5s to 10s; the heartbeat parameter
// or WithAMQPConfig sets another), and a live broker sends one every half
// heartbeat while it works on the answer. With a shorter timeout, or a
// heartbeat longer than twice the timeout, a single slower answer fails
// the call. The connection is then closed, what it carried being lost, and
// the client redials; a redial whose handshake the broker stops answering
// for unavailable_timeout is given up and tried again (Open, given up the
// same way, tries the next host). Any write on such a connection (a
// Publish larger than the socket buffers, a settlement) that makes no
// progress for unavailable_timeout while the broker sends nothing (a
// stalled link or a hung node: the broker reads nothing, the connection
// stays open) ends the same way: the client closes the socket, which ends
// the write, and the call fails with ErrUnavailable. A connection given to
// New (or by WithRedial) has no such bound: the client cannot see its
// answers. While
// the broker is unreachable (the connection lost,
// the client redialling) they wait for a connection until their context
// ends or unavailable_timeout has passed since the call (or since the
// loss, when that came later), then fail with ErrUnavailable. A delayed
// retry (RetryAfter) settled while the broker is unreachable is given up
// at once when the client has noticed the loss of the connection the
// message came on (the broker requeued the message then; see Consuming);
// otherwise it waits for a connection until unavailable_timeout has passed
// since the loss (or the settle timeout ends), then is given up and the
// message requeued instead (the broker redelivers it). Publish and
// PublishAsync follow the same silence rule: a confirm (or the opening of a
// publish channel, or the declaration of the topic on the connection)
// awaited while the broker has sent nothing on the connection for
// unavailable_timeout, counted from the call or its last answer, whichever
// is later, fails with ErrUnavailable (the message may still have been
// stored: a retry can duplicate it) and the connection is replaced; a slow
// confirm that comes within the timeout of the broker's last answer is
// waited for, bounded only by the context. On a connection given to New (or
// by WithRedial) only the context bounds it.
//
// What a call sent and let finish in the background (its context ended,
// or one of the bounds above) comes before the client's later calls on the
// same topic: Provision, DeleteTopic, TopicExists, Inspect, Subscribe,
// Read and the first Publish to the topic on a connection wait for it
// (logging at debug level that they do) before they send anything, for at
// most unavailable_timeout, within their own bounds (a call whose context
// ends meanwhile returns, and its work still comes after). So a
// DeleteTopic made after a Provision that failed with its context's error
// deletes the queues that Provision declares later, and a Provision after
// such a DeleteTopic is not undone by it. Calls of other clients are not
// ordered so.
//
// # Consuming
//
// The consumer side runs on the library's engine (package engine), which
// owns the subscription lifecycles, the worker pool, Close and Shutdown,
// and reopening after errors; this adapter's driver (driver.go) holds the
// wire calls. Manual acknowledgements after the handler, QoS prefetch = the
// Prefetch option (at most 65535, AMQP's prefetch-count having 16 bits: a
// larger Prefetch or WithPrefetch fails with ErrInvalidOption), Concurrency
// workers with per-key order (messages of one key go to one worker, in
// queue order). Delivery is at-least-once.
// SubscribeBatch gathers batches from the deliveries within the prefetch
// window (AMQP pushes them one by one). The RedeliveryBackoff option is
// ignored (quorum queues have no redelivery schedule; RetryAfter delays use
// TTL queues). Settlement runs on one goroutine per subscription, off the
// handlers' path, so a delayed retry's publish never holds up a handler.
// Acknowledgements share the connection's writes with publishing: a
// Publish whose write a broker that reads nothing holds (the socket
// buffers full) holds them all. Settling waits for its sends until the
// settle timeout (10s) or until the broker has answered nothing for
// unavailable_timeout since the settling began or its last answer (on a
// connection Open dialled, which is then closed, ending that write, and
// redialled), then lets them finish in the background, in order; a
// message whose settlement never reaches the broker is redelivered.
//
// Acknowledgements are batched per channel: a contiguous run of delivery
// tags whose handlers all succeeded is acknowledged with one basic.ack
// (multiple=true) when it reaches a quarter of the prefetch, or 5ms after
// the first of them; successes behind a message still being handled (a
// multiple ack would cover it) are acknowledged one by one after at most
// 10ms, or at once when half the prefetch waits. A multiple ack never covers
// a message whose handler is running or failed; nacks are sent at once,
// individually. Close sends the waiting acks before closing the channel;
// acks waiting when a channel is lost are dropped (never sent on the next
// channel), so those messages are redelivered.
//
//   - An error requeues the message with basic.reject (requeue); a
//     Release (a message a stopping subscription returns unhandled, or
//     whose handler its stop interrupted at the last attempt) is requeued
//     with basic.nack. Attempt is x-delivery-count + 1, counted by the
//     quorum queue, so it survives consumer restarts. From RabbitMQ 4.3
//     only basic.reject counts (a failure), so a release costs no attempt;
//     before 4.3 both count (see the delivery limit below). Without a
//     group the exclusive classic queue counts no deliveries: the engine
//     keeps a failed message unacknowledged and hands it to the
//     subscription again itself, counting Attempt, so MaxAttempts holds
//     there too.
//   - RetryAfter(err, d) on a group: the message is republished (with
//     confirm) to a TTL queue "<topic>~<group>~~retry-<ms>ms" (delay rounded
//     up to 100ms) that dead-letters it back into the group's queue after d,
//     then acknowledged: the broker keeps the delay (NativeDelay). Attempt
//     keeps counting across the detour. An unused retry queue expires a minute
//     after its delay. When the channel the message came on is lost before
//     the copy is published (checked again after any wait for a reconnect),
//     no copy is published: the broker has requeued the message and
//     redelivers it at once, the delay lost. When the channel is lost after
//     the copy was published and before the acknowledgement, both come
//     back, the original at once and the copy after d (at-least-once).
//     Without a group the engine holds the message
//     unacknowledged for d and then hands it to the subscription again.
//   - MaxAttempts(n): the client gives the message up after the n-th failed
//     delivery. From RabbitMQ 4.3, where only failures (basic.reject) count
//     toward a quorum queue's x-delivery-limit, a queue Subscribe creates
//     is declared with x-delivery-limit = n too: a broker-side backstop for
//     consumers that crash on a message. Before 4.3 it is not: those
//     versions count every return of a message toward the limit, not only
//     failures, and not only the returns the client makes: a release
//     (basic.nack) counts, and so do the messages a closed channel or a
//     lost connection gives back, and, at a consumer's basic.cancel or its
//     channel's close, the messages the queue had already sent toward the
//     channel, which never reach the client. A message returned more than
//     n times is removed by the broker without reaching a handler
//     (dead-lettered with WithDeadLetterExchange, else dropped, not
//     logged); with the limit at n, stopping a subscription again and again
//     as a rolling restart does dropped messages no handler had failed (on
//     3.10, 10 to 20 of 800 over four stops with MaxAttempts(1), in every
//     run of the conformance case RepeatedStopsLoseNothing), and the
//     client, which never saw them, could not save them. So before 4.3, as on
//     JetStream, a message whose handling crashes the process comes back
//     without a broker-side bound; each return still counts in
//     x-delivery-count, so in Attempt, leaving a message given back at
//     stops fewer handler calls before the client gives it up. A stopping subscription cancels its consumer
//     (basic.cancel) before its first release, else the broker hands a
//     nacked message straight back to the closing channel, whose close
//     returns it again: two returns, two Attempts, per release.
//   - A group queue that already exists with other arguments (made by
//     Provision, which sets no delivery limit, on 4.3 and later; made
//     before an upgrade to 4.3, without one; or made by an earlier version
//     of this package, which set x-delivery-limit = n on every version) is
//     used as it is, with a warning at the first such Subscribe of each
//     client; the client-side limit still applies, and so does the queue's
//     own delivery limit. RabbitMQ refuses to re-declare a queue with other
//     arguments: to drop the limit an earlier version set on a broker
//     before 4.3, delete the queue (once drained) and let Subscribe declare
//     it again. With WithDeadLetterExchange, such a queue may not
//     dead-letter into the client's exchange (made without one, or with
//     another): RabbitMQ does not tell a queue's arguments, so the client
//     takes the queue as one that does only when the broker accepts its
//     declaration with the client's exchange once the delivery limit is
//     the queue's (the broker's refusal names the limit that differs, and
//     the queue's value unless a long queue name cut the reply text). On
//     any other queue the client dead-letters the messages it gives up
//     itself (see below), and the warning says so.
//   - Given-up messages (Permanent error, MaxAttempts) are dead-lettered by
//     the broker into the WithDeadLetterExchange exchange (declared fanout if
//     missing; bind your own queue to it) with RabbitMQ's x-death header
//     (reason, count, queue, exchange, time); without one they are
//     acknowledged and logged. From a group queue that existed with other
//     arguments and may not dead-letter into that exchange (see above;
//     basic.nack without requeue would have the broker drop the message),
//     the client publishes a copy to the exchange itself (with confirm;
//     routing key the message Key; payload, ID, time and headers kept, and
//     instead of x-death the headers of package dlheader: reason, attempts,
//     topic, group, ID, time), then acknowledges the message. A copy no
//     queue receives (none bound to the exchange) is dropped, as the
//     broker drops such a dead letter, with a warning; one that cannot be
//     sent (the connection lost, a resource alarm) is not: the message is
//     requeued, with a warning, and given up again when it comes back.
//   - AckDeadline: RabbitMQ has no per-message visibility timeout. A consumer
//     that dies (connection lost) has its unacknowledged messages redelivered
//     immediately; a live consumer keeps its messages as long as its handler
//     runs (the deadline is extended indefinitely, bounded only by the
//     broker's consumer_timeout, 30 minutes by default).
//   - Released messages (a subscription stopped by Close or Shutdown before
//     their handlers finished) and nacked ones are requeued at once, so the
//     other members of the group get them immediately.
//   - A subscription or read whose queue is deleted (DeleteTopic) ends with
//     an error wrapping messaging.ErrTopicDeleted (and ErrConsumerCancelled).
//     The exclusive queue of a subscription without a group belongs to its
//     connection, and deleting the exchange only unbinds it (it would go
//     on, deaf, even once a Publish declares the exchange again): so
//     DeleteTopic, once it has deleted the topic's queues and before it
//     deletes the exchange, publishes to the exchange a message with the
//     header "x-msgkit-topic-deleted" (reserved, so no Publish can send it)
//     and waits for its confirm. A group-less subscription, in any process,
//     that receives it ends with an error wrapping messaging.ErrTopicDeleted
//     once its handlers have had what came before it; what comes after it
//     is never handled. Group subscriptions and Read acknowledge or skip it
//     (a stream whose deletion was cut short keeps it), and no handler ever
//     gets it. A group-less subscription whose connection is lost while
//     the topic is deleted misses it, and resumes on the topic its
//     reconnect declares again; one that subscribes while DeleteTopic runs,
//     after its message, misses it too and stays deaf. Under a resource alarm
//     that message's publish makes the broker block DeleteTopic's
//     connection (RabbitMQ blocks publishing connections only): the
//     queues are deleted by then; the exchange's deletion waits for the
//     alarm to clear (DeleteTopic fails with ErrUnavailable, see above).
//     A client of a version before this message treats it as an empty
//     message.
//
// # Messages a consumer cannot decode
//
// A message another client published with a header table amqp091-go
// refuses (more than 8192 entries in a table or array, nesting deeper than
// 32, an unknown field type) would drop the consumer's connection at every
// delivery and stop its queue. Connections made by Open read the broker's
// frames through a guard that replaces such a table with the single header
// "x-msgkit-undecodable" (the reason); the consumer then gives the message
// up at once, like a Permanent error: dead-lettered with
// WithDeadLetterExchange (payload intact, headers lost), otherwise
// acknowledged and logged. The guard keeps the broker's x-stream-offset in
// the table it writes (unless it comes after a field of a type it cannot
// skip), so Stream.Read gives such a message up too: it is not handed to
// the handler, a warning names its offset and the reason, and the read goes
// on with the next message (its Offset one more). A connection given to New
// is not guarded.
//
// # Streams (Replay)
//
// With WithStreams, Read consumes the topic's stream queue from a Position:
// Earliest = "first", Latest = "next", AtOffset/AfterOffset = the numeric
// stream offset (Message.Offset, a decimal integer), AtTime = a stream
// timestamp, which has second resolution, refined by skipping messages whose
// Time is earlier. A read whose connection drops before its first message
// starts again at the position it was opened with; for Latest, whose end
// offset AMQP cannot report, that is AtTime of the moment Read was called:
// the stream timestamp a second earlier (the broker's clock), then by
// Message.Time (the publisher's clock) against that moment (the reader's
// clock). A message whose Time is that moment or later is read, an earlier
// one is not; clocks that disagree shift the boundary. Reading never affects
// groups. Deliveries to groups carry no Offset (quorum queues have none). The
// stream keeps messages until RabbitMQ's stream retention (none by default:
// set a policy with max-age or max-length-bytes).
//
// # Reconnection
//
// The client watches its connection and redials with exponential backoff
// (github.com/cenkalti/backoff/v5) until it is closed; provisioned topology is
// re-declared before the new connection is used, for at most
// unavailable_timeout (then the re-declaration goes on in the background,
// with a warning; Close does not wait for it), subscriptions re-declare
// their queues and resume consuming
// (a lost channel is a transient error to the engine, which retries with
// backoff; messages in flight during the cut are redelivered), stream reads resume
// after the last message handled (before the first, at their position; see
// Streams), and Publish resends what was not confirmed.
// amqp091's own experimental Recovery must stay off (it would reopen the
// client's channels itself, with delivery tags starting again at 1): New
// and WithAMQPConfig refuse it, and a connection WithRedial returns with
// it is closed unused, logged as an error, and ends the reconnecting, as
// for a client that cannot redial (ErrConnectionLost, wrapping
// messaging.ErrInvalidOption).
//
// # Inspection
//
// Client.Inspect (messaging.Inspector) reads a topic's group queues from the
// broker, declaring nothing. Over AMQP alone (passive declares) it knows per
// group the ready messages (the backlog) and the consumers; messages in
// flight, redeliveries, the oldest message's age and the topic's message
// count are unknown. With the management API (URL parameter
// management=http://host:15672, or WithManagement; the rabbitmq_management
// plugin must be enabled) it also reports messages_unacknowledged plus the
// messages waiting in the group's retry queues as in flight,
// message_stats.redeliver (a total) as redeliveries, with WithStreams the
// stream's length as the topic's messages, and the head message's age where
// the broker gives one (classic queues; quorum queues in RabbitMQ 3.x do
// not, so it stays unknown while the backlog is not zero). Its figures are
// as fresh as the broker's statistics (5s by default). The API is called
// with the AMQP URL's credentials unless the management URL has its own
// (only WithManagement may carry them; a client made with New needs them
// there, amqp091 does not keep the password). Client.Topics (the vhost's
// topic exchanges) needs the management API and fails with
// messaging.ErrUnsupported without it.
//
// # Clusters
//
// A URL with several comma-separated hosts names the nodes of one cluster
// (same credentials, vhost and parameters for all). The client dials them
// in turn until one answers (Open fails only when none does); a redial
// after a lost connection starts with the host after the one it was
// connected to, so the node that just died is tried last. Groups are
// quorum queues with a member on every node of the cluster at declaration
// (RabbitMQ's default initial group size): when the node of a queue's
// leader dies, the others elect a new leader (under a second in
// TestFailoverQueueLeader), subscriptions resume on the client's new
// connection and Publish resends what was not confirmed. A publish channel
// that gets a nack is closed rather than reused (RabbitMQ 3.10 keeps
// nacking on a channel that published while the queue had no leader). The
// registry of a topic's queues (see DeleteTopic) is a classic queue on the
// node that first declared it: while that node is down, Provision and
// subscriptions of groups new to the client fail with the broker's
// NOT_FOUND "home node ... is down"; publishing and existing subscriptions
// are unaffected.
//
// # Capabilities
//
// Persistent, Groups, PerKeyOrder, AckDeadline (as described above),
// BrokerAttempts, NativeDelay; Replay and ReplayByTime with WithStreams;
// NativeDeadLetter with WithDeadLetterExchange. Not GroupStartAt. A
// subscription without a group has neither BrokerAttempts, NativeDelay nor
// NativeDeadLetter: the engine redelivers and delays its messages.
//
// # Known broker issue
//
// On RabbitMQ 3.10 (Ra 2.2) a single-node quorum queue whose node is killed
// (SIGKILL, power loss) within a few minutes of the queue's declaration can
// come back empty and leaderless: Ra writes the queue's server registration to
// disk lazily. The fault test works around it; upgrade RabbitMQ to avoid it.
//
// # Performance
//
// 1 KiB messages into one quorum queue on the shared 2-core test machine
// (single runs swing by ±30%; see bench_test.go). BenchmarkInterleaved
// alternates 1000-message chunks of the adapter and raw amqp091-go in one
// run (medians of 6): publishing in calls of 100 (raw: 100 in flight on one
// channel, then wait) 24.5k msg/s against 25.1k raw, ratio 0.99 (0.95-1.04);
// consuming with prefetch 100 (raw: basic.ack multiple=true every 25
// deliveries) 55k against 42k msg/s, ratio 1.28 (1.06-1.63); end to end (one
// publisher, one consumer) 18.6k against 19.7k, ratio 0.93 (0.91-0.98).
// Leaving out the time header when the ID carries the time moved the end to
// end ratio from about 0.90 to 0.94 in paired runs. Batched acknowledgements
// roughly doubled the consume rate (19-24k msg/s with one basic.ack per
// message).
package rabbitmq
