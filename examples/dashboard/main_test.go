package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging/patterns/checkpoint"
)

func TestDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	store, err := checkpoint.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, "mem://", store, &out); err != nil {
		t.Fatal(err)
	}
	want := "dashboard: 6 sales, 7750 cents, by region map[apac:2 eu:2 us:2]\n" +
		"dashboard stopped; 4 more sales arrive\n" +
		"restarted from its checkpoint: 10 sales, 13250 cents, by region map[apac:3 eu:4 us:3]\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
