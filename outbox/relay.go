package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Relay forwards committed outbox rows to a messaging.Publisher.
//
// Guarantees:
//   - At-least-once: a row is deleted (or marked forwarded) only after
//     Publish accepted its message; a crash in between forwards it again (a
//     duplicate with the same ID, which an inbox drops).
//   - Per-key order: a key's rows live in one partition, and one relay at a
//     time holds a partition (a lease in the database, renewed every TTL/3,
//     expiring after TTL). Its holder publishes the partition's rows in
//     Seq order, in batches, and a batch's messages of one topic in one
//     Publish call (which keeps the order of a key). A relay publishes only
//     while its lease has at least TTL/5 left, and cancels Publish when that
//     margin is reached, so a relay that stalls cannot publish after another
//     took the partition over, as long as the Publisher honours its context.
//   - Refused messages: the rows the broker did not accept are sent again,
//     their partitions after a backoff (50ms doubling to 5s, or TTL/3 if
//     less) during which the relay forwards its other partitions. A call
//     the broker refuses whole for one message (too large, a header it
//     cannot carry) is made again one message at a time, so the others go.
//     A message the broker refuses every time is never dropped: it blocks
//     its key (the later messages of the key wait behind it), and its
//     partition once the key's waiting rows fill a batch, until an
//     operator deletes its row or the broker accepts it; the relay logs it
//     at Warn with each retry.
//   - Handover: relays share the partitions evenly (a relay that starts
//     gets its share as the others renew); Run releases the leases when it
//     returns, and a relay that dies loses them after TTL. The next holder
//     starts from the partition's first unforwarded row.
//
// Several relays on the same outbox, in one process or many, are safe.
// A Relay runs once (Run); its methods are safe for concurrent use.
type Relay struct {
	o   *Outbox
	db  *sql.DB
	pub messaging.Publisher
	cfg relayConfig

	running atomic.Bool

	forwarded, failed, unmarked, batches atomic.Uint64

	mu    sync.Mutex
	parts []int
}

// RelayOption configures NewRelay. A RelayOption given an invalid value
// makes NewRelay fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type RelayOption func(*relayConfig) error

type relayConfig struct {
	id           string
	batch        int
	poll         time.Duration
	ttl          time.Duration
	retention    time.Duration
	cleanupEvery time.Duration
	listen       bool
	logger       *slog.Logger
	onBatch      []func(BatchInfo)
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("outbox: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithRelayID names the relay in the leases and in Status (default: host
// name, process ID and a random suffix; must not be empty). Two running
// relays must not share an ID.
func WithRelayID(id string) RelayOption {
	return func(c *relayConfig) error {
		if id == "" {
			return invalid("WithRelayID", `""`, "must not be empty")
		}
		c.id = id
		return nil
	}
}

// WithBatchSize is the most rows a relay fetches and publishes at once
// (default 100, 1 to 10000).
func WithBatchSize(n int) RelayOption {
	return func(c *relayConfig) error {
		if n < 1 || n > 10000 {
			return invalid("WithBatchSize", n, "must be 1 to 10000")
		}
		c.batch = n
		return nil
	}
}

// WithPollInterval is how often an idle relay looks for rows without being
// woken by a notification (default 1s; must be positive). With NOTIFY it
// only covers missed notifications; with WithPolling it bounds the delivery
// delay.
func WithPollInterval(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d <= 0 {
			return invalid("WithPollInterval", d, "must be positive")
		}
		c.poll = d
		return nil
	}
}

// WithLeaseTTL is how long a partition lease lasts without renewal (default
// 30s, at least 500ms): a relay that dies hands its partitions over after
// at most this long. Publish calls are cut off TTL/5 before the lease ends.
func WithLeaseTTL(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d < 500*time.Millisecond {
			return invalid("WithLeaseTTL", d, "must be at least 500ms")
		}
		c.ttl = d
		return nil
	}
}

// WithKeepForwarded keeps forwarded rows for d before deleting them
// (default 0: rows are deleted as they are forwarded; negative is invalid).
// Kept rows cost a write each; they let an operator look at what was sent.
// Only relays given WithKeepForwarded delete kept rows: rows kept before
// retention was turned off stay until deleted by hand.
func WithKeepForwarded(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d < 0 {
			return invalid("WithKeepForwarded", d, "must not be negative")
		}
		c.retention = d
		return nil
	}
}

// WithCleanupInterval is how often a relay deletes rows past their
// retention (default 1 minute; must be positive; only used with
// WithKeepForwarded > 0).
func WithCleanupInterval(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d <= 0 {
			return invalid("WithCleanupInterval", d, "must be positive")
		}
		c.cleanupEvery = d
		return nil
	}
}

// WithPolling turns LISTEN/NOTIFY off: the relay finds new rows by polling
// every WithPollInterval only.
func WithPolling() RelayOption { return func(c *relayConfig) error { c.listen = false; return nil } }

// WithLogger sets the relay's logger (default slog.Default(); nil is
// invalid). It logs lease changes at Info, failures at Warn, with no
// message contents.
func WithLogger(l *slog.Logger) RelayOption {
	return func(c *relayConfig) error {
		if l == nil {
			return invalid("WithLogger", "nil", "needs a logger")
		}
		c.logger = l
		return nil
	}
}

// WithOnBatch calls f after each batch the relay forwarded (or failed to),
// from the relay's goroutine: feed metrics from it (see BatchInfo, and
// package outboxprom); f must not block. Given several times, every f is
// called. A nil f is invalid.
func WithOnBatch(f func(BatchInfo)) RelayOption {
	return func(c *relayConfig) error {
		if f == nil {
			return invalid("WithOnBatch", "nil", "needs a function")
		}
		c.onBatch = append(c.onBatch, f)
		return nil
	}
}

// BatchInfo describes one forwarded batch, for metrics.
type BatchInfo struct {
	// Fetched is the number of rows read.
	Fetched int
	// Forwarded is the number published and then deleted or marked.
	Forwarded int
	// Failed is the number Publish did not accept or that could not be read
	// (Record.Err), plus the later rows of their keys held back to keep the
	// order; all are tried again.
	Failed int
	// Unmarked is the number published but not recorded as forwarded,
	// because the relay lost the partition's lease meanwhile or the database
	// failed: they are sent again (duplicates).
	Unmarked int
	// Latencies holds, for each message the broker accepted, the time from
	// its insert into the outbox to the acceptance.
	Latencies []time.Duration
	// Publish is the time the Publish calls took.
	Publish time.Duration
	// Err is the batch's error, if any.
	Err error
}

// RelayStats are a relay's counters since it was created.
type RelayStats struct {
	// Batches is the number of non-empty batches.
	Batches uint64
	// Forwarded counts messages published and marked.
	Forwarded uint64
	// Failed counts messages held back after a failed Publish, and rows
	// that could not be read (BatchInfo.Failed).
	Failed uint64
	// Unmarked counts messages published but not recorded as forwarded
	// (they are sent again). Duplicates caused by a relay that crashed
	// after publishing are not known to the survivors: count them at the
	// consumer (an inbox drops them).
	Unmarked uint64
	// Partitions are the partitions the relay holds now.
	Partitions []int
}

// NewRelay returns a relay that forwards o's rows in db to pub. A nil db or
// pub, or an invalid option, is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned. The relay keeps one of db's connections for
// LISTEN while it runs and uses one more at a time for its queries, so db
// must allow at least two open connections (SetMaxOpenConns): with one,
// NewRelay fails with an error wrapping messaging.ErrInvalidOption unless
// WithPolling is given (and Run, if the limit was lowered to one since,
// polls instead of listening).
func (o *Outbox) NewRelay(db *sql.DB, pub messaging.Publisher, opts ...RelayOption) (*Relay, error) {
	if db == nil || pub == nil {
		return nil, fmt.Errorf("outbox: relay needs a database and a publisher: %w", messaging.ErrInvalidOption)
	}
	host, _ := os.Hostname()
	c := relayConfig{
		id:           fmt.Sprintf("%s-%d-%s", host, os.Getpid(), driver.NewID()[24:]),
		batch:        100,
		poll:         time.Second,
		ttl:          30 * time.Second,
		cleanupEvery: time.Minute,
		listen:       true,
		logger:       slog.Default(),
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	if c.listen && oneConn(db) {
		return nil, fmt.Errorf("outbox: relay: the database allows one open connection, which LISTEN would hold while the relay's queries wait for it forever; SetMaxOpenConns(2) or more, or WithPolling: %w", messaging.ErrInvalidOption)
	}
	c.logger = c.logger.With("outbox_relay", c.id)
	return &Relay{o: o, db: db, pub: pub, cfg: c}, nil
}

// ID returns the relay's ID as leases and Status show it.
func (r *Relay) ID() string { return r.cfg.id }

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	parts := slices.Clone(r.parts)
	r.mu.Unlock()
	return RelayStats{
		Batches:    r.batches.Load(),
		Forwarded:  r.forwarded.Load(),
		Failed:     r.failed.Load(),
		Unmarked:   r.unmarked.Load(),
		Partitions: parts,
	}
}

// cleanupSlice is how long the relay deletes expired rows before it
// forwards the next batch, when many have expired.
const cleanupSlice = 100 * time.Millisecond

// shutdownWait bounds each wait for the database after Run's context ended:
// marking the batch in flight, then releasing the leases.
const shutdownWait = 5 * time.Second

// Run forwards rows until ctx is done, then releases its leases and returns
// nil. It waits for the database for at most 5 seconds to record the batch
// in flight as forwarded, and 5 more to release the leases, so it returns
// within about 10 seconds of ctx's end even if the database hangs. Failures of the
// database or the broker are logged and retried with backoff (the broker's
// per partition, see Relay); they do not end Run. Run may be called once; a second call returns an error wrapping
// messaging.ErrInvalidOption.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("outbox: relay %s: Run called twice: %w", r.cfg.id, messaging.ErrInvalidOption)
	}
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	lctx, stopListen := context.WithCancel(ctx)
	var wg sync.WaitGroup
	switch {
	case r.cfg.listen && oneConn(r.db):
		r.cfg.logger.Warn("outbox relay: the database allows one open connection, which LISTEN would hold; polling only")
	case r.cfg.listen:
		wg.Go(func() { r.listen(lctx, signal) })
	}
	defer func() {
		stopListen()
		wg.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
		defer cancel()
		if err := r.o.d.Release(rctx, r.db, r.cfg.id); err != nil {
			r.cfg.logger.Warn("outbox relay: releasing leases failed; they expire after the TTL", "error", err)
		}
		r.setParts(nil)
	}()
	r.loop(ctx, wake)
	return nil
}

// oneConn reports whether db allows only one open connection.
func oneConn(db *sql.DB) bool { return db.Stats().MaxOpenConnections == 1 }

func (r *Relay) setParts(p []int) {
	r.mu.Lock()
	r.parts = p
	r.mu.Unlock()
}

// listen keeps a LISTEN connection open, reconnecting with backoff.
func (r *Relay) listen(ctx context.Context, wake func()) {
	bo := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second, RandomizationFactor: 0.2}
	for {
		err := r.o.d.Listen(ctx, r.db, func() {
			bo.Reset()
			wake() // rows committed before LISTEN took effect
		}, wake)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, messaging.ErrUnsupported) {
			r.cfg.logger.Info("outbox relay: no notifications, polling only", "error", err)
			return
		}
		d := bo.NextBackOff()
		r.cfg.logger.Warn("outbox relay: LISTEN failed; polling until it is back", "error", err, "retry_in", d)
		if !sleep(ctx, d) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Relay) loop(ctx context.Context, wake <-chan struct{}) {
	cfg := r.cfg
	renewEvery := cfg.ttl / 3
	margin := cfg.ttl / 5
	newBackoff := func() *backoff.ExponentialBackOff {
		return &backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, Multiplier: 2, MaxInterval: min(5*time.Second, renewEvery), RandomizationFactor: 0.2}
	}
	bo := newBackoff() // for the database's failures
	var (
		parts       []int
		leaseStart  time.Time // local time before the last successful Lease call
		nextCleanup time.Time
		cleaning    bool // a cleanup was cut short: go on without waiting
		// retry holds the partitions whose rows the broker refused, and
		// when to try them again: they are left out of the fetches until
		// then, so a message the broker refuses every time (too large for
		// it) does not hold up the other partitions.
		retry = map[int]*partRetry{}
	)
	// wait blocks until woken, the poll interval passed or the lease needs
	// renewing; it reports false when ctx is done.
	wait := func(d time.Duration) bool {
		if due := time.Until(leaseStart.Add(renewEvery)); due < d {
			d = max(due, 0)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-wake:
			return true
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if time.Since(leaseStart) >= renewEvery {
			start := time.Now()
			p, err := r.o.d.Lease(ctx, r.db, cfg.id, cfg.ttl)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d := bo.NextBackOff()
				cfg.logger.Warn("outbox relay: renewing leases failed", "error", err, "retry_in", d)
				sleep(ctx, d)
				continue
			}
			if !slices.Equal(p, parts) {
				cfg.logger.Info("outbox relay: partitions changed", "partitions", p, "before", parts)
			}
			parts, leaseStart = p, start
			r.setParts(p)
			for part := range retry {
				if !slices.Contains(parts, part) {
					delete(retry, part)
				}
			}
		}
		if cfg.retention > 0 && (cleaning || time.Now().After(nextCleanup)) {
			// A large cleanup goes in slices between batches, so that
			// forwarding and renewing the leases go on.
			until := time.Now().Add(cleanupSlice)
			if renew := leaseStart.Add(renewEvery); renew.Before(until) {
				until = renew
			}
			if cleaning = !r.cleanup(ctx, until); !cleaning {
				nextCleanup = time.Now().Add(cfg.cleanupEvery)
			}
		}
		deadline := leaseStart.Add(cfg.ttl - margin)
		if len(parts) == 0 || time.Until(deadline) <= 0 {
			if !cleaning && !wait(cfg.poll) {
				return
			}
			continue
		}
		active, next, retrying := dueParts(parts, retry)
		if len(active) == 0 { // every partition waits to be retried
			if !wait(min(cfg.poll, time.Until(next))) {
				return
			}
			continue
		}
		res := r.forward(ctx, active, deadline)
		if ctx.Err() != nil {
			return
		}
		if res.dbErr != nil {
			d := bo.NextBackOff()
			cfg.logger.Warn("outbox relay: forwarding failed", "error", errors.Join(res.pubErr, res.dbErr), "retry_in", d)
			sleep(ctx, d)
			continue
		}
		bo.Reset()
		for _, part := range active {
			if !slices.Contains(res.failedParts, part) {
				delete(retry, part)
			}
		}
		if res.pubErr != nil {
			var d time.Duration
			for _, part := range res.failedParts {
				pr := retry[part]
				if pr == nil {
					pr = &partRetry{bo: newBackoff()}
					retry[part] = pr
				}
				d = pr.bo.NextBackOff()
				pr.at = time.Now().Add(d)
			}
			cfg.logger.Warn("outbox relay: forwarding rows failed; retrying their partitions later", "error", res.pubErr, "partitions", res.failedParts, "retry_in", d)
		}
		// A short batch of retried partitions says nothing of the others,
		// which were left out of it: fetch them next, without waiting.
		if res.fetched < cfg.batch && !cleaning && !retrying {
			d := cfg.poll
			if _, next, _ := dueParts(parts, retry); !next.IsZero() {
				d = min(d, time.Until(next))
			}
			if !wait(d) {
				return
			}
		}
	}
}

// refused reports whether err is Publish refusing a message itself, before
// sending anything: it would refuse it again.
func refused(err error) bool {
	return errors.Is(err, messaging.ErrMessageTooLarge) || errors.Is(err, messaging.ErrInvalidHeader)
}

// partRetry is when to fetch a partition again after the broker refused
// some of its rows.
type partRetry struct {
	at time.Time
	bo *backoff.ExponentialBackOff
}

// dueParts returns the partitions of parts to fetch next, and the earliest
// retry time of those waiting (zero when none waits). Partitions whose
// retry time has come are fetched alone: a batch that holds a message the
// broker refuses again is then made of their rows only (the rows of one
// topic call with a refused message are published one by one), and
// retrying is true. Else it returns the partitions not waiting to be
// retried.
func dueParts(parts []int, retry map[int]*partRetry) (due []int, next time.Time, retrying bool) {
	if len(retry) == 0 {
		return parts, time.Time{}, false
	}
	now := time.Now()
	var retried []int
	for _, p := range parts {
		switch pr := retry[p]; {
		case pr == nil:
			due = append(due, p)
		case now.Before(pr.at):
			if next.IsZero() || pr.at.Before(next) {
				next = pr.at
			}
		default:
			retried = append(retried, p)
		}
	}
	if len(retried) > 0 {
		return retried, next, true
	}
	return due, next, false
}

// cleanup deletes rows past their retention, in chunks, until none is
// left (it reports true then, or on a failure, retried at the next
// interval) or until is reached (false: the relay forwards and renews its
// leases, then goes on). It deletes one chunk at least.
func (r *Relay) cleanup(ctx context.Context, until time.Time) (done bool) {
	const chunk = 1000
	var total int64
	defer func() {
		if total > 0 {
			r.cfg.logger.Debug("outbox relay: deleted forwarded rows past retention", "rows", total)
		}
	}()
	for ctx.Err() == nil {
		n, err := r.o.d.Cleanup(ctx, r.db, r.cfg.retention, chunk)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.logger.Warn("outbox relay: cleanup failed", "error", err)
			}
			return true
		}
		if n < chunk {
			return true
		}
		if !time.Now().Before(until) {
			return false
		}
	}
	return true
}

// batchResult is the outcome of one forward call.
type batchResult struct {
	fetched     int   // rows fetched
	failedParts []int // partitions with rows the broker did not accept
	pubErr      error // the rows' failures: the broker's, and unreadable rows
	dbErr       error // the database's failures (fetching or marking)
}

// forward publishes one batch of the partitions' rows and marks what the
// broker accepted.
func (r *Relay) forward(ctx context.Context, parts []int, deadline time.Time) batchResult {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	recs, err := r.o.d.Fetch(pctx, r.db, parts, r.cfg.batch)
	if err != nil {
		return batchResult{dbErr: fmt.Errorf("outbox: fetch: %w", err)}
	}
	if len(recs) == 0 {
		return batchResult{}
	}
	fetched := time.Now()
	ok := make([]bool, len(recs))
	var pubErr error
	failed := 0
	for _, topic := range topicsInOrder(recs) {
		var idx []int
		var msgs []*messaging.Message
		var unreadable map[string]bool // keys with a row that cannot be read
		var blocked map[int]bool       // partitions with a row of no known key
		for i, rec := range recs {
			if rec.Topic != topic {
				continue
			}
			if rec.Message == nil {
				// A Dialect's row without a message (see Record): its
				// key is unknown, so the later rows of its partition,
				// which hold every row of that key, are held back.
				pubErr = errors.Join(pubErr, cmp.Or(rec.Err, fmt.Errorf("outbox: row %d: the dialect returned no message", rec.Seq)))
				failed++
				if blocked == nil {
					blocked = map[int]bool{}
				}
				blocked[rec.Partition] = true
				continue
			}
			if key := rec.Message.Key; rec.Err != nil || unreadable[key] || blocked[rec.Partition] {
				// Not published: the row, and the later ones of its key.
				pubErr = errors.Join(pubErr, rec.Err)
				failed++
				if key != "" {
					if unreadable == nil {
						unreadable = map[string]bool{}
					}
					unreadable[key] = true
				}
				continue
			}
			idx = append(idx, i)
			msgs = append(msgs, rec.Message)
		}
		if len(msgs) == 0 {
			continue
		}
		// A resend of a message the broker already holds (after a relay
		// died between publishing and marking) is forwarded, not failed:
		// brokers that deduplicate by ID report it with ErrDuplicate.
		err := messaging.IgnoreDuplicates(r.publish(pctx, topic, msgs))
		if err == nil {
			for _, i := range idx {
				ok[i] = true
			}
			continue
		}
		pubErr = errors.Join(pubErr, fmt.Errorf("outbox: publish %d messages to %s: %w", len(msgs), topic, err))
		var pe *messaging.PublishError
		if !errors.As(err, &pe) || len(pe.Errs) != len(msgs) {
			failed += len(msgs)
			continue
		}
		// Accepted messages count as forwarded, except those after a failed
		// one of the same key: they go again after it, keeping the order.
		held := map[string]bool{}
		for j, i := range idx {
			key := msgs[j].Key
			if pe.Errs[j] != nil && !errors.Is(pe.Errs[j], messaging.ErrDuplicate) || held[key] && key != "" {
				failed++
				held[key] = true
				continue
			}
			ok[i] = true
		}
	}
	acked := time.Now()
	publishTime := acked.Sub(fetched)
	var seqs []int64
	var lat []time.Duration
	var failedParts []int
	for i, rec := range recs {
		if !ok[i] && !slices.Contains(failedParts, rec.Partition) {
			failedParts = append(failedParts, rec.Partition)
		}
		if ok[i] {
			seqs = append(seqs, rec.Seq)
			if len(r.cfg.onBatch) > 0 {
				lat = append(lat, rec.Age+publishTime)
			}
		}
	}
	// Marking survives the end of ctx, so that what was published is
	// recorded and the next holder does not send it again; but for at most
	// shutdownWait after ctx ends (Run's bound), and the TTL in all.
	mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ttl)
	defer mcancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownWait, mcancel) })
	defer stopGrace()
	var marked int64
	var markErr error
	if len(seqs) > 0 {
		marked, markErr = r.o.d.MarkForwarded(mctx, r.db, r.cfg.id, seqs, r.cfg.retention > 0)
		if markErr != nil {
			markErr = fmt.Errorf("outbox: mark %d rows forwarded: %w", len(seqs), markErr)
			marked = 0
		}
	}
	unmarked := len(seqs) - int(marked)
	r.batches.Add(1)
	r.forwarded.Add(uint64(marked))
	r.failed.Add(uint64(failed))
	r.unmarked.Add(uint64(unmarked))
	if unmarked > 0 && markErr == nil {
		r.cfg.logger.Warn("outbox relay: lost a lease while publishing; the new holder sends those messages again", "messages", unmarked)
	}
	if len(r.cfg.onBatch) > 0 {
		info := BatchInfo{Fetched: len(recs), Forwarded: int(marked), Failed: failed, Unmarked: unmarked, Latencies: lat, Publish: publishTime, Err: errors.Join(pubErr, markErr)}
		for _, f := range r.cfg.onBatch {
			f(info)
		}
	}
	return batchResult{fetched: len(recs), failedParts: failedParts, pubErr: pubErr, dbErr: markErr}
}

// publish publishes msgs to topic in one call. A call the broker refuses
// before sending anything because of one of its messages (too large for
// it, or a header it cannot carry) would fail every time, and the other
// messages with it; it is then made again one message at a time, a key's
// messages stopping at its first failure (the later ones are held back,
// not sent, to keep the key's order). Only the refused message and the
// later ones of its key fail then; the error is a *messaging.PublishError
// with one entry per message.
func (r *Relay) publish(ctx context.Context, topic string, msgs []*messaging.Message) error {
	err := r.pub.Publish(ctx, topic, msgs...)
	var pe *messaging.PublishError
	if err == nil || len(msgs) == 1 || errors.As(err, &pe) || !refused(err) {
		return err
	}
	errs := make([]error, len(msgs))
	stopped := map[string]error{} // keys whose message failed
	failed := false
	for j, m := range msgs {
		if e := stopped[m.Key]; e != nil {
			errs[j] = fmt.Errorf("outbox: held back after a failed message of its key: %w", e)
			continue
		}
		if errs[j] = messaging.IgnoreDuplicates(r.pub.Publish(ctx, topic, m)); errs[j] == nil {
			continue
		}
		failed = true
		if !refused(errs[j]) { // not this message's fault (the broker is down): stop
			for k := j + 1; k < len(msgs); k++ {
				errs[k] = errs[j]
			}
			break
		}
		if m.Key != "" {
			stopped[m.Key] = errs[j]
		}
	}
	if !failed {
		return nil
	}
	return &messaging.PublishError{Errs: errs}
}

func topicsInOrder(recs []Record) []string {
	var topics []string
	for _, rec := range recs {
		if !slices.Contains(topics, rec.Topic) {
			topics = append(topics, rec.Topic)
		}
	}
	return topics
}
