package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestAPISync(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "mem://", &out); err != nil {
		t.Fatal(err)
	}
	want := "poll 1: published 5 orders, cursor 5\n" +
		"poll 2: published 0 orders, cursor 5\n" +
		"poll 3: published 0 orders, cursor 5\n" +
		"the API answered 1 poll(s) with 304 Not Modified\n" +
		"after a restart: published 2 new orders\n" +
		"the CRM received all 7 partner orders\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
