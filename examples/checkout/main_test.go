package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestCheckout(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "mem://", &out); err != nil {
		t.Fatal(err)
	}
	want := "order-1: paid (AUTH-order-1), confirmed; email, inventory and analytics queued\n" +
		"order-2: paid (AUTH-order-2), confirmed; email, inventory and analytics queued\n" +
		"order-3: paid (AUTH-order-3), confirmed; email, inventory and analytics queued\n" +
		"all 9 background jobs done (the first email after a retry)\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
