package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"

	"github.com/msgkit/messaging/cmd/msgctl/internal/scenario"
)

func init() {
	register(command{name: "demo", order: 10, cmd: &demoCmd{},
		help: "Run the scenarios (checkout, fan-out, dashboard, API sync) on an in-process broker: no setup."})
}

type demoCmd struct {
	Only    string        `help:"Run only this scenario (checkout, fanout, dashboard, apisync)." placeholder:"SCENARIO"`
	Timeout time.Duration `help:"Give up after this long." default:"1m"`
}

func (c *demoCmd) Help() string {
	return "Runs the four scenarios in short mode, printing what happens, and checks each outcome:\n" +
		"  checkout   payment awaited over request/reply; email, inventory, analytics queued\n" +
		"  fanout     one order-placed event, four subscribers, then a fifth\n" +
		"  dashboard  a running aggregate over a stream, restarted from its checkpoint\n" +
		"  apisync    a partner HTTP API without webhooks polled into a topic\n" +
		"It uses mem:// (in-process) unless --url names a broker; it does not read $MESSAGING_URL."
}

func (c *demoCmd) Run(e *env) error {
	if c.Timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	rawURL := e.globals.URL
	if rawURL == "" {
		rawURL = "mem://"
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	client, err := e.open(rawURL)
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
	if c.Only != "" {
		var keep []step
		for _, s := range steps {
			if s.name == c.Only {
				keep = append(keep, s)
			}
		}
		if keep == nil {
			return usagef("unknown scenario %q (want checkout, fanout, dashboard or apisync)", c.Only)
		}
		steps = keep
	}
	fmt.Fprintf(e.stdout, "msgctl demo on %s\n", redacted(rawURL))
	start := time.Now()
	skipped := 0
	for i, s := range steps {
		fmt.Fprintf(e.stdout, "\n== %d/%d %s ==\n", i+1, len(steps), s.title)
		t0 := time.Now()
		env := &scenario.Env{Client: client, Out: e.stdout, Short: true}
		err := s.run(ctx, env)
		switch {
		case errors.Is(err, messaging.ErrUnsupported):
			// The broker lacks a capability the scenario needs (replay).
			skipped++
			fmt.Fprintf(e.stdout, "-- %s skipped: %v\n", s.name, err)
			continue
		case err != nil:
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
		fmt.Fprintf(e.stdout, "-- %s ok in %v\n", s.name, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Fprintf(e.stdout, "\n%d of %d scenarios passed", len(steps)-skipped, len(steps))
	if skipped > 0 {
		fmt.Fprintf(e.stdout, ", %d skipped (the broker lacks what they need)", skipped)
	}
	fmt.Fprintf(e.stdout, " in %v. Next: msgctl advise, msgctl bench, go run ./examples/checkout\n", time.Since(start).Round(time.Millisecond))
	return nil
}
