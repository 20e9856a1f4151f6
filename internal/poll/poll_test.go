package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// pages is a source of pages by cursor; a missing cursor is not modified.
type pages map[string]Page[string]

func newJob(t *testing.T, src pages, delivered *[]string, fail func(string) error) *Job[string] {
	t.Helper()
	cfg := NewConfig()
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	return &Job[string]{
		Config: cfg,
		Name:   "job",
		Fetch: func(_ context.Context, cursor, etag string) (Page[string], error) {
			p, ok := src[cursor]
			if !ok || (etag != "" && etag == p.ETag) {
				return Page[string]{NotModified: true}, nil
			}
			return p, nil
		},
		ID: func(s string) string { return s },
		Deliver: func(_ context.Context, items []string) (int, error) {
			for i, s := range items {
				if fail != nil {
					if err := fail(s); err != nil {
						return i, err
					}
				}
				*delivered = append(*delivered, s)
			}
			return len(items), nil
		},
	}
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
