package integration

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// Harness tells the conformance suite, and cross-backend tests, how to get
// clients of one adapter.
type Harness struct {
	// Name names the backend in test names ("memory", "nats").
	Name string
	// Open returns a new client connected to the backend under test. It skips
	// (or fails) the test when the broker is unavailable. Callers close the
	// client; the suite does so in t.Cleanup.
	Open func(t testing.TB) messaging.Client
	// AckDeadline is the ack deadline the ack-deadline case uses; default 2s.
	AckDeadline time.Duration
	// TimeGap separates the two halves of the replay-by-time case, for
	// brokers whose timestamps are coarse; default 50ms.
	TimeGap time.Duration
	// Timeout bounds each wait for deliveries; default 30s.
	Timeout time.Duration
	// Kill, when set, crashes a client abruptly (connection dropped, nothing
	// settled), for the ack-deadline case. Without it the case leaves a
	// handler stuck instead, which only works where the adapter does not
	// extend deadlines of running handlers.
	Kill func(t testing.TB, c messaging.Client)
	// InspectGaps are the figures the adapter's Inspect cannot report, for
	// the Inspect case (run when the client implements messaging.Inspector);
	// nil: InspectGapsByBroker's for the scheme Inspect names.
	InspectGaps *InspectGaps
	// InspectUnsupported: the client implements messaging.Inspector but its
	// Inspect fails with messaging.ErrUnsupported by design (core NATS keeps
	// no state to inspect); the Inspect case checks that error and skips.
	// Elsewhere ErrUnsupported from Inspect fails the case.
	InspectUnsupported bool
}

func (h Harness) withDefaults() Harness {
	if h.AckDeadline == 0 {
		h.AckDeadline = 2 * time.Second
	}
	if h.TimeGap == 0 {
		h.TimeGap = 50 * time.Millisecond
	}
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	return h
}

// client opens a client that is closed when the test ends.
func (h Harness) client(t testing.TB) messaging.Client {
	t.Helper()
	c := h.Open(t)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var (
	harnessMu sync.Mutex
	harnesses = map[string]Harness{}
)

// RegisterHarness makes a backend available to ForEachBackend. Each adapter's
// file in this package registers its own from init.
func RegisterHarness(h Harness) {
	harnessMu.Lock()
	defer harnessMu.Unlock()
	if _, dup := harnesses[h.Name]; dup {
		panic("integration: harness registered twice: " + h.Name)
	}
	harnesses[h.Name] = h
}

// Harnesses returns the registered backends, sorted by name.
func Harnesses() []Harness {
	harnessMu.Lock()
	defer harnessMu.Unlock()
	out := make([]Harness, 0, len(harnesses))
	for _, h := range harnesses {
		out = append(out, h.withDefaults())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupHarness returns the backend registered under name.
func LookupHarness(name string) (Harness, bool) {
	harnessMu.Lock()
	defer harnessMu.Unlock()
	h, ok := harnesses[name]
	return h.withDefaults(), ok
}

// ForEachBackend runs f as a subtest for every registered backend; a backend
// whose broker is unavailable skips (or fails, under
// MESSAGING_REQUIRE_BROKERS=1) inside its subtest.
func ForEachBackend(t *testing.T, f func(t *testing.T, h Harness)) {
	for _, h := range Harnesses() {
		t.Run(h.Name, func(t *testing.T) { f(t, h) })
	}
}

// Client opens a client of h's backend that is closed when the test ends.
func (h Harness) Client(t testing.TB) messaging.Client {
	t.Helper()
	return h.withDefaults().client(t)
}

// RequireBrokersEnv is the environment variable that turns a missing broker
// from a skip into a failure (CI sets it to 1).
const RequireBrokersEnv = "MESSAGING_REQUIRE_BROKERS"
