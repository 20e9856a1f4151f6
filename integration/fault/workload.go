package fault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// Workload is the counting workload of the fault tests: publishers that
// keep publishing batches and record which messages Publish confirmed, and
// consumer groups whose deliveries are counted by ID and timed, so a test
// can measure how long publishing and each group stalled after a fault, and
// check at the end that every confirmed message reached every group.
type Workload struct {
	t     testing.TB
	topic string
	opts  WorkloadOptions

	mu         sync.Mutex
	confirmed  []string
	confirmAt  []time.Time
	failed     int
	firstErr   error
	lastErr    error
	changed    chan struct{}
	groups     []*CountedGroup
	stop       chan struct{}
	publishers sync.WaitGroup
	stopOnce   sync.Once
}

// WorkloadOptions shape a Workload; zero fields take the defaults.
type WorkloadOptions struct {
	Publishers  int           // concurrent publishers (default 2)
	Batch       int           // messages per Publish call (default 20)
	Interval    time.Duration // pause between one publisher's calls (default 10ms)
	CallTimeout time.Duration // context timeout of each Publish call (default 5s)
	Keys        int           // distinct keys, cycled (default 16)
}

// StartWorkload starts publishing to topic through pub.
func StartWorkload(t testing.TB, pub messaging.Publisher, topic string, opts WorkloadOptions) *Workload {
	if opts.Publishers == 0 {
		opts.Publishers = 2
	}
	if opts.Batch == 0 {
		opts.Batch = 20
	}
	if opts.Interval == 0 {
		opts.Interval = 10 * time.Millisecond
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.Keys == 0 {
		opts.Keys = 16
	}
	w := &Workload{t: t, topic: topic, opts: opts, changed: make(chan struct{}), stop: make(chan struct{})}
	for p := range opts.Publishers {
		w.publishers.Add(1)
		go w.publish(pub, p)
	}
	t.Cleanup(w.stopPublishing)
	return w
}

func (w *Workload) publish(pub messaging.Publisher, p int) {
	defer w.publishers.Done()
	tick := time.NewTicker(w.opts.Interval) // the publishing rate is the subject
	defer tick.Stop()
	for seq := 0; ; {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		msgs := make([]*messaging.Message, w.opts.Batch)
		for i := range msgs {
			seq++
			msgs[i] = &messaging.Message{
				ID:      fmt.Sprintf("p%d-%d", p, seq),
				Key:     "k" + strconv.Itoa(seq%w.opts.Keys),
				Payload: []byte(strconv.Itoa(seq)),
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.opts.CallTimeout)
		err := pub.Publish(ctx, w.topic, msgs...)
		cancel()
		now := time.Now()
		var pe *messaging.PublishError
		isPE := errors.As(err, &pe)
		w.mu.Lock()
		for i, m := range msgs {
			if err == nil || (isPE && i < len(pe.Errs) && pe.Errs[i] == nil) {
				w.confirmed = append(w.confirmed, m.ID)
				w.confirmAt = append(w.confirmAt, now)
			} else {
				w.failed++
			}
		}
		if err != nil {
			if w.firstErr == nil {
				w.firstErr = err
			}
			w.lastErr = err
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		if errors.Is(err, messaging.ErrClosed) {
			return
		}
	}
}

// Confirmed is how many messages Publish confirmed so far.
func (w *Workload) Confirmed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.confirmed)
}

// WaitConfirmed waits until n messages are confirmed, failing the test
// after timeout.
func (w *Workload) WaitConfirmed(n int, timeout time.Duration) {
	w.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		got, changed, last := len(w.confirmed), w.changed, w.lastErr
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			w.t.Fatalf("after %v: %d of %d messages confirmed (last error: %v)", timeout, got, n, last)
		}
	}
}

// WaitFailure waits until a Publish call fails after this call (the broker
// is seen down), failing the test after timeout.
func (w *Workload) WaitFailure(timeout time.Duration) {
	w.t.Helper()
	w.mu.Lock()
	from := w.failed
	w.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		failed, changed := w.failed, w.changed
		w.mu.Unlock()
		if failed > from {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			w.t.Fatalf("no Publish failed within %v", timeout)
		}
	}
}

// PublishRecovery waits until a Publish call confirms messages after since
// and returns how long after since that was (false after timeout).
func (w *Workload) PublishRecovery(since time.Time, timeout time.Duration) (time.Duration, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		var at time.Time
		for i := len(w.confirmAt) - 1; i >= 0 && w.confirmAt[i].After(since); i-- {
			at = w.confirmAt[i]
		}
		w.mu.Unlock()
		if !at.IsZero() {
			return at.Sub(since), true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return timeout, false
		}
	}
}

// CountedGroup counts and times one consumer group's deliveries; its
// Handler goes to every member's Subscribe.
type CountedGroup struct {
	Name string
	// Members is how many subscriptions the test made for the group
	// (StartFailoverWorkload sets it).
	Members int
	*integration.Collector

	mu sync.Mutex
	at []time.Time
}

// Group adds a counted consumer group named name (the test subscribes its
// members with its Handler and messaging.Group(g.Name)).
func (w *Workload) Group(name string) *CountedGroup {
	g := &CountedGroup{Name: name, Collector: integration.NewCollector()}
	w.mu.Lock()
	w.groups = append(w.groups, g)
	w.mu.Unlock()
	return g
}

// Handler records each delivery with its time and acknowledges it.
func (g *CountedGroup) Handler() messaging.Handler {
	return func(_ context.Context, m *messaging.Message) error {
		g.mu.Lock()
		g.at = append(g.at, time.Now())
		g.mu.Unlock()
		g.Add(m)
		return nil
	}
}

// Recovery waits until the group delivers a message after since and
// returns how long after since that was (false after timeout).
func (g *CountedGroup) Recovery(since time.Time, timeout time.Duration) (time.Duration, bool) {
	first := func() time.Time {
		g.mu.Lock()
		defer g.mu.Unlock()
		var at time.Time
		for i := len(g.at) - 1; i >= 0 && g.at[i].After(since); i-- {
			at = g.at[i]
		}
		return at
	}
	var at time.Time
	g.Wait(timeout, func(*integration.Collector) bool { at = first(); return !at.IsZero() })
	if at.IsZero() {
		return timeout, false
	}
	return at.Sub(since), true
}

// Recovery is how long publishing and each group took to resume after
// since (the moment the broker accepted connections again).
type Recovery struct {
	Publish time.Duration
	Groups  map[string]time.Duration
	OK      bool // everything resumed within the timeout
}

func (r Recovery) String() string {
	s := fmt.Sprintf("publish %v", r.Publish.Round(time.Millisecond))
	names := slices.Sorted(maps.Keys(r.Groups))
	for _, name := range names {
		s += fmt.Sprintf(", group %s %v", shortName(name), r.Groups[name].Round(time.Millisecond))
	}
	if !r.OK {
		s += " (NOT RECOVERED)"
	}
	return s
}

// Max is the longest of the stalls.
func (r Recovery) Max() time.Duration {
	m := r.Publish
	for _, d := range r.Groups {
		m = max(m, d)
	}
	return m
}

// Recovered waits (up to timeout for each) until publishing and every group
// resume after since.
func (w *Workload) Recovered(since time.Time, timeout time.Duration) Recovery {
	r := Recovery{Groups: map[string]time.Duration{}, OK: true}
	var ok bool
	r.Publish, ok = w.PublishRecovery(since, timeout)
	r.OK = r.OK && ok
	w.mu.Lock()
	groups := append([]*CountedGroup(nil), w.groups...)
	w.mu.Unlock()
	for _, g := range groups {
		r.Groups[g.Name], ok = g.Recovery(since, timeout)
		r.OK = r.OK && ok
	}
	return r
}

func (w *Workload) stopPublishing() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.publishers.Wait()
}

// Stop stops publishing and returns the confirmed IDs and how many
// messages Publish reported failed.
func (w *Workload) Stop() (confirmed []string, failed int) {
	w.stopPublishing()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.confirmed...), w.failed
}

// Finish stops publishing, waits up to timeout until every group has every
// confirmed message, and reports per group (loss fails the test,
// duplicates are logged). It returns the confirmed IDs.
func (w *Workload) Finish(timeout time.Duration) []string {
	w.t.Helper()
	ids, failed := w.Stop()
	w.mu.Lock()
	groups := append([]*CountedGroup(nil), w.groups...)
	w.t.Logf("publishing: %d confirmed, %d reported failed (first error: %v)", len(ids), failed, w.firstErr)
	w.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for _, g := range groups {
		g.Wait(time.Until(deadline), func(c *integration.Collector) bool {
			return c.Distinct() >= len(ids) && len(c.Missing(ids)) == 0
		})
		w.t.Logf("group %s:", g.Name)
		g.Report(w.t, ids)
	}
	return ids
}
