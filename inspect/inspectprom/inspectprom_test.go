package inspectprom_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/inspect/inspectprom"
	"github.com/msgkit/messaging/internal/inspection/inspectiontest"
)

var quiet = inspectprom.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// newCollector is inspectprom.New, failing the test on an error.
func newCollector(t *testing.T, insp messaging.Inspector, opts ...inspectprom.Option) *inspectprom.Collector {
	t.Helper()
	c, err := inspectprom.New(insp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestInvalidOptions: New refuses a nil inspector and each option's
// invalid values with an error wrapping messaging.ErrInvalidOption that
// names the option, and takes the valid edge values.
func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		insp messaging.Inspector
		opt  inspectprom.Option
	}{
		{"New", nil, nil},
		{"WithNamespace", fixed{}, inspectprom.WithNamespace("my-app")},
		{"WithNamespace", fixed{}, inspectprom.WithNamespace("1app")},
		{"WithTopics", fixed{}, inspectprom.WithTopics()},
		{"WithTopics", fixed{}, inspectprom.WithTopics("orders", "")},
		{"WithTopics", fixed{}, inspectprom.WithTopics("a b")},
		{"WithScrapeTimeout", fixed{}, inspectprom.WithScrapeTimeout(0)},
		{"WithScrapeTimeout", fixed{}, inspectprom.WithScrapeTimeout(-time.Second)},
		{"WithLogger", fixed{}, inspectprom.WithLogger(nil)},
		{"WithConstLabels", fixed{}, inspectprom.WithConstLabels(prometheus.Labels{"topic": "x"})},
		{"WithConstLabels", fixed{}, inspectprom.WithConstLabels(prometheus.Labels{"client-name": "x"})},
		{"WithConstLabels", fixed{}, inspectprom.WithConstLabels(prometheus.Labels{"__client": "x"})},
		{"WithConstLabels", fixed{}, inspectprom.WithConstLabels(prometheus.Labels{"": "x"})},
		{"WithConstLabels", fixed{}, inspectprom.WithConstLabels(prometheus.Labels{"client": "x\xff"})},
	} {
		c, err := inspectprom.New(tc.insp, tc.opt)
		if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name) || c != nil {
			t.Errorf("%s: New = %v, %v; want nil and an error naming %s wrapping ErrInvalidOption", tc.name, c, err, tc.name)
		} else {
			t.Log(err)
		}
	}
	newCollector(t, fixed{}, nil, inspectprom.WithNamespace(""), inspectprom.WithNamespace("_app2"),
		inspectprom.WithConstLabels(nil), inspectprom.WithConstLabels(prometheus.Labels{"client_2": ""}))
}

// figures are the metrics whose values a test knows exactly (the age and
// the duration are checked apart).
var figures = []string{
	"messaging_topic_messages", "messaging_topic_bytes", "messaging_group_backlog_messages",
	"messaging_group_in_flight_messages", "messaging_group_redeliveries", "messaging_group_consumers",
	"messaging_inspect_up", "messaging_inspect_errors_total",
}

// TestCollector: after a real publish, consume and acknowledge on the
// memory broker, a scrape of every topic (listed by the client) exports
// the broker's figures; a topic that is not there fails its inspection
// without failing the scrape.
func TestCollector(t *testing.T) {
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	bytes := inspectiontest.HeldBacklog(t, c, "orders")
	if err := c.Provision(t.Context(), "empty"); err != nil {
		t.Fatal(err)
	}
	col := newCollector(t, c, quiet)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(col); err != nil {
		t.Fatal(err)
	}
	expected := fmt.Sprintf(`
# HELP messaging_topic_messages Messages the broker retains for the topic.
# TYPE messaging_topic_messages gauge
messaging_topic_messages{broker="mem",topic="empty"} 0
messaging_topic_messages{broker="mem",topic="orders"} 5
# HELP messaging_topic_bytes Size of the messages the broker retains for the topic.
# TYPE messaging_topic_bytes gauge
messaging_topic_bytes{broker="mem",topic="empty"} 0
messaging_topic_bytes{broker="mem",topic="orders"} %d
# HELP messaging_group_backlog_messages Messages published but not yet delivered to the group.
# TYPE messaging_group_backlog_messages gauge
messaging_group_backlog_messages{broker="mem",group="idle",topic="orders"} 5
messaging_group_backlog_messages{broker="mem",group="work",topic="orders"} 2
# HELP messaging_group_in_flight_messages Messages delivered to the group's consumers and not yet settled.
# TYPE messaging_group_in_flight_messages gauge
messaging_group_in_flight_messages{broker="mem",group="idle",topic="orders"} 0
messaging_group_in_flight_messages{broker="mem",group="work",topic="orders"} 2
# HELP messaging_group_redeliveries Redeliveries to the group, as the broker counts them.
# TYPE messaging_group_redeliveries gauge
messaging_group_redeliveries{broker="mem",group="idle",topic="orders"} 0
messaging_group_redeliveries{broker="mem",group="work",topic="orders"} 0
# HELP messaging_group_consumers Consumers (group members) connected.
# TYPE messaging_group_consumers gauge
messaging_group_consumers{broker="mem",group="idle",topic="orders"} 0
messaging_group_consumers{broker="mem",group="work",topic="orders"} 1
# HELP messaging_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE messaging_inspect_up gauge
messaging_inspect_up 1
# HELP messaging_inspect_errors_total Failed inspections: listing the topics, or inspecting one.
# TYPE messaging_inspect_errors_total counter
messaging_inspect_errors_total 0
`, bytes)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), figures...); err != nil {
		t.Error(err)
	}
	// The ages: idle's oldest is the first message, work's the fourth; both
	// were published before the scrape.
	for _, m := range gather(t, reg, "messaging_group_oldest_age_seconds") {
		if m <= 0 || m > time.Minute.Seconds() {
			t.Errorf("oldest age %v s, want a positive age of less than a minute", m)
		}
	}
	if n := testutil.CollectAndCount(col, "messaging_group_oldest_age_seconds"); n != 2 {
		t.Errorf("%d oldest ages, want 2", n)
	}
	if n := testutil.CollectAndCount(col, "messaging_inspect_duration_seconds"); n != 1 {
		t.Errorf("%d durations, want 1", n)
	}

	// A fixed list with a topic that is not there: the others are exported,
	// up is 0 and the error counted, scrape after scrape.
	col = newCollector(t, c, inspectprom.WithTopics("empty", "missing", "empty"), quiet) // a topic named twice is inspected once
	for scrape := 1; scrape <= 2; scrape++ {
		expected := fmt.Sprintf(`
# HELP messaging_topic_messages Messages the broker retains for the topic.
# TYPE messaging_topic_messages gauge
messaging_topic_messages{broker="mem",topic="empty"} 0
# HELP messaging_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE messaging_inspect_up gauge
messaging_inspect_up 0
# HELP messaging_inspect_errors_total Failed inspections: listing the topics, or inspecting one.
# TYPE messaging_inspect_errors_total counter
messaging_inspect_errors_total %d
`, scrape)
		if err := testutil.CollectAndCompare(col, strings.NewReader(expected), "messaging_topic_messages", "messaging_inspect_up", "messaging_inspect_errors_total"); err != nil {
			t.Errorf("scrape %d: %v", scrape, err)
		}
	}
}

// gather returns the values of the metric name in reg.
func gather(t *testing.T, reg prometheus.Gatherer, name string) []float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.Metric {
				out = append(out, m.GetGauge().GetValue())
			}
		}
	}
	return out
}

// partial reports what a broker that gives fewer figures would: the
// memory client's stats with the in-flight count, the bytes and the ages
// unknown. It lists no topics (it is no messaging.TopicLister).
type partial struct{ c *memory.Client }

func (p partial) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	st, err := p.c.Inspect(ctx, topic)
	st.Bytes = messaging.Count{}
	for i := range st.Groups {
		st.Groups[i].InFlight = messaging.Count{}
		st.Groups[i].OldestAge = messaging.Age{}
	}
	return st, err
}

// TestUnknownFiguresAreLeftOut: figures the broker does not report are not
// exported (never as 0), and a client that cannot list its topics needs
// them named.
func TestUnknownFiguresAreLeftOut(t *testing.T) {
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	inspectiontest.HeldBacklog(t, c, "orders")
	col := newCollector(t, partial{c}, inspectprom.WithTopics("orders"), quiet)
	for _, name := range []string{"messaging_topic_bytes", "messaging_group_in_flight_messages", "messaging_group_oldest_age_seconds"} {
		if n := testutil.CollectAndCount(col, name); n != 0 {
			t.Errorf("%d samples of %s, an unknown figure", n, name)
		}
	}
	expected := `
# HELP messaging_group_backlog_messages Messages published but not yet delivered to the group.
# TYPE messaging_group_backlog_messages gauge
messaging_group_backlog_messages{broker="mem",group="idle",topic="orders"} 5
messaging_group_backlog_messages{broker="mem",group="work",topic="orders"} 2
# HELP messaging_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE messaging_inspect_up gauge
messaging_inspect_up 1
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(expected), "messaging_group_backlog_messages", "messaging_inspect_up"); err != nil {
		t.Error(err)
	}

	col = newCollector(t, partial{c}, quiet) // no topics, and none listed
	expected = `
# HELP messaging_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE messaging_inspect_up gauge
messaging_inspect_up 0
# HELP messaging_inspect_errors_total Failed inspections: listing the topics, or inspecting one.
# TYPE messaging_inspect_errors_total counter
messaging_inspect_errors_total 1
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(expected), "messaging_topic_messages", "messaging_inspect_up", "messaging_inspect_errors_total"); err != nil {
		t.Error(err)
	}
}

// stuck is a broker that never answers.
type stuck struct{}

func (stuck) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	<-ctx.Done()
	return messaging.TopicStats{}, ctx.Err()
}

// TestScrapeTimeout: a broker that does not answer holds a scrape for the
// timeout, not longer, and the scrape reports it down.
func TestScrapeTimeout(t *testing.T) {
	col := newCollector(t, stuck{}, inspectprom.WithTopics("a", "b"), inspectprom.WithScrapeTimeout(50*time.Millisecond), quiet)
	up := make(chan float64, 1)
	go func() { up <- testutil.ToFloat64(upOnly{col}) }()
	select {
	case v := <-up:
		if v != 0 {
			t.Errorf("up = %v, want 0", v)
		}
	case <-time.After(5 * time.Second):
		// The scrape's goroutine stays blocked on the stuck broker.
		t.Fatal("scrape still running after 5s with a 50ms timeout")
	}
}

// upOnly is the collector's up gauge alone (testutil.ToFloat64 takes a
// collector of one metric).
type upOnly struct{ c *inspectprom.Collector }

func (u upOnly) Describe(ch chan<- *prometheus.Desc) { u.c.Describe(ch) }
func (u upOnly) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { u.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"messaging_inspect_up"`) {
			ch <- m
		}
	}
}

// odd is a broker whose figures hold what Prometheus would refuse: a group
// named twice, a partition twice, and names that are not UTF-8.
type odd struct{}

// Topics lists a topic twice and names that are not UTF-8 (WithTopics
// refuses them).
func (odd) Topics(context.Context) ([]string, error) {
	return []string{"t", "t", "x\xff", "x\xfe"}, nil
}

func (odd) Inspect(_ context.Context, topic string) (messaging.TopicStats, error) {
	one := messaging.KnownCount(1)
	return messaging.TopicStats{Broker: "mem", Topic: topic, Messages: one,
		Partitions: []messaging.PartitionStats{{Partition: 0, Messages: one}, {Partition: 0, Messages: one}},
		Groups:     []messaging.GroupStats{{Group: "g", Backlog: one}, {Group: "g", Backlog: one}, {Group: "bad\xff", Backlog: one}},
	}, nil
}

// TestOddFiguresDoNotFailTheScrape: a topic listed twice, a group or
// partition reported twice and names that are not UTF-8 are exported once
// each, with U+FFFD for the invalid bytes: a duplicate series or an invalid
// label would fail the registry's whole Gather (promhttp then answers 500
// for every metric), and MustNewConstMetric panics on invalid UTF-8.
func TestOddFiguresDoNotFailTheScrape(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(t, odd{}, quiet)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "messaging_group_backlog_messages" {
			continue
		}
		var got []string
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			got = append(got, strings.Join(ls, ","))
		}
		want := []string{
			"broker=mem,group=bad\uFFFD,topic=t", "broker=mem,group=g,topic=t",
			"broker=mem,group=bad\uFFFD,topic=x\uFFFD", "broker=mem,group=g,topic=x\uFFFD",
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("backlog series %q, want %q", got, want)
		}
		return
	}
	t.Error("no backlog series")
}

// TestCollectorsShareARegistry: collectors of two clients register in one
// registry when each has its own ConstLabels, and each exports its series
// under its labels; without them the second registration fails.
func TestCollectorsShareARegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for _, client := range []string{"orders", "billing"} {
		col := newCollector(t, stuck{}, inspectprom.WithTopics("a"), inspectprom.WithScrapeTimeout(time.Millisecond), quiet,
			inspectprom.WithConstLabels(prometheus.Labels{"client": client}))
		if err := reg.Register(col); err != nil {
			t.Fatalf("registering the %s collector: %v", client, err)
		}
	}
	expected := `
# HELP messaging_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE messaging_inspect_up gauge
messaging_inspect_up{client="billing"} 0
messaging_inspect_up{client="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "messaging_inspect_up"); err != nil {
		t.Error(err)
	}
	same := prometheus.NewPedanticRegistry()
	if err := same.Register(newCollector(t, stuck{}, quiet)); err != nil {
		t.Fatal(err)
	}
	if err := same.Register(newCollector(t, stuck{}, quiet)); err == nil {
		t.Error("a second collector without ConstLabels registered in the same registry; its metrics would collide")
	}
}

// TestOneWarningPerScrape: a broker that fails every topic is logged once
// a scrape, naming how many failed, not once per topic.
func TestOneWarningPerScrape(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	col := newCollector(t, stuck{}, inspectprom.WithTopics("a", "b", "c"), inspectprom.WithScrapeTimeout(time.Millisecond), inspectprom.WithLogger(logger))
	if up := testutil.ToFloat64(upOnly{col}); up != 0 {
		t.Errorf("up = %v, want 0", up)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "failed=3") || !strings.Contains(lines[0], "level=WARN") {
		t.Errorf("logged %q, want one warning with failed=3", lines)
	}
}

// fixed is a broker whose figures are known exactly: a topic of two
// partitions, and a group whose oldest message is 90 s old.
type fixed struct{}

func (fixed) Inspect(_ context.Context, topic string) (messaging.TopicStats, error) {
	return messaging.TopicStats{Broker: "kafka", Topic: topic, Messages: messaging.KnownCount(7),
		Partitions: []messaging.PartitionStats{{Partition: 0, Messages: messaging.KnownCount(3)}, {Partition: 1, Messages: messaging.KnownCount(4)}},
		Groups:     []messaging.GroupStats{{Group: "g", Backlog: messaging.KnownCount(2), OldestAge: messaging.KnownAge(90 * time.Second)}},
	}, nil
}

// TestPartitionsAgeAndNamespace: each partition is exported under its
// number, the oldest age in seconds, every name under the namespace.
func TestPartitionsAgeAndNamespace(t *testing.T) {
	col := newCollector(t, fixed{}, inspectprom.WithTopics("t"), inspectprom.WithNamespace("app"), quiet)
	expected := `
# HELP app_topic_partition_messages Messages the broker retains in the partition.
# TYPE app_topic_partition_messages gauge
app_topic_partition_messages{broker="kafka",partition="0",topic="t"} 3
app_topic_partition_messages{broker="kafka",partition="1",topic="t"} 4
# HELP app_group_oldest_age_seconds Age of the oldest message not yet delivered to the group (0 when none).
# TYPE app_group_oldest_age_seconds gauge
app_group_oldest_age_seconds{broker="kafka",group="g",topic="t"} 90
# HELP app_inspect_up 1 when every inspection of this scrape succeeded, else 0.
# TYPE app_inspect_up gauge
app_inspect_up 1
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(expected), "app_topic_partition_messages", "app_group_oldest_age_seconds", "app_inspect_up"); err != nil {
		t.Error(err)
	}
}

// TestTopicsKeepsItsOwnList: the collector inspects the topics Topics was
// given, at every scrape, even when the caller's slice changes afterwards.
func TestTopicsKeepsItsOwnList(t *testing.T) {
	names := []string{"a"}
	col := newCollector(t, fixed{}, inspectprom.WithTopics(names...), quiet)
	names[0] = "b"
	expected := `
# HELP messaging_topic_messages Messages the broker retains for the topic.
# TYPE messaging_topic_messages gauge
messaging_topic_messages{broker="kafka",topic="a"} 7
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(expected), "messaging_topic_messages"); err != nil {
		t.Error(err)
	}
}

// meeting is a broker whose Inspect answers only once two inspections are
// in progress at the same time (or fails when its context ends first).
type meeting struct {
	mu      sync.Mutex
	arrived int
	met     chan struct{} // closed by the second arrival
}

func (m *meeting) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	m.mu.Lock()
	if m.arrived++; m.arrived == 2 {
		close(m.met)
	}
	m.mu.Unlock()
	select {
	case <-m.met:
		return fixed{}.Inspect(ctx, topic)
	case <-ctx.Done():
		return messaging.TopicStats{}, ctx.Err()
	}
}

// TestConcurrentScrapes: concurrent scrapes inspect concurrently (a slow
// broker does not queue them), and each exports its own figures.
func TestConcurrentScrapes(t *testing.T) {
	col := newCollector(t, &meeting{met: make(chan struct{})}, inspectprom.WithTopics("t"), inspectprom.WithScrapeTimeout(10*time.Second), quiet)
	ups := make(chan float64, 2)
	for range 2 {
		go func() { ups <- testutil.ToFloat64(upOnly{col}) }()
	}
	for range 2 {
		if up := <-ups; up != 1 {
			t.Errorf("up = %v: a scrape's inspection did not meet the other's, want both in progress at once", up)
		}
	}
}
