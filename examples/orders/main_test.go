package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/brokertest"
)

// TestRun runs the program against the test PostgreSQL and the in-process
// broker: the read model counts ada's first order once although its event
// was delivered twice, and the rolled-back order left no trace.
func TestRun(t *testing.T) {
	dbURL := brokertest.Postgres.Endpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, dbURL, "mem://"); err != nil {
		t.Fatal(err)
	}
	want := `order o-6 rolled back (payment declined): no event
5 orders placed, 5 events forwarded, 1 duplicate published
ada  2 orders  15.00
bob  2 orders   7.50
cy   1 orders  42.00
outbox backlog 0
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
