package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// Collector counts delivered messages by ID, for tests that prove delivery:
// it records every delivery (duplicates included) and lets a test wait, on a
// signal rather than a sleep, until enough distinct messages have arrived.
// It is safe for concurrent use.
type Collector struct {
	mu      sync.Mutex
	seen    map[string]int
	msgs    []*messaging.Message
	changed chan struct{}
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	return &Collector{seen: map[string]int{}, changed: make(chan struct{})}
}

// Add records a delivery of m (a copy is kept) and reports whether it was the
// first delivery of m.ID.
func (c *Collector) Add(m *messaging.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[m.ID]++
	c.msgs = append(c.msgs, m.Clone())
	close(c.changed)
	c.changed = make(chan struct{})
	return c.seen[m.ID] == 1
}

// Handler returns a handler that records each delivery and acknowledges it.
func (c *Collector) Handler() messaging.Handler {
	return func(_ context.Context, m *messaging.Message) error {
		c.Add(m)
		return nil
	}
}

// Distinct is the number of distinct IDs delivered.
func (c *Collector) Distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Total is the number of deliveries, duplicates included.
func (c *Collector) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// Duplicates is the number of deliveries beyond the first of each ID.
func (c *Collector) Duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs) - len(c.seen)
}

// Count is how often id was delivered.
func (c *Collector) Count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

// Messages returns copies of all deliveries in arrival order.
func (c *Collector) Messages() []*messaging.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*messaging.Message(nil), c.msgs...)
}

// Wait blocks until cond holds (checked after every delivery) or timeout
// passes, and reports whether cond held.
func (c *Collector) Wait(timeout time.Duration, cond func(c *Collector) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if cond(c) {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return cond(c)
		}
	}
}

// WaitDistinct waits until n distinct IDs have been delivered; it fails the
// test with the count reached when the timeout passes first.
func (c *Collector) WaitDistinct(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	if !c.Wait(timeout, func(c *Collector) bool { return c.Distinct() >= n }) {
		t.Fatalf("after %v: %d of %d distinct messages delivered (%d deliveries)", timeout, c.Distinct(), n, c.Total())
	}
}

// WaitDistinctProgress waits until n distinct IDs have been delivered, for
// as long as deliveries go on: it fails the test when stall passes without a
// new distinct ID. For a consumer catching up on a backlog whose size a test
// does not bound (what a workload published during an outage of varying
// length), where a total timeout would measure its speed, not a stall.
func (c *Collector) WaitDistinctProgress(t testing.TB, n int, stall time.Duration) {
	t.Helper()
	for {
		reached := c.Distinct()
		if reached >= n {
			return
		}
		if !c.Wait(stall, func(c *Collector) bool { return c.Distinct() > reached }) {
			t.Fatalf("no new message for %v: %d of %d distinct messages delivered (%d deliveries)", stall, c.Distinct(), n, c.Total())
		}
	}
}

// Missing returns the IDs in ids that were never delivered.
func (c *Collector) Missing(ids []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range ids {
		if c.seen[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// Report checks that every ID in published was delivered and logs the
// counts, duplicates included; it fails the test listing (up to 10) missing
// IDs. It returns the number of duplicates.
func (c *Collector) Report(t testing.TB, published []string) int {
	t.Helper()
	missing := c.Missing(published)
	dups := c.Duplicates()
	t.Logf("delivery count: published and confirmed %d, delivered distinct %d, deliveries %d, duplicates %d, missing %d",
		len(published), c.Distinct(), c.Total(), dups, len(missing))
	if len(missing) > 0 {
		show := missing
		if len(show) > 10 {
			show = show[:10]
		}
		t.Errorf("LOST %d confirmed messages, e.g. %v", len(missing), show)
	}
	return dups
}

func (c *Collector) String() string {
	return fmt.Sprintf("collector(distinct=%d total=%d)", c.Distinct(), c.Total())
}

// WithIDs gives each of msgs without an ID a unique one, unless c (a
// Client, or anything reporting Capabilities) claims PublishAssignsID:
// where Publish assigns none (core NATS), a message published without an ID
// gets one on delivery only, which the publisher cannot know, so tests that
// count deliveries by ID set them as a user correlating messages would. It
// returns msgs.
func WithIDs(c any, msgs ...*messaging.Message) []*messaging.Message {
	if cc, ok := c.(interface{ Capabilities() messaging.Capabilities }); ok && cc.Capabilities().PublishAssignsID {
		return msgs
	}
	for _, m := range msgs {
		if m.ID == "" {
			m.ID = fmt.Sprintf("test-%d-%d", time.Now().UnixNano(), idSeq.Add(1))
		}
	}
	return msgs
}

var idSeq atomic.Int64
