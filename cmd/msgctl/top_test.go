package main

// In-process tests of stats and top on the memory broker: the broker lives
// in the process, so msgctl runs in it (run, as main calls it) against a
// backlog the test sets up. msgctl_test.go runs the binary against real
// brokers.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/inspection/inspectiontest"
)

// backlogOn sets up, with client c of the broker at url, the backlog of
// inspectiontest.HeldBacklog on topic orders and seven messages for group
// "billing" of topic payments.
func backlogOn(t *testing.T, c messaging.Client, orders, payments string) {
	t.Helper()
	inspectiontest.HeldBacklog(t, c, orders)
	if err := messaging.Provision(t.Context(), c, payments, "billing"); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), payments, msgs(7)...); err != nil {
		t.Fatal(err)
	}
}

func msgs(n int) []*messaging.Message {
	var out []*messaging.Message
	for i := range n {
		out = append(out, messaging.NewMessage([]byte(strconv.Itoa(i))))
	}
	return out
}

func open(t *testing.T, url string) messaging.Client {
	t.Helper()
	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runInProcess runs msgctl with args and returns its exit status and
// output.
func runInProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &out, &errb, func(int) {})
	return code, out.String(), errb.String()
}

// TestStatsAndTopOnMemory: on an in-process broker, without naming the
// topics (the broker lists them).
func TestStatsAndTopOnMemory(t *testing.T) {
	url := fmt.Sprintf("mem://stats-top-%d", time.Now().UnixNano())
	c := open(t, url)
	backlogOn(t, c, "orders", "payments")
	t.Run("stats", func(t *testing.T) { testStats(t, url, "orders", "payments", nil) })
	t.Run("top", func(t *testing.T) { testTop(t, url, c, "orders", "payments", nil) })
}

// TestStatsAndTopOnRedis: the same on Redis, naming the topics (the
// broker holds those of other tests too).
func TestStatsAndTopOnRedis(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := open(t, url)
	if _, ok := c.(messaging.Inspector); !ok {
		t.Skipf("%T does not implement messaging.Inspector in this build", c)
	}
	orders, payments := integration.UniqueName(t, "stats-orders"), integration.UniqueName(t, "stats-payments")
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, orders)
			_ = d.DeleteTopic(ctx, payments)
		}
	})
	backlogOn(t, c, orders, payments)
	t.Run("stats", func(t *testing.T) { testStats(t, url, orders, payments, []string{orders, payments}) })
	t.Run("top", func(t *testing.T) { testTop(t, url, c, orders, payments, []string{orders, payments}) })
}

// column returns the field of the table row under header name.
func column(t *testing.T, header, row []string, name string) string {
	t.Helper()
	for i, h := range header {
		if h == name && i < len(row) {
			return row[i]
		}
	}
	t.Fatalf("no column %s in %v / %v", name, header, row)
	return ""
}

// testStats checks msgctl stats on the backlog of backlogOn; topics are
// the arguments (none: listed by the broker).
func testStats(t *testing.T, url, orders, payments string, topics []string) {
	code, out, errOut := runInProcess(t, append([]string{"stats", "--url", url}, topics...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := strings.Fields(lines[0])
	var got []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		var row []string
		for _, col := range []string{"TOPIC", "GROUP", "MESSAGES", "BACKLOG", "IN-FLIGHT", "CONSUMERS"} {
			row = append(row, column(t, header, f, col))
		}
		got = append(got, strings.Join(row, " "))
	}
	want := []string{
		orders + " idle 5 5 0 0",
		orders + " work 5 2 2 1",
		payments + " billing 7 7 0 0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stats printed\n%s\nwant (TOPIC GROUP MESSAGES BACKLOG IN-FLIGHT CONSUMERS)\n%s", out, strings.Join(want, "\n"))
	}

	code, out, errOut = runInProcess(t, "stats", "--url", url, "--format", "json", orders)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st []messaging.TopicStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(st) != 1 || st[0].Topic != orders || len(st[0].Groups) != 2 || st[0].Groups[1].Group != "work" {
		t.Fatalf("json %+v", st)
	}
	work := st[0].Groups[1]
	if b, _ := work.Backlog.Value(); b != inspectiontest.Backlog {
		t.Errorf("backlog %v", work.Backlog)
	}
	if age, ok := work.OldestAge.Value(); ok && age <= 0 {
		t.Errorf("oldest age %v", work.OldestAge)
	}

	missing := orders + "-missing"
	code, _, errOut = runInProcess(t, "stats", "--url", url, orders, missing)
	if code != 1 || !strings.Contains(errOut, missing+": ") || !strings.Contains(errOut, messaging.ErrTopicNotFound.Error()) {
		t.Errorf("stats of a missing topic: exit %d, %s", code, errOut)
	}
	if code, _, errOut = runInProcess(t, "stats", "--url", url, "bad topic"); code != 2 {
		t.Errorf("stats of a bad name: exit %d, %s", code, errOut)
	}
	if code, _, errOut = runInProcess(t, "top", "--url", url); code != 2 || !strings.Contains(errOut, "top needs a terminal") {
		t.Errorf("top without a terminal: exit %d, %s", code, errOut)
	}
}

// screen collects what a program writes to a pseudo-terminal and reads the
// frames top draws.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// lastFrame returns the lines of the last complete frame: top draws each
// as cursor home (ESC[H), lines ended by erase-line (ESC[K) and CR LF, then
// erase-below (ESC[J).
func lastFrame(out string) []string {
	end := strings.LastIndex(out, "\x1b[J")
	if end < 0 {
		return nil
	}
	start := strings.LastIndex(out[:end], "\x1b[H")
	if start < 0 {
		return nil
	}
	body := strings.ReplaceAll(out[start+len("\x1b[H"):end], "\x1b[K", "")
	return strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
}

// tableRows returns the rows under the header as field lists, keyed
// "topic/group" in order.
func tableRows(lines []string) (keys []string, rows map[string][]string) {
	rows = map[string][]string{}
	header := -1
	for i, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "TOPIC":
			header = i
		case header >= 0 && len(f) == 9:
			k := f[0] + "/" + f[1]
			keys = append(keys, k)
			rows[k] = f
		}
	}
	return keys, rows
}

// waitFrame waits until the last frame satisfies ok, and returns it.
func waitFrame(t *testing.T, s *screen, what string, ok func(lines []string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := lastFrame(s.String())
		if lines != nil && ok(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %s; last frame:\n%s", what, strings.Join(lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond) // polling the screen
	}
}

func termios(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	var tio *unix.Termios
	if err := withFd(f, func(fd int) (err error) { tio, err = unix.IoctlGetTermios(fd, unix.TCGETS); return err }); err != nil {
		t.Fatal(err)
	}
	return *tio
}

// testTop drives top in a pseudo-terminal on the backlog of backlogOn:
// the figures, the sort keys, the publish and consume rates, and q quitting
// with the terminal restored.
func testTop(t *testing.T, url string, c messaging.Client, orders, payments string, topics []string) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Close(); _ = tty.Close() })
	if err := pty.Setsize(master, &pty.Winsize{Rows: 30, Cols: 140}); err != nil {
		t.Fatal(err)
	}
	before := termios(t, tty)
	scr := &screen{}
	go func() { _, _ = io.Copy(scr, master) }()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), append([]string{"top", "--url", url, "--interval", "100ms"}, topics...), tty, tty, &errb, func(int) {})
	}()

	waitFrame(t, scr, "a first frame", func([]string) bool { return true })
	if raw := termios(t, tty); raw.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("top left the terminal in canonical mode with echo")
	}
	order := func(want ...string) func([]string) bool {
		return func(lines []string) bool {
			keys, _ := tableRows(lines)
			return strings.Join(keys, " ") == strings.Join(want, " ")
		}
	}
	lines := waitFrame(t, scr, "the groups by backlog", order(payments+"/billing", orders+"/idle", orders+"/work"))
	if !strings.Contains(lines[0], "sorted by backlog") {
		t.Errorf("title %q", lines[0])
	}
	// TOPIC GROUP BACKLOG IN-FLIGHT OLDEST CONSUMERS PUB/S CONS/S MESSAGES
	_, rows := tableRows(lines)
	if w := rows[orders+"/work"]; w[2] != "2" || w[3] != "2" || w[5] != "1" || w[8] != "5" {
		t.Errorf("orders/work row %v, want backlog 2, in flight 2, 1 consumer, 5 messages", w)
	}
	if b := rows[payments+"/billing"]; b[2] != "7" || b[3] != "0" || b[5] != "0" || b[8] != "7" {
		t.Errorf("payments/billing row %v, want backlog 7, none in flight, no consumer, 7 messages", b)
	}

	if _, err := master.Write([]byte("n")); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, scr, "the groups by name", func(lines []string) bool {
		return strings.Contains(lines[0], "sorted by name") && order(orders+"/idle", orders+"/work", payments+"/billing")(lines)
	})

	// Ten more for billing, published at once: the first frame that shows
	// them measures them published, and none consumed.
	if err := c.Publish(t.Context(), payments, msgs(10)...); err != nil {
		t.Fatal(err)
	}
	lines = waitFrame(t, scr, "billing's backlog of 17", func(lines []string) bool {
		_, rows := tableRows(lines)
		return rows[payments+"/billing"][2] == "17"
	})
	_, rows = tableRows(lines)
	if b := rows[payments+"/billing"]; b[7] != "0.0" {
		t.Errorf("payments/billing CONS/S %q, want 0.0 (nothing consumed)", b[7])
	} else if pub, err := strconv.ParseFloat(b[6], 64); err != nil || pub <= 0 {
		t.Errorf("payments/billing PUB/S %q, want a positive rate", b[6])
	}

	if _, err := master.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("top exited %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("top did not quit on q")
	}
	if after := termios(t, tty); after != before {
		t.Errorf("terminal not restored:\nbefore %+v\nafter  %+v", before, after)
	}
	// The last thing written shows the cursor and leaves the alternate
	// screen (read once it has reached the screen).
	waitFrame(t, scr, "the terminal restored", func([]string) bool {
		return strings.HasSuffix(scr.String(), "\x1b[?25h\x1b[?1049l")
	})
}

// TestStatsTableShowsUnknownFiguresAsQuestionMarks: a figure the broker
// does not report is "?" in the table, never 0 (here every figure of the
// group).
func TestStatsTableShowsUnknownFiguresAsQuestionMarks(t *testing.T) {
	var out bytes.Buffer
	writeStatsTable(&out, []messaging.TopicStats{{Topic: "orders", Broker: "mem", Groups: []messaging.GroupStats{{Group: "billing"}}}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("table:\n%s\nwant a header and one row", out.String())
	}
	if got, want := strings.Fields(lines[1]), []string{"orders", "mem", "?", "?", "billing", "?", "?", "?", "?", "?"}; !slices.Equal(got, want) {
		t.Fatalf("row %q, want %q", got, want)
	}
}
