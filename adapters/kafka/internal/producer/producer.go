package producer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// Limits of one produce request (per partition).
const (
	// maxRequestBytes bounds the records of one produce request, under the
	// broker's default message.max.bytes (1048588), which applies to a whole
	// record batch. A record larger than this goes alone.
	maxRequestBytes = 1_000_000
	// recordOverhead is what a record adds to its key, value and headers in
	// a v2 record batch, at most (varint lengths, deltas, attributes).
	recordOverhead = 32
)

// Producer writes records with kafka-go's Client.Produce, one request in
// flight per partition. Records queued for a partition while its request is
// in flight all go in the next request (group commit): a Publish of N
// records to an idle partition is one request, concurrent Publish calls
// share requests, and no linger timer holds back a lone call. Against
// kafka-go's Writer (which the client uses only when given one with
// WithWriter), it makes one metadata lookup per Publish instead of one per
// record and copies no record into a batch: requests read the callers'
// records in place.
//
// A Producer is safe for concurrent use.
type Producer struct {
	client      *kafkago.Client // Addr, Transport, Timeout (per attempt)
	acks        kafkago.RequiredAcks
	compression kafkago.Compression
	maxRecords  int           // records per request
	linger      time.Duration // wait for more records before a request that is not full
	unavailable time.Duration // a record's deadline, from when its call entered
	// topicMissing, when set, is called once per request that finds its
	// topic missing, before it is retried (see Settings).
	topicMissing func(ctx context.Context, topic string) error

	mu     sync.Mutex
	queues map[topicPartition]*partitionQueue
	// answered keeps when each partition's leader last took a produce
	// request (see expire): a record's deadline is never sooner than
	// p.unavailable after it, so records queued behind a broker that is
	// slow but answering do not fail as unavailable.
	answered *asyncpub.Deadlines[topicPartition]
	closed   bool
	stop     chan struct{} // closed by close: no more retries
	senders  sync.WaitGroup
	next     atomic.Uint32 // partition of the next call's keyless records

	// testHookQueued, when set, is called after a call's chunks are queued
	// with the number of records then waiting for each partition they went
	// to, so tests know when a call is queued behind a request in flight.
	testHookQueued func(waiting int)
}

type topicPartition struct {
	topic     string
	partition int
}

// partitionQueue is what waits for one partition, and whether a sender
// goroutine serves it. Guarded by Producer.mu.
type partitionQueue struct {
	chunks  []*chunk
	records int
	sending bool
}

func (q *partitionQueue) waiting() int {
	if q == nil {
		return 0
	}
	return q.records
}

// chunk is records of one call for one partition, always sent together in
// one request (and in order). Chunks are cut at enqueue so that any one of
// them fits a request.
type chunk struct {
	call *call
	recs []kafkago.Message // all the call's records
	idx  []int             // which of them, in order; nil: all
	n    int               // number of records
	size int               // their size in a request, about
	// piece: a part of a chunk that produce split (see split); its
	// call's count of pending chunks is the whole chunk's.
	piece bool
}

// finish reports that every record of c has its outcome.
func (c *chunk) finish() {
	if !c.piece {
		c.call.chunkDone()
	}
}

// trim drops the first k records of c (after they failed). Its size stays
// as it was: size only matters when chunks are put in requests.
func (c *chunk) trim(k int) {
	if c.idx == nil {
		c.idx = make([]int, c.n)
		for i := range c.idx {
			c.idx[i] = i
		}
	}
	c.idx, c.n = c.idx[k:], c.n-k
}

func (c *chunk) at(i int) int {
	if c.idx == nil {
		return i
	}
	return c.idx[i]
}

// call is one Publish waiting for its chunks. Senders write errs (each
// index by one sender) before the call's last chunk closes done; the caller
// reads errs only after done.
type call struct {
	errs      []error
	pending   atomic.Int32
	done      chan struct{}
	abandoned atomic.Bool // the caller stopped waiting: unsent chunks are dropped
	// Record i's deadline is unavailable after entered[i], or after
	// entry when entered is nil.
	entry   time.Time
	entered []time.Time
	// unwanted, when not nil, says why record i is no longer to be sent
	// (PublishAsync's messages, asyncpub.Unwanted: its ctx ended, or the
	// client is closing): such a record fails with that error, unsent,
	// when its request is first sent.
	unwanted func(i int) error

	// reading counts the requests reading the call's records now (see
	// chunkRecords); once abandoned, readDone is closed when it is 0.
	readMu   sync.Mutex
	reading  int
	readDone chan struct{}
}

// errAbandoned fails a request that was to read the records of a call
// abandoned meanwhile (see call.abandon): it is sent again without them.
var errAbandoned = errors.New("kafka: a call of the request was abandoned before the request read its records")

// abandon marks c abandoned (its caller stops waiting) and waits until no
// request reads its records (an encoding in progress, in memory): once it
// returns, the records are the caller's again. A request that starts to
// read them later fails instead (errAbandoned).
func (c *call) abandon() {
	c.readMu.Lock()
	c.abandoned.Store(true)
	var wait chan struct{}
	if c.reading > 0 {
		c.readDone = make(chan struct{})
		wait = c.readDone
	}
	c.readMu.Unlock()
	if wait != nil {
		<-wait
	}
}

// pin notes a request starting to read c's records; false when c was
// abandoned: its records are not to be read.
func (c *call) pin() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.abandoned.Load() {
		return false
	}
	c.reading++
	return true
}

// unpin notes that a request pinned c no longer reads its records.
func (c *call) unpin() {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.reading--; c.reading == 0 && c.readDone != nil {
		close(c.readDone)
		c.readDone = nil
	}
}

// deadline is when record i fails with messaging.ErrUnavailable unless
// acknowledged.
func (c *call) deadline(i int, unavailable time.Duration) time.Time {
	if c.entered != nil {
		return c.entered[i].Add(unavailable)
	}
	return c.entry.Add(unavailable)
}

func (c *call) chunkDone() {
	if c.pending.Add(-1) == 0 {
		close(c.done)
	}
}

// Settings configure a Producer.
type Settings struct {
	Acks        kafkago.RequiredAcks
	Compression kafkago.Compression
	MaxRecords  int           // records per request, at least 1
	Linger      time.Duration // wait for more records before a request that is not full
	// Unavailable is how long a record may wait for its acknowledgement,
	// from when its call entered (see WriteEntered): queued behind other
	// requests, and sent and retried while the broker cannot be reached
	// or does not answer.
	Unavailable time.Duration
	// TopicMissing, when set, is called when a request finds its topic
	// missing (see the function TopicMissing; once per request, under the
	// request's unavailable deadline): it may create the topic again, which
	// another client may have deleted. When it returns nil the request is
	// retried at once; when it returns an error wrapping
	// messaging.ErrTopicNotFound (the topic is gone and is not to be
	// created again) the request's records fail with it at once.
	TopicMissing func(ctx context.Context, topic string) error
	// TestHookQueued, when set, is called after a call's chunks are queued
	// with the number of records then waiting for each partition they went
	// to, so tests know when a call is queued behind a request in flight.
	TestHookQueued func(waiting int)
}

// New returns a producer that sends through client (its Addr, Transport
// and per-attempt Timeout). Close it to stop its senders.
func New(client *kafkago.Client, s Settings) *Producer {
	return &Producer{
		client:         client,
		acks:           s.Acks,
		compression:    s.Compression,
		maxRecords:     s.MaxRecords,
		linger:         s.Linger,
		unavailable:    s.Unavailable,
		topicMissing:   s.TopicMissing,
		testHookQueued: s.TestHookQueued,
		queues:         map[topicPartition]*partitionQueue{},
		answered:       asyncpub.NewDeadlines[topicPartition](s.Unavailable),
		stop:           make(chan struct{}),
	}
}

// ForgetTopic drops what the producer keeps of topic's partitions beyond
// their queues (when their leaders last answered): call it when the topic
// is deleted.
func (p *Producer) ForgetTopic(topic string) {
	p.answered.Forget(func(tp topicPartition) bool { return tp.topic == topic })
}

// AllFailed is a *messaging.PublishError that reports err for each of n
// messages.
func AllFailed(n int, err error) error {
	pe := &messaging.PublishError{Errs: make([]error, n)}
	for i := range pe.Errs {
		pe.Errs[i] = err
	}
	return pe
}

// Write is WriteEntered for records that enter now.
func (p *Producer) Write(ctx context.Context, topic string, partitions int, recs []kafkago.Message) error {
	return p.WriteEntered(ctx, time.Now(), nil, topic, partitions, recs)
}

// WriteEntered sends recs to topic, which has partitions partitions, and
// waits for the acknowledgements or ctx. It returns nil or a
// *messaging.PublishError. Each record fails with messaging.ErrUnavailable
// once Settings.Unavailable has passed, unacknowledged, since it entered:
// at entered[i] for record i, or at entry for all when entered is nil
// (entered never decreases: later records entered no earlier). The time it
// waits behind other calls' requests to its partition counts.
// Keyed records go to the partition of their key's murmur2 hash (as the Java
// client and kafka-go's Murmur2Balancer place them); the keyless records of
// one call all go to one partition, the next call's to the next (round
// robin), so a call's records share a request. On ctx's end every record is
// reported failed with ctx's error (some may still be written); once it
// has returned, recs are not read again (call.abandon).
func (p *Producer) WriteEntered(ctx context.Context, entry time.Time, entered []time.Time, topic string, partitions int, recs []kafkago.Message) error {
	if partitions < 1 {
		return AllFailed(len(recs), fmt.Errorf("kafka: publish to %s: %w", topic, kafkago.UnknownTopicOrPartition))
	}
	if err := ctx.Err(); err != nil {
		return AllFailed(len(recs), fmt.Errorf("kafka: publish to %s: %w", topic, err))
	}
	if len(entered) != len(recs) {
		entered = nil
	}
	if entry.IsZero() {
		entry = time.Now()
	}
	cl := &call{errs: make([]error, len(recs)), done: make(chan struct{}), entry: entry, entered: entered}
	cl.unwanted = asyncpub.Unwanted(ctx)
	chunks := p.chunk(cl, partitions, recs)
	own, err := p.enqueue(topic, chunks)
	if err != nil {
		return AllFailed(len(recs), err)
	}
	if own != nil {
		p.sendOwn(ctx, own)
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		cl.abandon()
		return AllFailed(len(recs), fmt.Errorf("kafka: publish to %s: %w (records already sent may still be written)", topic, ctx.Err()))
	}
	for _, err := range cl.errs {
		if err != nil {
			return &messaging.PublishError{Errs: cl.errs}
		}
	}
	return nil
}

// partChunks is a call's chunks for one partition.
type partChunks struct {
	partition int
	chunks    []*chunk
}

// chunk assigns recs to partitions and cuts each partition's records into
// chunks that fit a request.
func (p *Producer) chunk(cl *call, partitions int, recs []kafkago.Message) []partChunks {
	keyless := int(p.next.Add(1)-1) % partitions
	var ids []int
	byPart := map[int][]int(nil)
	first, single := -1, true
	for i := range recs {
		part := keyless
		if recs[i].Key != nil && partitions > 1 {
			if ids == nil {
				ids = make([]int, partitions)
				for j := range ids {
					ids[j] = j
				}
			}
			part = kafkago.Murmur2Balancer{}.Balance(recs[i], ids...)
		}
		if first == -1 {
			first = part
		}
		if part != first && single {
			single = false
			byPart = map[int][]int{first: make([]int, i, len(recs))}
			for j := range i {
				byPart[first][j] = j
			}
		}
		if !single {
			byPart[part] = append(byPart[part], i)
		}
	}
	var out []partChunks
	if single {
		out = []partChunks{{partition: first, chunks: p.cut(cl, recs, nil)}}
	} else {
		for part, idx := range byPart {
			out = append(out, partChunks{partition: part, chunks: p.cut(cl, recs, idx)})
		}
	}
	n := 0
	for _, pc := range out {
		n += len(pc.chunks)
	}
	cl.pending.Store(int32(n))
	return out
}

// cut splits the records idx of recs (all when idx is nil) into chunks of at
// most maxRecords records and maxRequestBytes bytes (a larger record alone).
func (p *Producer) cut(cl *call, recs []kafkago.Message, idx []int) []*chunk {
	n := len(recs)
	if idx != nil {
		n = len(idx)
	}
	var out []*chunk
	start, size := 0, 0
	for i := range n {
		r := i
		if idx != nil {
			r = idx[i]
		}
		s := recordSize(&recs[r])
		if i > start && (i-start >= p.maxRecords || size+s > maxRequestBytes) {
			out = append(out, newChunk(cl, recs, idx, start, i, size))
			start, size = i, 0
		}
		size += s
	}
	return append(out, newChunk(cl, recs, idx, start, n, size))
}

func newChunk(cl *call, recs []kafkago.Message, idx []int, from, to, size int) *chunk {
	c := &chunk{call: cl, recs: recs, n: to - from, size: size}
	switch {
	case idx != nil:
		c.idx = idx[from:to:to]
	case from != 0 || to != len(recs):
		c.idx = make([]int, to-from)
		for i := range c.idx {
			c.idx[i] = from + i
		}
	}
	return c
}

func recordSize(m *kafkago.Message) int {
	n := recordOverhead + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 2
	}
	return n
}

// ownSend is a call's chunks for a partition that was idle: the caller
// sends them itself (no hand-off to another goroutine) before the partition
// is served by a sender goroutine again.
type ownSend struct {
	tp     topicPartition
	q      *partitionQueue
	chunks []*chunk
}

// enqueue queues the chunks of a call and starts a sender for each idle
// partition; when the call has records for one partition only and it is
// idle, it returns them for the caller to send instead (without lingering).
func (p *Producer) enqueue(topic string, parts []partChunks) (*ownSend, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("kafka: publish to %s: %w", topic, messaging.ErrClosed)
	}
	if p.testHookQueued != nil {
		defer func() {
			for _, pc := range parts {
				p.testHookQueued(p.queues[topicPartition{topic, pc.partition}].waiting())
			}
		}()
	}
	for _, pc := range parts {
		tp := topicPartition{topic: topic, partition: pc.partition}
		q := p.queues[tp]
		if q == nil {
			q = &partitionQueue{}
			p.queues[tp] = q
		}
		if !q.sending && len(parts) == 1 && p.linger == 0 {
			q.sending = true
			p.senders.Add(1)
			return &ownSend{tp: tp, q: q, chunks: pc.chunks}, nil
		}
		q.chunks = append(q.chunks, pc.chunks...)
		for _, c := range pc.chunks {
			q.records += c.n
		}
		if !q.sending {
			q.sending = true
			p.senders.Add(1)
			go p.send(tp, q)
		}
	}
	return nil, nil
}

// sendOwn sends a call's own chunks for an idle partition, under the call's
// context, then hands the partition to a sender goroutine if other calls
// queued records meanwhile.
func (p *Producer) sendOwn(ctx context.Context, o *ownSend) {
	for rest := o.chunks; len(rest) > 0; {
		n, records, size := 0, 0, 0
		for n < len(rest) && (n == 0 || p.fits(records, size, rest[n])) {
			records, size = records+rest[n].n, size+rest[n].size
			n++
		}
		p.produce(ctx, o.tp, rest[:n])
		rest = rest[n:]
	}
	p.mu.Lock()
	if len(o.q.chunks) > 0 {
		go p.send(o.tp, o.q) // takes over this sender's count
	} else {
		o.q.sending = false
		delete(p.queues, o.tp)
		p.senders.Done()
	}
	p.mu.Unlock()
}

// fits reports whether chunk c fits in a request that already holds records
// records of size bytes.
func (p *Producer) fits(records, size int, c *chunk) bool {
	return records+c.n <= p.maxRecords && size+c.size <= maxRequestBytes
}

// send serves one partition until its queue is empty: it takes as many
// whole chunks as fit a request, produces them and reports the outcome to
// their calls.
func (p *Producer) send(tp topicPartition, q *partitionQueue) {
	defer p.senders.Done()
	for {
		if p.linger > 0 {
			p.mu.Lock()
			full := q.records >= p.maxRecords
			p.mu.Unlock()
			if !full {
				t := time.NewTimer(p.linger)
				select {
				case <-t.C:
				case <-p.stop:
					t.Stop()
				}
			}
		}
		p.mu.Lock()
		var batch []*chunk
		records, size := 0, 0
		for len(q.chunks) > 0 {
			c := q.chunks[0]
			if c.call.abandoned.Load() {
				q.chunks[0] = nil
				q.chunks, q.records = q.chunks[1:], q.records-c.n
				c.call.chunkDone()
				continue
			}
			if len(batch) > 0 && !p.fits(records, size, c) {
				break
			}
			batch = append(batch, c)
			records, size = records+c.n, size+c.size
			q.chunks[0] = nil
			q.chunks, q.records = q.chunks[1:], q.records-c.n
		}
		if len(batch) == 0 {
			q.sending = false
			delete(p.queues, tp)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.produce(context.Background(), tp, batch)
	}
}

// produce sends one request, retrying temporary failures (leader changes,
// broken or refused connections) with backoff (50ms to 250ms) until ctx
// ends or the Producer closes, and writes each record's outcome to its
// call. A record not acknowledged by its deadline (p.unavailable after its
// call entered, so the time it waited behind the partition's earlier
// requests counts) fails with messaging.ErrUnavailable; the records with
// time left are retried without it, and so are those of a call abandoned
// meanwhile (its caller returned: its records are not read again). The
// earliest deadline of the records
// bounds every attempt (besides the client's per-attempt Timeout), so a
// broker that takes the request and never answers fails it on time too. The
// first failure for an unknown topic goes to p.topicMissing.
func (p *Producer) produce(ctx context.Context, tp topicPartition, batch []*chunk) {
	var res *kafkago.ProduceResponse
	var err error
	bo := PublishBackOff()
	missing := p.topicMissing
	var recreateErr error // why missing failed, told with the final error
	var giveUp time.Time
	expired := func() error {
		if err == nil {
			return fmt.Errorf("%w: not sent within %v: waited that long for the broker (the partition's earlier requests)", messaging.ErrUnavailable, p.unavailable)
		}
		return withRecreateErr(fmt.Errorf("%w: not acknowledged within %v: %w", messaging.ErrUnavailable, p.unavailable, err), recreateErr)
	}
	if len(batch) > 0 && !batch[0].piece { // pieces were sent (split)
		batch = p.dropEnded(tp, batch)
	}
retry:
	for {
		// A call that stopped waiting (its ctx ended) has returned, and
		// its records are its caller's again: not read, not sent (again).
		batch = dropAbandoned(batch)
		if batch, giveUp = p.expire(tp, batch, expired); len(batch) == 0 {
			return
		}
		attempt, cancel := context.WithDeadline(ctx, giveUp)
		recs := &chunkRecords{chunks: batch}
		res, err = p.client.Produce(attempt, &kafkago.ProduceRequest{
			Topic:        tp.topic,
			Partition:    tp.partition,
			RequiredAcks: p.acks,
			Compression:  p.compression,
			Records:      recs,
		})
		recs.release()
		cancel()
		if errors.Is(err, errAbandoned) {
			continue // nothing sent: again, without the abandoned calls
		}
		if err == nil && res != nil {
			err = res.Error
		}
		if err == nil {
			p.answered.Answered(tp)
			break
		}
		if missing != nil && TopicMissing(err) {
			attempt, cancel := context.WithDeadline(ctx, giveUp)
			recreateErr = missing(attempt, tp.topic)
			cancel()
			missing = nil // once
			if recreateErr == nil {
				continue
			}
			if errors.Is(recreateErr, messaging.ErrTopicNotFound) {
				err, recreateErr = fmt.Errorf("%w (%w)", recreateErr, err), nil
				break
			}
		}
		if !Retriable(err) {
			break
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w while retrying after: %w", messaging.ErrUnavailable, ctx.Err(), err)
			break
		}
		// Wait no later than the earliest deadline: expire fails its
		// records then, and the others are retried.
		t := time.NewTimer(min(bo.NextBackOff(), time.Until(giveUp)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("%w: %w while retrying after: %w", messaging.ErrUnavailable, ctx.Err(), err)
			break retry
		case <-p.stop:
			t.Stop()
			err = fmt.Errorf("%w while retrying after: %w", messaging.ErrClosed, err)
			break retry
		}
	}
	if err != nil && tooLarge(err) && records(batch) > 1 {
		// The broker refuses a record batch larger than its (or the
		// topic's) max.message.bytes as a whole, which may be below this
		// producer's request bound: the records that fit go on without
		// the ones that do not, each failing alone.
		p.split(ctx, tp, batch)
		return
	}
	if err != nil {
		err = withRecreateErr(err, recreateErr)
	}
	k := 0
	for _, c := range batch {
		for i := range c.n {
			e := err
			if e == nil && res != nil && res.RecordErrors != nil {
				e = res.RecordErrors[k]
			}
			if e != nil {
				c.call.errs[c.at(i)] = publishErr(tp, e)
			}
			k++
		}
		c.finish()
	}
}

// split produces the records of batch, which the broker refused as too
// large, in two requests of half of them each, the first half first (so a
// key's records keep their order), and then reports the chunks of batch
// done. A half refused as too large is split again, down to single
// records, which then fail with ErrMessageTooLarge.
func (p *Producer) split(ctx context.Context, tp topicPartition, batch []*chunk) {
	half := records(batch) / 2
	var first, second []*chunk
	seen := 0
	for _, c := range batch {
		switch {
		case seen+c.n <= half:
			first = append(first, c.pieceOf(0, c.n))
		case seen >= half:
			second = append(second, c.pieceOf(0, c.n))
		default:
			cut := half - seen
			first = append(first, c.pieceOf(0, cut))
			second = append(second, c.pieceOf(cut, c.n))
		}
		seen += c.n
	}
	p.produce(ctx, tp, first)
	p.produce(ctx, tp, second)
	for _, c := range batch {
		c.finish()
	}
}

// pieceOf returns records from to to of c as a piece (see chunk.piece).
func (c *chunk) pieceOf(from, to int) *chunk {
	idx := make([]int, to-from)
	for i := range idx {
		idx[i] = c.at(from + i)
	}
	return &chunk{call: c.call, recs: c.recs, idx: idx, n: to - from, size: c.size, piece: true}
}

// records returns the number of records of batch.
func records(batch []*chunk) int {
	n := 0
	for _, c := range batch {
		n += c.n
	}
	return n
}

// tooLarge reports whether err is the broker refusing a request's records
// for their size.
func tooLarge(err error) bool {
	return errors.Is(err, kafkago.MessageSizeTooLarge) || errors.Is(err, kafkago.RecordListTooLarge)
}

// dropEnded fails the records of batch, not sent yet, that are no longer
// to be sent (see call.unwanted), and returns the others (in batch's
// array).
func (p *Producer) dropEnded(tp topicPartition, batch []*chunk) []*chunk {
	kept := batch[:0]
	for _, c := range batch {
		unwanted := c.call.unwanted
		if unwanted == nil {
			kept = append(kept, c)
			continue
		}
		var idx []int // the records kept, once one is dropped
		for i := range c.n {
			r := c.at(i)
			if err := unwanted(r); err != nil {
				if idx == nil {
					idx = make([]int, 0, c.n)
					for j := range i {
						idx = append(idx, c.at(j))
					}
				}
				c.call.errs[r] = fmt.Errorf("kafka: partition %d: %w", tp.partition, err)
				continue
			}
			if idx != nil {
				idx = append(idx, r)
			}
		}
		switch {
		case idx == nil:
			kept = append(kept, c)
		case len(idx) == 0:
			c.finish()
		default:
			c.idx, c.n = idx, len(idx)
			kept = append(kept, c)
		}
	}
	clear(batch[len(kept):])
	return kept
}

// dropAbandoned finishes the chunks of batch whose call was abandoned
// (its caller stopped waiting and returned) and returns the others (in
// batch's array).
func dropAbandoned(batch []*chunk) []*chunk {
	kept := batch[:0]
	for _, c := range batch {
		if c.call.abandoned.Load() {
			c.finish()
			continue
		}
		kept = append(kept, c)
	}
	clear(batch[len(kept):])
	return kept
}

// withRecreateErr tells, with err, why creating the topic again failed
// (when it did).
func withRecreateErr(err, recreateErr error) error {
	if recreateErr == nil {
		return err
	}
	return fmt.Errorf("%w (creating the topic again failed: %w)", err, recreateErr)
}

// expire fails the records of batch whose deadline has passed, with the
// error why returns, and returns the others (in order, in batch's array)
// and the earliest of their deadlines. A record's deadline is p.unavailable
// after its call entered or after tp's leader last took a produce request,
// whichever is later: a broker that takes requests, however slowly, is not
// unavailable, and the records waiting behind its requests wait on. A
// chunk's records entered in order, so its expired records are a prefix.
// It reads the clock once and, when no record expired, allocates nothing.
func (p *Producer) expire(tp topicPartition, batch []*chunk, why func() error) ([]*chunk, time.Time) {
	now := time.Now()
	floor := p.answered.Floor(tp)
	deadline := func(c *chunk, i int) time.Time {
		if d := c.call.deadline(c.at(i), p.unavailable); d.After(floor) {
			return d
		}
		return floor
	}
	var first time.Time
	var err error
	kept := batch[:0]
	for _, c := range batch {
		d := deadline(c, 0)
		if !now.Before(d) {
			k := 1
			for k < c.n && !now.Before(deadline(c, k)) {
				k++
			}
			if err == nil {
				err = why()
			}
			for i := range k {
				c.call.errs[c.at(i)] = publishErr(tp, err)
			}
			if k == c.n {
				c.finish()
				continue
			}
			c.trim(k)
			d = deadline(c, 0)
		}
		if first.IsZero() || d.Before(first) {
			first = d
		}
		kept = append(kept, c)
	}
	clear(batch[len(kept):])
	return kept, first
}

// PublishBackOff paces the retries of Publish while the broker is
// unreachable: short waits, so that publishing resumes within about 250ms
// of the broker's return.
func PublishBackOff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 250*time.Millisecond
	return bo
}

// publishErr wraps the failure of a record, marking what callers branch on.
func publishErr(tp topicPartition, err error) error {
	var tooLarge kafkago.MessageTooLargeError
	switch {
	case errors.Is(err, messaging.ErrClosed):
	case errors.As(err, &tooLarge), errors.Is(err, kafkago.MessageSizeTooLarge), errors.Is(err, kafkago.RecordListTooLarge):
		err = fmt.Errorf("%w: %w", messaging.ErrMessageTooLarge, err)
	}
	return fmt.Errorf("kafka: publish to %s partition %d: %w", tp.topic, tp.partition, err)
}

// TopicMissing reports whether err says that the topic does not exist:
// the broker's UnknownTopicOrPartition, or kafka-go's transport not finding
// the topic in its metadata.
func TopicMissing(err error) bool {
	return errors.Is(err, kafkago.UnknownTopicOrPartition) || errors.Is(err, protocol.ErrNoTopic)
}

// Retriable reports the errors kafka-go's Writer retries: those that say
// they are temporary, and broken or refused connections.
func Retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// Close stops taking records, stops retrying, and waits until every queued
// record has been sent once and its outcome reported.
func (p *Producer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.senders.Wait()
		return
	}
	p.closed = true
	close(p.stop)
	p.mu.Unlock()
	p.senders.Wait()
}

// chunkRecords reads the records of a request's chunks, in order, reusing
// one record value as kafka-go's Writer does (the encoder consumes each
// record before it reads the next). kafka-go reads them on a goroutine of
// its own once it has a connection, which may be after a call of the
// request was abandoned: the calls are pinned while it reads (see
// call.pin), and a request with an abandoned call reads nothing and fails
// with errAbandoned.
type chunkRecords struct {
	chunks     []*chunk
	c, i       int
	rec        kafkago.Record
	key, value bytesReadCloser
	started    bool // by the reading goroutine

	mu    sync.Mutex
	state int // 0: not read yet; 1: reading, calls pinned; 2: done
}

// start pins the request's calls before its first record is read.
func (r *chunkRecords) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == 2 { // Produce returned: nobody waits for this request
		return errAbandoned
	}
	for k, c := range r.chunks {
		if !c.call.pin() {
			for _, d := range r.chunks[:k] {
				d.call.unpin()
			}
			r.state = 2
			return errAbandoned
		}
	}
	r.state = 1
	return nil
}

// release unpins the request's calls: it read all their records, or the
// Produce call that sent it returned (an encoding that failed stops
// reading before the end).
func (r *chunkRecords) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == 1 {
		for _, c := range r.chunks {
			c.call.unpin()
		}
	}
	r.state = 2
}

func (r *chunkRecords) ReadRecord() (*kafkago.Record, error) {
	if !r.started {
		r.started = true
		if err := r.start(); err != nil {
			return nil, err
		}
	}
	for r.c < len(r.chunks) {
		c := r.chunks[r.c]
		if r.i < c.n {
			m := &c.recs[c.at(r.i)]
			r.i++
			r.rec = kafkago.Record{Time: m.Time, Headers: m.Headers}
			if m.Key != nil {
				r.key.Reset(m.Key)
				r.rec.Key = &r.key
			}
			if m.Value != nil {
				r.value.Reset(m.Value)
				r.rec.Value = &r.value
			}
			return &r.rec, nil
		}
		r.c, r.i = r.c+1, 0
	}
	r.release()
	return nil, io.EOF
}

type bytesReadCloser struct{ bytes.Reader }

func (*bytesReadCloser) Close() error { return nil }
