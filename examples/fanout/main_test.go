package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "mem://", &out); err != nil {
		t.Fatal(err)
	}
	want := "inventory got [order-101 order-102 order-103]\n" +
		"shipping  got [order-101 order-102 order-103]\n" +
		"email     got [order-101 order-102 order-103]\n" +
		"analytics got [order-101 order-102 order-103]\n" +
		"fraud joined; order-104 reached all 5 subscribers\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
