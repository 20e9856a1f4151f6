package poll

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// pages is a source of pages by cursor; a missing cursor is not modified.
type pages map[string]Page[string]

func newJob(t *testing.T, src pages, delivered *[]string, fail func(string) error) *Job[string] {
	t.Helper()
	j := bareJob(t)
	j.Fetch = func(_ context.Context, cursor, etag string) (Page[string], error) {
		p, ok := src[cursor]
		if !ok || (etag != "" && etag == p.ETag) {
			return Page[string]{NotModified: true}, nil
		}
		return p, nil
	}
	j.Deliver = func(_ context.Context, items []string) (int, error) {
		for i, s := range items {
			if fail != nil {
				if err := fail(s); err != nil {
					return i, err
				}
			}
			*delivered = append(*delivered, s)
		}
		return len(items), nil
	}
	return j
}

// bareJob returns a Job named "job" of string items that are their own
// IDs, with the default Config and opts; Fetch and Deliver or Handle are
// the caller's.
func bareJob(t *testing.T, opts ...Option) *Job[string] {
	t.Helper()
	cfg := NewConfig()
	if err := Apply(&cfg, opts); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	return &Job[string]{Config: cfg, Name: "job", ID: func(s string) string { return s }}
}

func TestRoundFollowsMoreAndKeepsTheETagOfTheSameCursor(t *testing.T) {
	src := pages{
		"":  {Items: []string{"a", "b"}, Cursor: "2", ETag: "e0", More: true},
		"2": {Items: []string{"b", "c"}, Cursor: "3", ETag: "e2"}, // b overlaps
		"3": {Cursor: "", ETag: "e3"},                             // "": stay at 3
	}
	var got []string
	j := newJob(t, src, &got, nil)
	ctx := t.Context()
	if n, err := j.Round(ctx); err != nil || n != 3 {
		t.Fatalf("first round: %d, %v; want 3", n, err)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("delivered %v, want a,b,c once each", got)
	}
	// Without More or DrainNew the round stopped after page "2": the ETag of
	// cursor 3 is not known yet.
	if cp, _, _ := j.Store.Load(ctx, "job"); cp.Position != "3" || cp.ETag != "" {
		t.Fatalf("checkpoint %+v, want position 3 without ETag", cp)
	}
	if n, err := j.Round(ctx); err != nil || n != 0 {
		t.Fatalf("second round: %d, %v", n, err)
	}
	if cp, _, _ := j.Store.Load(ctx, "job"); cp.Position != "3" || cp.ETag != "e3" {
		t.Fatalf("checkpoint %+v, want position 3 with ETag e3", cp)
	}
	// With DrainNew a page with new items is followed at once.
	var got2 []string
	j2 := newJob(t, src, &got2, nil)
	j2.DrainNew = true
	if n, err := j2.Round(ctx); err != nil || n != 3 {
		t.Fatalf("DrainNew round: %d, %v", n, err)
	}
	if cp, _, _ := j2.Store.Load(ctx, "job"); cp.Position != "3" || cp.ETag != "e3" {
		t.Fatalf("DrainNew checkpoint %+v, want position 3 with ETag e3", cp)
	}
}

func TestRoundFailuresKeepTheCheckpoint(t *testing.T) {
	src := pages{"": {Items: []string{"a", "b"}, Cursor: "2"}}
	var got []string
	broken := errors.New("broken")
	failB := true
	j := newJob(t, src, &got, func(s string) error {
		if s == "b" && failB {
			return broken
		}
		return nil
	})
	ctx := t.Context()
	if n, err := j.Round(ctx); !errors.Is(err, broken) || n != 1 {
		t.Fatalf("round: %d, %v; want 1 and the delivery error", n, err)
	}
	if _, ok, _ := j.Store.Load(ctx, "job"); ok {
		t.Fatal("checkpoint saved although an item of the page failed")
	}
	failB = false
	if n, err := j.Round(ctx); err != nil || n != 1 || strings.Join(got, ",") != "a,b" {
		t.Fatalf("retry: %d, %v, delivered %v; want only b again", n, err, got)
	}

	j.Fetch = func(context.Context, string, string) (Page[string], error) { panic("boom") }
	if _, err := j.Round(ctx); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panicking fetch: %v", err)
	}
	if cp, _, _ := j.Store.Load(ctx, "job"); cp.Position != "2" || cp.ETag != "" {
		t.Fatalf("checkpoint %+v, want position 2", cp)
	}
}

// TestHandleSettlesEachItemAtOnce: with Handle, an item is recorded as seen
// before the next one is handed over (a repeat within the page is skipped),
// and no item is handed over once ctx is done; the round then ends without
// saving the page's checkpoint and the items not handed over stay unclaimed.
func TestHandleSettlesEachItemAtOnce(t *testing.T) {
	cfg := NewConfig()
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	j := &Job[string]{Config: cfg, Name: "orders/g"}
	j.Fetch = func(context.Context, string, string) (Page[string], error) {
		return Page[string]{Items: []string{"a", "a", "b", "c"}, Cursor: "4"}, nil
	}
	j.ID = func(s string) string { return s }
	j.Handle = func(_ context.Context, s string) error {
		got = append(got, s)
		if s == "b" {
			if st, err := j.Seen.Claim(t.Context(), j.SeenKey("a"), time.Minute); err != nil || st != dedupe.StateDone {
				t.Errorf("while b is handled, a's seen state is %v (%v), want done", st, err)
			}
			cancel() // the subscription stops while b is handled
		}
		return nil
	}
	n, err := j.Round(ctx)
	if n != 2 || !errors.Is(err, context.Canceled) || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("round: %d, %v, handled %v; want 2, context.Canceled, [a b]", n, err, got)
	}
	if _, ok, _ := j.Store.Load(t.Context(), "orders/g"); ok {
		t.Fatal("checkpoint saved although c was not handled")
	}
	if st, err := j.Seen.Claim(t.Context(), j.SeenKey("b"), time.Minute); err != nil || st != dedupe.StateDone {
		t.Errorf("b's seen state %v (%v), want done", st, err)
	}
	if st, err := j.Seen.Claim(t.Context(), j.SeenKey("c"), time.Minute); err != nil || st != dedupe.StateNew {
		t.Errorf("c's seen state %v (%v), want new (never claimed)", st, err)
	}
	if k := j.SeenKey("x"); k != "poll:orders/g:x" {
		t.Errorf("SeenKey = %q, want poll:orders/g:x", k)
	}
}

// TestBackoffDoublesUpToMaxInterval: the waits start at Interval and double
// up to MaxInterval, where they stay.
func TestBackoffDoublesUpToMaxInterval(t *testing.T) {
	cfg := NewConfig()
	if err := Apply(&cfg, []Option{WithInterval(time.Second), WithMaxInterval(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	b := cfg.NewBackoff()
	var got []time.Duration
	for range 5 {
		got = append(got, b.NextBackOff())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// TestDefaultMaxIntervalIsNotBelowInterval: without WithMaxInterval the
// waits are capped at DefaultMaxInterval, or at Interval when that is
// longer: they never drop below Interval.
func TestDefaultMaxIntervalIsNotBelowInterval(t *testing.T) {
	cfg := NewConfig()
	long := 2 * DefaultMaxInterval
	if err := Apply(&cfg, []Option{WithInterval(long)}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	b := cfg.NewBackoff()
	for i := range 3 {
		if d := b.NextBackOff(); d != long {
			t.Fatalf("wait %d: %v, want the interval %v", i+1, d, long)
		}
	}
}

// TestNotModifiedKeepsTheCheckpoint: a page that was not modified ends the
// round and leaves the saved cursor and ETag as they were, so the next
// fetch sends the ETag again.
func TestNotModifiedKeepsTheCheckpoint(t *testing.T) {
	src := pages{"": {Items: []string{"a"}, ETag: "e0"}}
	var got []string
	j := newJob(t, src, &got, nil)
	ctx := t.Context()
	if n, err := j.Round(ctx); err != nil || n != 1 {
		t.Fatalf("first round: %d, %v; want 1", n, err)
	}
	for i := range 2 {
		if n, err := j.Round(ctx); err != nil || n != 0 {
			t.Fatalf("round %d: %d, %v; want 0", i+2, n, err)
		}
		if cp, _, _ := j.Store.Load(ctx, "job"); cp.Position != "" || cp.ETag != "e0" {
			t.Fatalf("round %d: checkpoint %+v, want the ETag e0 kept", i+2, cp)
		}
	}
}

// TestSameCursorKeepsTheETag: a page naming the cursor it was fetched from
// (not "") keeps that cursor, and its ETag is sent back with the next fetch.
func TestSameCursorKeepsTheETag(t *testing.T) {
	var etags []string
	j := bareJob(t)
	j.Deliver = func(_ context.Context, items []string) (int, error) { return len(items), nil }
	ctx := t.Context()
	if err := j.Store.Save(ctx, "job", checkpoint.Checkpoint{Position: "7"}); err != nil {
		t.Fatal(err)
	}
	j.Fetch = func(_ context.Context, cursor, etag string) (Page[string], error) {
		etags = append(etags, etag)
		if cursor != "7" {
			t.Errorf("fetch after cursor %q, want 7", cursor)
		}
		return Page[string]{Cursor: "7", ETag: "e7"}, nil
	}
	for range 2 {
		if _, err := j.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(etags, []string{"", "e7"}) {
		t.Fatalf("fetches sent ETags %q, want [\"\" e7]", etags)
	}
}

// TestDrainNewStopsAfterAPageWithoutNewItems: with DrainNew, a page that
// brought nothing new ends the round (the caller then waits Interval).
func TestDrainNewStopsAfterAPageWithoutNewItems(t *testing.T) {
	fetches := 0
	j := bareJob(t)
	j.DrainNew = true
	j.Fetch = func(context.Context, string, string) (Page[string], error) {
		fetches++
		return Page[string]{Items: []string{"a"}, Cursor: "1"}, nil
	}
	j.Handle = func(context.Context, string) error { return nil }
	ctx := t.Context()
	// The first fetch brings a, the second brings only a again.
	if n, err := j.Round(ctx); err != nil || n != 1 || fetches != 2 {
		t.Fatalf("round: %d, %v after %d fetches; want 1 item after 2 fetches", n, err, fetches)
	}
	fetches = 0
	if n, err := j.Round(ctx); err != nil || n != 0 || fetches != 1 {
		t.Fatalf("round without new items: %d, %v after %d fetches; want 0 after 1 fetch", n, err, fetches)
	}
}

// TestHandleErrorLeavesTheItemUnseen: an item whose Handle failed does not
// count as seen; the next round hands it over again.
func TestHandleErrorLeavesTheItemUnseen(t *testing.T) {
	broken := errors.New("broken")
	var got []string
	j := bareJob(t)
	j.Fetch = func(context.Context, string, string) (Page[string], error) {
		return Page[string]{Items: []string{"a"}, Cursor: "1"}, nil
	}
	j.Handle = func(_ context.Context, s string) error {
		got = append(got, s)
		if len(got) == 1 {
			return broken
		}
		return nil
	}
	ctx := t.Context()
	if n, err := j.Round(ctx); !errors.Is(err, broken) || n != 0 {
		t.Fatalf("round: %d, %v; want 0 and the handler's error", n, err)
	}
	if n, err := j.Round(ctx); err != nil || n != 1 || !slices.Equal(got, []string{"a", "a"}) {
		t.Fatalf("retry: %d, %v, handled %v; want a handed over again", n, err, got)
	}
}

// failingStore is a checkpoint.Store whose Load fails.
type failingStore struct{ checkpoint.Memory }

func (*failingStore) Load(context.Context, string) (checkpoint.Checkpoint, bool, error) {
	return checkpoint.Checkpoint{}, false, errors.New("store down")
}

// TestRoundFailsWhenTheCheckpointCannotBeLoaded: a round whose checkpoint
// cannot be loaded fetches nothing (it does not start over from the first
// cursor) and returns the error.
func TestRoundFailsWhenTheCheckpointCannotBeLoaded(t *testing.T) {
	var got []string
	j := newJob(t, pages{"": {Items: []string{"a"}, Cursor: "1"}}, &got, nil)
	j.Store = &failingStore{}
	if n, err := j.Round(t.Context()); err == nil || !strings.Contains(err.Error(), "store down") || n != 0 || len(got) != 0 {
		t.Fatalf("round: %d, %v, delivered %v; want the load error and nothing delivered", n, err, got)
	}
}

// ctxStore is a checkpoint.Memory whose Save fails once ctx is done, as a
// networked store does.
type ctxStore struct{ checkpoint.Memory }

func (s *ctxStore) Save(ctx context.Context, name string, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Memory.Save(ctx, name, cp)
}

// TestCheckpointSavedAfterTheRoundsContextEnds: the checkpoint of a page
// whose items were all delivered is saved even when ctx ended meanwhile.
func TestCheckpointSavedAfterTheRoundsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	j := newJob(t, pages{"": {Items: []string{"a"}, Cursor: "1"}}, &got, func(string) error {
		cancel() // the subscription stops while the page is delivered
		return nil
	})
	j.Store = &ctxStore{}
	if n, err := j.Round(ctx); err != nil || n != 1 {
		t.Fatalf("round: %d, %v; want 1", n, err)
	}
	if cp, _, _ := j.Store.Load(t.Context(), "job"); cp.Position != "1" {
		t.Fatalf("checkpoint %+v, want position 1", cp)
	}
}

// step is what one fetch of runScript returns: new items, or an error.
type step struct {
	items []string
	err   error
}

// runScript runs a Job (Interval 20ms, MaxInterval 2s, no jitter) whose
// fetches return script in order, ends it after the last one and returns
// the waits between successive fetches.
func runScript(t *testing.T, script []step) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var times []time.Time
	j := bareJob(t, WithInterval(20*time.Millisecond), WithMaxInterval(2*time.Second), WithJitter(0))
	j.Fetch = func(context.Context, string, string) (Page[string], error) {
		times = append(times, time.Now())
		s := script[len(times)-1]
		if len(times) == len(script) {
			cancel()
		}
		return Page[string]{Items: s.items}, s.err
	}
	j.Deliver = func(_ context.Context, items []string) (int, error) { return len(items), nil }
	if err := j.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	var waits []time.Duration
	for i := 1; i < len(times); i++ {
		waits = append(waits, times[i].Sub(times[i-1]))
	}
	return waits
}

// TestRunWaitsAfterAFailedRound: a failed round is retried after Interval,
// then after a wait doubling while rounds fail.
func TestRunWaitsAfterAFailedRound(t *testing.T) {
	broken := errors.New("broken")
	waits := runScript(t, []step{{err: broken}, {err: broken}, {err: broken}})
	if waits[0] < 20*time.Millisecond || waits[1] < 40*time.Millisecond {
		t.Fatalf("waits after failed rounds %v, want at least [20ms 40ms]", waits)
	}
}

// TestRunWaitsIntervalAgainAfterASuccess: a round that succeeds ends the
// growth of the waits after failures: the next failure waits Interval
// again.
func TestRunWaitsIntervalAgainAfterASuccess(t *testing.T) {
	broken := errors.New("broken")
	// Six failures wait 20, 40, 80, 160, 320 and 640ms; the success 20ms.
	// Without the reset the failure after it would wait 1.28s: the bound
	// leaves a loaded machine room.
	waits := runScript(t, []step{{err: broken}, {err: broken}, {err: broken}, {err: broken}, {err: broken}, {err: broken}, {}, {err: broken}, {}})
	if waits[7] >= 500*time.Millisecond {
		t.Fatalf("waits %v: %v after a failure that followed a success, want Interval (20ms)", waits, waits[7])
	}
}

// TestRunWaitsIntervalAgainAfterNewItems: the waits grow while rounds bring
// nothing new; a round that brings new items is followed by a wait of
// Interval.
func TestRunWaitsIntervalAgainAfterNewItems(t *testing.T) {
	// Six empty rounds wait 20, 40, 80, 160, 320 and 640ms; without the
	// reset the round after new items would wait 1.28s.
	waits := runScript(t, []step{{}, {}, {}, {}, {}, {}, {items: []string{"a"}}, {}})
	if waits[6] >= 500*time.Millisecond {
		t.Fatalf("waits %v: %v after new items, want Interval (20ms)", waits, waits[6])
	}
}

// TestItemsWithoutIDAreNotDeduplicated: an item whose ID is "" is never
// taken for one handled before, with Handle or with Deliver.
func TestItemsWithoutIDAreNotDeduplicated(t *testing.T) {
	src := pages{"": {Items: []string{"x", "y"}, Cursor: "2", More: true}, "2": {Items: []string{"z"}, Cursor: "3"}}
	var handled, delivered []string
	j := newJob(t, src, &delivered, nil)
	j.ID = func(string) string { return "" }
	if n, err := j.Round(t.Context()); err != nil || n != 3 || !slices.Equal(delivered, []string{"x", "y", "z"}) {
		t.Fatalf("Deliver round: %d, %v, delivered %v; want x, y and z", n, err, delivered)
	}
	j = newJob(t, src, &delivered, nil)
	j.ID = func(string) string { return "" }
	j.Deliver = nil
	j.Handle = func(_ context.Context, s string) error { handled = append(handled, s); return nil }
	if n, err := j.Round(t.Context()); err != nil || n != 3 || !slices.Equal(handled, []string{"x", "y", "z"}) {
		t.Fatalf("Handle round: %d, %v, handled %v; want x, y and z", n, err, handled)
	}
}

// TestJitter: each wait is randomized within ±Jitter of it and spread over
// that range (1,000 draws reach both of its outer quarters); no jitter
// leaves it as it is.
func TestJitter(t *testing.T) {
	const d = time.Second
	c := NewConfig()
	c.Jitter = 0.2
	lo, hi := d, d
	for range 1000 {
		w := c.jittered(d)
		if w < 800*time.Millisecond || w > 1200*time.Millisecond {
			t.Fatalf("jittered(%v) with jitter 0.2 = %v, want within [800ms, 1.2s]", d, w)
		}
		lo, hi = min(lo, w), max(hi, w)
	}
	if lo > 900*time.Millisecond || hi < 1100*time.Millisecond {
		t.Errorf("1,000 waits of %v with jitter 0.2 spread over [%v, %v] only, want below 900ms and above 1.1s", d, lo, hi)
	}
	c.Jitter = 0
	if w := c.jittered(d); w != d {
		t.Errorf("jittered(%v) without jitter = %v", d, w)
	}
}
