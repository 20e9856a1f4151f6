package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"

	"github.com/msgkit/messaging/examples/scenario"
)

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "demo", "", "Runs the four scenarios of the examples, in short mode, on the in-process broker\n(or the broker given by --url), printing what happens, and checks each outcome:\n  checkout   payment awaited over request/reply; email, inventory, analytics queued\n  fanout     one order-placed event, four subscribers, then a fifth\n  dashboard  a running aggregate over a stream, restarted from its checkpoint\n  apisync    a partner HTTP API without webhooks polled into a topic")
	getURL := fs.String("url", "mem://", "broker URL (the demo does not read MESSAGING_URL: it needs no setup)")
	only := fs.String("only", "", "run only this scenario (checkout, fanout, dashboard, apisync)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parse(a, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client, err := open(ctx, *getURL)
	if err != nil {
		return err
	}
	defer client.Close()

	type step struct {
		name, title string
		run         func(context.Context, *scenario.Env) error
	}
	steps := []step{
		{"checkout", "Checkout: wait for the payment, queue the rest", scenario.Checkout},
		{"fanout", "Fan-out: one event, every subscriber reacts", scenario.Fanout},
		{"dashboard", "Live dashboard: a projection that resumes from its checkpoint", func(ctx context.Context, e *scenario.Env) error { return scenario.Dashboard(ctx, e, nil) }},
		{"apisync", "External API sync: poll what cannot push", func(ctx context.Context, e *scenario.Env) error { return scenario.APISync(ctx, e, nil) }},
	}
	if *only != "" {
		var keep []step
		for _, s := range steps {
			if s.name == *only {
				keep = append(keep, s)
			}
		}
		if keep == nil {
			return usageError(fs, "unknown scenario %q (want checkout, fanout, dashboard or apisync)", *only)
		}
		steps = keep
	}
	fmt.Fprintf(a.stdout, "msgctl demo on %s\n", redacted(*getURL))
	start := time.Now()
	skipped := 0
	for i, s := range steps {
		fmt.Fprintf(a.stdout, "\n== %d/%d %s ==\n", i+1, len(steps), s.title)
		t0 := time.Now()
		env := &scenario.Env{Client: client, Out: a.stdout, Short: true}
		err := s.run(ctx, env)
		switch {
		case errors.Is(err, messaging.ErrUnsupported):
			// The broker lacks a capability the scenario needs (replay).
			skipped++
			fmt.Fprintf(a.stdout, "-- %s skipped: %v\n", s.name, err)
			continue
		case err != nil:
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
		fmt.Fprintf(a.stdout, "-- %s ok in %v\n", s.name, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Fprintf(a.stdout, "\n%d of %d scenarios passed", len(steps)-skipped, len(steps))
	if skipped > 0 {
		fmt.Fprintf(a.stdout, ", %d skipped (the broker lacks what they need)", skipped)
	}
	fmt.Fprintf(a.stdout, " in %v. Next: msgctl advise, msgctl bench, go run ./examples/checkout\n", time.Since(start).Round(time.Millisecond))
	return nil
}
