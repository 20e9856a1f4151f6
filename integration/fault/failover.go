package fault

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// NodeLoss is one cluster node's loss and return, as a failover test
// drives it.
type NodeLoss struct {
	// Kill takes the node away (SIGKILL, or what the cluster allows).
	Kill func()
	// Elected, when not nil, waits until the cluster serves the topic
	// again without the node (a new leader elected, a replica promoted)
	// and fails the test after timeout. The recovery targets count from
	// its return.
	Elected func(timeout time.Duration)
	// Restart brings the node back (same ports and data) and returns once
	// it accepts connections.
	Restart func()
}

// Failover is what RunFailover measured.
type Failover struct {
	Elected      time.Duration // kill to new leader serving
	AfterElected Recovery      // first publish / delivery after that
	Stall        Recovery      // longest gap without confirmation / delivery from the kill until steady again
	RestartStall Recovery      // the same from the restart on
	Lost         map[string]int
	Duplicates   map[string]int
	TargetsMet   bool // publish within 1s and every group within 2s of Elected
}

// Recovery targets of the failover tests, counted from the moment the
// cluster serves again without the lost node.
const (
	PublishTarget = time.Second
	GroupTarget   = 2 * time.Second
	// FailoverBound fails the test: five times the group target, loose
	// enough for a loaded CI machine, tight enough to catch a client that
	// keeps talking to the dead node until a periodic refresh.
	FailoverBound = 10 * time.Second
)

// RunFailover is the cluster failover scenario every adapter runs: w
// publishes to topic and its groups are subscribed. Once publishing and
// every group run, n is killed; the test waits until the cluster serves
// again (n.Elected), until publishing and every group resume and every
// message confirmed so far is delivered; then n is restarted and the same
// is awaited again. Nothing confirmed may be lost; not resuming within
// FailoverBound of Elected fails the test. It logs one line in a format shared by every
// adapter:
//
//	FAILOVER <name>: lost=0 duplicates=... elected=... after-elected: publish ... stall: ... restart-stall: ... targets=met|MISSED
//
// A stall is the longest time without a confirmed Publish (or without a
// delivery to the group) from the kill (or restart) until the workload is
// steady again; after-elected is how long after Elected the first
// confirmation and deliveries came. Missed targets are reported, not
// failed: timing on a shared CI machine is noise.
func RunFailover(t *testing.T, name string, w *Workload, n NodeLoss) Failover {
	t.Helper()
	var f Failover
	w.waitSteady()

	killed := time.Now()
	n.Kill()
	elected := killed
	if n.Elected != nil {
		n.Elected(60 * time.Second)
		elected = time.Now()
	}
	f.Elected = elected.Sub(killed)
	f.AfterElected = w.Recovered(elected, 60*time.Second)
	if !f.AfterElected.OK || f.AfterElected.Max() > FailoverBound {
		t.Errorf("%s: did not resume within %v after the node loss: %v", name, FailoverBound, f.AfterElected)
	}
	w.waitSteady()
	f.Stall = w.stalls(killed, time.Now())

	restarted := time.Now()
	n.Restart()
	w.waitSteady()
	f.RestartStall = w.stalls(restarted, time.Now())

	var ids []string
	ids, f.Lost, f.Duplicates = w.finishCounted()
	f.TargetsMet = f.AfterElected.metTargets()
	line := fmt.Sprintf("FAILOVER %s: lost=%s duplicates=%s confirmed=%d elected=%v after-elected: %v; stall: %v; restart-stall: %v; targets=%s",
		name, perGroup(f.Lost), perGroup(f.Duplicates), len(ids), f.Elected.Round(time.Millisecond),
		f.AfterElected, f.Stall, f.RestartStall, metWord(f.TargetsMet))
	report(t, line)
	return f
}

// perGroup formats a per-group count as total(g1=a,g2=b) in group order.
func perGroup(m map[string]int) string {
	names := make([]string, 0, len(m))
	total := 0
	for g, n := range m {
		names = append(names, g)
		total += n
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, g := range names {
		parts[i] = fmt.Sprintf("%s=%d", shortName(g), m[g])
	}
	return fmt.Sprintf("%d(%s)", total, strings.Join(parts, ","))
}

// shortName cuts a UniqueName to its prefix.
func shortName(name string) string {
	s, _, _ := strings.Cut(name, "-")
	return s
}

func (w *Workload) groupList() []*CountedGroup {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.groups)
}

// waitSteady waits until 300 more messages are confirmed and every group
// has every message confirmed so far: the workload runs (again).
func (w *Workload) waitSteady() {
	w.t.Helper()
	w.WaitConfirmed(w.Confirmed()+300, 60*time.Second)
	w.waitDelivered(60 * time.Second)
}

// waitDelivered waits until every group has every message confirmed so
// far, failing the test after timeout.
func (w *Workload) waitDelivered(timeout time.Duration) {
	w.t.Helper()
	w.mu.Lock()
	ids := slices.Clone(w.confirmed)
	w.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for _, g := range w.groupList() {
		ok := g.Wait(time.Until(deadline), func(c *integration.Collector) bool {
			return c.Distinct() >= len(ids) && len(c.Missing(ids)) == 0
		})
		if !ok {
			missing := g.Missing(ids)
			w.t.Fatalf("group %s: %d of %d confirmed messages not delivered after %v", g.Name, len(missing), len(ids), timeout)
		}
	}
}

// stalls is the longest gap without a confirmation, and per group without
// a delivery, within [from, to].
func (w *Workload) stalls(from, to time.Time) Recovery {
	r := Recovery{Groups: map[string]time.Duration{}, OK: true}
	w.mu.Lock()
	r.Publish = longestGap(w.confirmAt, from, to)
	w.mu.Unlock()
	for _, g := range w.groupList() {
		g.mu.Lock()
		r.Groups[g.Name] = longestGap(g.at, from, to)
		g.mu.Unlock()
	}
	return r
}

// longestGap is the longest interval within [from, to] containing none of
// times (which are in ascending order, give or take concurrent writers).
func longestGap(times []time.Time, from, to time.Time) time.Duration {
	var in []time.Time
	for _, at := range times {
		if at.After(from) && at.Before(to) {
			in = append(in, at)
		}
	}
	slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
	prev, gap := from, time.Duration(0)
	for _, at := range in {
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

// StartFailoverWorkload starts the failover tests' workload on topic
// through pub: two publishers of batches of 10 every 20ms (calls time out
// after 3s) and the groups one (one member) and two (two members), each
// member a subscription of a client from open with opts.
func StartFailoverWorkload(t *testing.T, pub messaging.Publisher, topic, one, two string, open func() messaging.Consumer, opts ...messaging.SubscribeOption) *Workload {
	t.Helper()
	w := StartWorkload(t, pub, topic, WorkloadOptions{Batch: 10, Interval: 20 * time.Millisecond, CallTimeout: 3 * time.Second})
	g1, g2 := w.Group(one), w.Group(two)
	for _, g := range []*CountedGroup{g1, g2, g2} {
		g.Members++
		sub, err := open().Subscribe(t.Context(), topic, g.Handler(), append([]messaging.SubscribeOption{messaging.Group(g.Name)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	return w
}
