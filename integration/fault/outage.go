package fault

import (
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// Outage is one outage of a broker, as an outage test drives it.
type Outage struct {
	// Down takes the broker away: cuts the network to it (every
	// connection closed, new ones refused) or kills its process.
	Down func()
	// Up ends the outage and returns once the broker accepts connections
	// again. The recovery targets count from its return.
	Up func()
	// For is how long the broker stays away (default 3s).
	For time.Duration
	// Steady, when not nil, waits until the broker's own state is steady
	// (no rebalance in progress, say) before Down, and fails the test
	// after timeout; groups are the workload's.
	Steady func(groups []*CountedGroup, timeout time.Duration)
}

// OutageResult is what RunOutage measured.
type OutageResult struct {
	Back       Recovery // first publish / delivery after Up returned
	Stall      Recovery // longest gap without confirmation / delivery from Down until steady again
	Lost       map[string]int
	Duplicates map[string]int
	TargetsMet bool // publish within PublishTarget and every group within GroupTarget of Up
}

// RunOutage is the outage scenario every adapter runs, once with a network
// cut and once with a broker killed and restarted: w publishes to topic and
// its groups are subscribed. Once publishing and every group run, o.Down
// takes the broker away for o.For, o.Up brings it back; the test waits
// until publishing and every group resume and every message confirmed so
// far is delivered. Nothing confirmed may be lost; not resuming within
// FailoverBound of Up fails the test. It logs one line in a format shared
// by every adapter:
//
//	OUTAGE <name>: lost=0 duplicates=... confirmed=... down=... back: publish ..., group ...; stall: ...; targets=met|MISSED
//
// back is how long after Up returned the first confirmation and the first
// delivery to each group came; a stall is the longest time without a
// confirmed Publish (or without a delivery to the group) from Down until
// the workload is steady again. Missed targets are reported, not failed:
// timing on a shared CI machine is noise.
func RunOutage(t *testing.T, name string, w *Workload, o Outage) OutageResult {
	t.Helper()
	if o.For == 0 {
		o.For = 3 * time.Second
	}
	var r OutageResult
	w.waitSteady()
	if o.Steady != nil {
		o.Steady(w.groupList(), 60*time.Second)
	}

	down := time.Now()
	o.Down()
	time.Sleep(o.For) // the outage's length is the subject
	o.Up()
	up := time.Now()
	r.Back = w.Recovered(up, 60*time.Second)
	if !r.Back.OK || r.Back.Max() > FailoverBound {
		t.Errorf("%s: did not resume within %v after the broker was back: %v", name, FailoverBound, r.Back)
	}
	w.waitSteady()
	r.Stall = w.stalls(down, time.Now())

	var ids []string
	ids, r.Lost, r.Duplicates = w.finishCounted()
	r.TargetsMet = r.Back.metTargets()
	report(t, fmt.Sprintf("OUTAGE %s: lost=%s duplicates=%s confirmed=%d down=%v back: %v; stall: %v; targets=%s",
		name, perGroup(r.Lost), perGroup(r.Duplicates), len(ids), up.Sub(down).Round(time.Millisecond),
		r.Back, r.Stall, metWord(r.TargetsMet)))
	return r
}

// RunOutageTest runs RunOutage with the workload every adapter's outage
// tests use: open returns a new client of the broker under test (closed by
// the caller's cleanup); one of them publishes to a new topic, provisioned
// with the groups one (one member) and two (two members, each its own
// client), subscribed with Concurrency(4) and an AckDeadline of 2s. name
// starts the OUTAGE line ("redis cut").
func RunOutageTest(t *testing.T, name string, open func() messaging.Client, o Outage) OutageResult {
	t.Helper()
	if testing.Short() {
		t.Skip("takes a private broker away")
	}
	pub := open()
	topic := integration.UniqueName(t, "out")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := messaging.Provision(t.Context(), pub, topic, one, two); err != nil {
		t.Fatal(err)
	}
	w := StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() },
		messaging.Concurrency(4), messaging.AckDeadline(2*time.Second))
	return RunOutage(t, name, w, o)
}

// finishCounted stops the workload, waits until every group has every
// confirmed message (loss fails the test) and returns the confirmed IDs
// and what each group lost and received twice.
func (w *Workload) finishCounted() (ids []string, lost, duplicates map[string]int) {
	w.t.Helper()
	ids = w.Finish(60 * time.Second)
	lost, duplicates = map[string]int{}, map[string]int{}
	for _, g := range w.groupList() {
		lost[g.Name] = len(g.Missing(ids))
		duplicates[g.Name] = g.Duplicates()
	}
	return ids, lost, duplicates
}

// metTargets: everything resumed, publishing within PublishTarget and
// every group within GroupTarget.
func (r Recovery) metTargets() bool {
	met := r.OK && r.Publish <= PublishTarget
	for _, d := range r.Groups {
		met = met && d <= GroupTarget
	}
	return met
}

func metWord(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}
