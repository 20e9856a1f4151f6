package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/inspection"
)

func init() {
	register(command{name: "top", order: 74, cmd: &topCmd{},
		help: "Watch the backlog of every consumer group live, refreshed in place (q quits)."})
}

type topCmd struct {
	Topics   []string      `arg:"" optional:"" name:"topic" help:"Topics to watch (default: every topic the broker lists, at each refresh)."`
	Interval time.Duration `help:"Time between refreshes." default:"2s"`
	Sort     string        `help:"Sort rows by backlog (largest first), age (oldest first), rate (most published per second first) or name. Keys b, a, r and n change it live." enum:"backlog,age,rate,name" default:"backlog"`
}

func (c *topCmd) Help() string {
	return "The columns of msgctl stats, one row per topic and group, plus two rates measured between\n" +
		"refreshes (\"?\" until there are two, or when the broker does not give what they need):\n" +
		"  PUB/S   messages published to the topic per second: the growth of the newest offset\n" +
		"          where the broker numbers messages (memory, Kafka, NATS), else of the retained\n" +
		"          count (which undercounts while the broker trims);\n" +
		"  CONS/S  messages the group took off its backlog per second: published minus the\n" +
		"          backlog's growth. Deliveries, not acknowledgements: see IN-FLIGHT for those.\n" +
		"Keys: b backlog, a age, r rate, n name (sort); q or Ctrl-C quits and restores the terminal.\n" +
		"Needs a terminal; for scripts use msgctl stats --format json.\n\n" + statsHelp
}

func (c *topCmd) Run(e *env) error {
	if err := validateTopics(c.Topics); err != nil {
		return err
	}
	if c.Interval <= 0 {
		return usagef("--interval must be positive, not %v", c.Interval)
	}
	raw, err := e.globals.brokerURL()
	if err != nil {
		return err
	}
	in, inOK := e.stdin.(*os.File)
	out, outOK := e.out.w.(*os.File)
	if !inOK || !outOK || !isTerminal(in) || !isTerminal(out) {
		return usagef("top needs a terminal on stdin and stdout; for a one-off or a script use msgctl stats")
	}
	client, insp, err := e.connectInspector()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	// A broker that cannot list fails here, before the screen is taken.
	first := c.inspect(ctx, insp)
	if first.err != nil {
		return first.err
	}

	var state *term.State
	if err := withFd(in, func(fd int) (err error) { state, err = term.MakeRaw(fd); return err }); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	defer func() { _ = withFd(in, func(fd int) error { return term.Restore(fd, state) }) }()
	_, _ = out.WriteString("\x1b[?1049h\x1b[?25l") // alternate screen, cursor hidden
	defer func() { _, _ = out.WriteString("\x1b[?25h\x1b[?1049l") }()

	keys := make(chan byte, 16)
	go readKeys(ctx, in, keys)
	defer func() { _ = in.SetReadDeadline(time.Now()) }() // ends readKeys where the file can

	v := &topView{url: redacted(raw), interval: c.Interval, sort: c.Sort}
	v.update(first)
	draw := func() {
		width, height := 120, 40
		_ = withFd(out, func(fd int) (err error) {
			if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
				width, height = w, h
			}
			return nil
		})
		_, _ = out.WriteString(frame(v.render(), width, height))
	}
	draw()
	results := make(chan topSample, 1)
	busy := false
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok {
				return nil // stdin closed
			}
			switch k {
			case 'q', 'Q', 3, 4: // q, Ctrl-C, Ctrl-D
				return nil
			case 'b':
				v.sort = "backlog"
			case 'a':
				v.sort = "age"
			case 'r':
				v.sort = "rate"
			case 'n':
				v.sort = "name"
			default:
				continue
			}
			draw()
		case <-tick.C:
			if !busy {
				busy = true
				go func() { results <- c.inspect(ctx, insp) }()
			}
		case s := <-results:
			busy = false
			v.update(s)
			draw()
		}
	}
}

// topSample is one refresh: the topics' stats or errors, when taken.
type topSample struct {
	at      time.Time
	results []inspection.Result
	err     error // listing the topics failed
}

// inspect takes a sample, bounded by the interval (at least 5s).
func (c *topCmd) inspect(ctx context.Context, insp messaging.Inspector) topSample {
	ctx, cancel := context.WithTimeout(ctx, max(c.Interval, 5*time.Second))
	defer cancel()
	topics, err := topicsToInspect(ctx, insp, c.Topics)
	if err != nil {
		return topSample{at: time.Now(), err: err}
	}
	rs := inspection.Inspect(ctx, insp, topics)
	return topSample{at: time.Now(), results: rs}
}

// topView is what top shows: the last sample and the rates since the one
// before.
type topView struct {
	url      string
	interval time.Duration
	sort     string
	at       time.Time
	rows     []topRow
	errs     []string
	prev     map[string]topPrev // by topic
}

// topPrev is what the rates of a topic need from the previous sample.
type topPrev struct {
	at        time.Time
	published published
	backlogs  map[string]messaging.Count // by group
}

// published is how many messages a topic had received, on some basis: the
// sum of its newest offsets, or its retained count. Counts on different
// bases do not compare.
type published struct {
	n       int64
	offsets bool
	ok      bool
}

func publishedOf(st messaging.TopicStats) published {
	lasts := []string{st.Last}
	if len(st.Partitions) > 0 {
		lasts = lasts[:0]
		for _, p := range st.Partitions {
			lasts = append(lasts, p.Last)
		}
	}
	var sum int64
	for _, l := range lasts {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			sum = -1
			break
		}
		sum += n
	}
	if sum >= 0 {
		return published{n: sum, offsets: true, ok: true}
	}
	n, ok := st.Messages.Value()
	return published{n: n, ok: ok}
}

// rate is a per-second figure that may be unknown.
type rate struct {
	v  float64
	ok bool
}

func (r rate) String() string {
	if !r.ok {
		return "?"
	}
	return strconv.FormatFloat(r.v, 'f', 1, 64)
}

type topRow struct {
	st        messaging.TopicStats
	g         *messaging.GroupStats // nil: a topic without groups
	pub, cons rate
}

func (v *topView) update(s topSample) {
	v.at, v.rows, v.errs = s.at, nil, nil
	if s.err != nil {
		v.errs = append(v.errs, s.err.Error())
	}
	next := map[string]topPrev{}
	for _, r := range s.results {
		if r.Err != nil {
			v.errs = append(v.errs, fmt.Sprintf("%s: %v", r.Topic, r.Err))
			continue
		}
		st := r.Stats
		cur := topPrev{at: s.at, published: publishedOf(st), backlogs: map[string]messaging.Count{}}
		for _, g := range st.Groups {
			cur.backlogs[g.Group] = g.Backlog
		}
		next[st.Topic] = cur
		prev, hasPrev := v.prev[st.Topic]
		dt := cur.at.Sub(prev.at).Seconds()
		var pub rate
		var delta int64
		if p, c := prev.published, cur.published; hasPrev && dt > 0 && p.ok && c.ok && p.offsets == c.offsets && c.n >= p.n {
			delta = c.n - p.n
			pub = rate{float64(delta) / dt, true}
		}
		if len(st.Groups) == 0 {
			v.rows = append(v.rows, topRow{st: st, pub: pub})
		}
		for i := range st.Groups {
			g := &st.Groups[i]
			var cons rate
			b0, ok0 := prev.backlogs[g.Group].Value()
			b1, ok1 := g.Backlog.Value()
			if pub.ok && ok0 && ok1 {
				cons = rate{max(float64(delta-(b1-b0))/dt, 0), true}
			}
			v.rows = append(v.rows, topRow{st: st, g: g, pub: pub, cons: cons})
		}
	}
	v.prev = next
}

// render returns the screen's lines.
func (v *topView) render() []string {
	rows := slices.Clone(v.rows)
	name := func(a, b topRow) int {
		return cmp.Or(strings.Compare(a.st.Topic, b.st.Topic), strings.Compare(groupName(a), groupName(b)))
	}
	// desc orders known figures largest first, unknown ones last.
	desc := func(x, y float64, xok, yok bool) int {
		switch {
		case xok != yok:
			if xok {
				return -1
			}
			return 1
		}
		return cmp.Compare(y, x)
	}
	slices.SortStableFunc(rows, func(a, b topRow) int {
		switch v.sort {
		case "backlog":
			x, xok := groupCount(a, func(g *messaging.GroupStats) messaging.Count { return g.Backlog })
			y, yok := groupCount(b, func(g *messaging.GroupStats) messaging.Count { return g.Backlog })
			return cmp.Or(desc(float64(x), float64(y), xok, yok), name(a, b))
		case "age":
			x, xok := groupAge(a)
			y, yok := groupAge(b)
			return cmp.Or(desc(float64(x), float64(y), xok, yok), name(a, b))
		case "rate":
			return cmp.Or(desc(a.pub.v, b.pub.v, a.pub.ok, b.pub.ok), desc(a.cons.v, b.cons.v, a.cons.ok, b.cons.ok), name(a, b))
		}
		return name(a, b)
	})
	lines := []string{
		fmt.Sprintf("msgctl top  %s  every %v  sorted by %s  %s", v.url, v.interval, v.sort, v.at.Format("15:04:05")),
		"keys: b backlog  a age  r rate  n name  q quit",
		"",
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tBACKLOG\tIN-FLIGHT\tOLDEST\tCONSUMERS\tPUB/S\tCONS/S\tMESSAGES")
	for _, r := range rows {
		if r.g == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t%s\t-\t%s\n", r.st.Topic, r.pub, r.st.Messages)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.st.Topic, r.g.Group, r.g.Backlog, r.g.InFlight,
			formatAge(r.g.OldestAge), r.g.Consumers, r.pub, r.cons, r.st.Messages)
	}
	_ = tw.Flush()
	lines = append(lines, strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")...)
	if len(rows) == 0 {
		lines = append(lines, "(no topics)")
	}
	for _, e := range v.errs {
		lines = append(lines, "error: "+e)
	}
	return lines
}

func groupName(r topRow) string {
	if r.g == nil {
		return ""
	}
	return r.g.Group
}

func groupCount(r topRow, f func(*messaging.GroupStats) messaging.Count) (int64, bool) {
	if r.g == nil {
		return 0, false
	}
	return f(r.g).Value()
}

func groupAge(r topRow) (time.Duration, bool) {
	if r.g == nil {
		return 0, false
	}
	return r.g.OldestAge.Value()
}

// frame is the escape sequence that redraws the screen with lines, cut to
// width and to the height: cursor home, each line then erase to its end,
// then erase below. Rewriting in place does not flicker as clearing would.
func frame(lines []string, width, height int) string {
	var b strings.Builder
	b.WriteString("\x1b[H")
	for i, l := range lines {
		if i >= height-1 {
			break
		}
		if r := []rune(l); len(r) > width {
			l = string(r[:width])
		}
		b.WriteString(l)
		b.WriteString("\x1b[K\r\n") // raw mode: no newline translation
	}
	b.WriteString("\x1b[J")
	return b.String()
}

// readKeys sends the bytes read from in until reading fails (the deadline
// set when top ends, or the terminal gone) or ctx ends; it closes keys.
func readKeys(ctx context.Context, in *os.File, keys chan<- byte) {
	defer close(keys)
	buf := make([]byte, 64)
	for {
		n, err := in.Read(buf)
		for _, k := range buf[:n] {
			select {
			case keys <- k:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// withFd calls f with the file's descriptor without putting the file in
// blocking mode (as File.Fd does), so that its read deadline still works.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func isTerminal(f *os.File) bool {
	ok := false
	_ = withFd(f, func(fd int) error { ok = term.IsTerminal(fd); return nil })
	return ok
}
