package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// answers are the four questions of advise.
type answers struct {
	everyone  bool   // does every interested system need to react to each message?
	wait      bool   // must the caller wait for the result?
	freshness string // realtime, seconds, minutes, hours
	push      bool   // can the source push (publish or call a webhook)?
}

// advice is a recommendation.
type advice struct {
	patterns []string // primary first
	why      []string
	example  string
	sizing   bool // the user runs a number of consumers in a group: say how to size it
}

// sizingAdvice tells how many consumers a group needs, from what msgctl stats and
// top show.
const sizingAdvice = `How many consumers? consumers needed ≈ arrival rate / one consumer's rate;
to drain an existing backlog within a target time, add (backlog / target) / one
consumer's rate. Read them off the broker: msgctl top shows PUB/S (the arrival
rate) and CONS/S (divide by CONSUMERS for one consumer's rate), msgctl stats the
BACKLOG and OLDEST age of each group. A backlog and age that keep growing mean
too few consumers (or a stuck one: see IN-FLIGHT).`

func advise(a answers) advice {
	var ad advice
	if !a.push {
		ad.patterns = append(ad.patterns, "poll")
		ad.why = append(ad.why, "the source cannot push, so something must ask it: poll it with a cursor and ETag (patterns/poll) and publish what changed into a topic; everything downstream then reacts to the topic as if the source pushed")
		ad.example = "go run ./examples/apisync"
	}
	switch {
	case a.wait && a.everyone:
		ad.patterns = append(ad.patterns, "reqreply", "pubsub")
		ad.why = append(ad.why,
			"the caller must wait, so the one answer it needs goes over request/reply (patterns/reqreply): a correlation ID, a reply topic and a timeout",
			"the other systems must all react but the caller should not wait for them: publish an event (patterns/pubsub) or enqueue jobs after the reply, so their speed and failures do not reach the caller")
		ad.sizing = true
		if ad.example == "" {
			ad.example = "go run ./examples/checkout"
		}
	case a.wait:
		ad.patterns = append(ad.patterns, "reqreply")
		ad.why = append(ad.why, "the caller must wait for the result: request/reply over the broker (patterns/reqreply) keeps the call synchronous while the services stay decoupled and load-balanced; set a timeout, and use reqreply.Go for calls whose result only needs confirming")
		if ad.example == "" {
			ad.example = "go run ./examples/checkout"
		}
	case a.everyone:
		ad.patterns = append(ad.patterns, "pubsub")
		ad.why = append(ad.why, "every system must react to each message: an event bus (patterns/pubsub) publishes once and gives each subscriber its own consumer group; a new subscriber needs no change to the publisher")
		ad.sizing = true
		if ad.example == "" {
			ad.example = "go run ./examples/fanout"
		}
	default:
		ad.patterns = append(ad.patterns, "queue")
		ad.why = append(ad.why, "each message is work that one worker should do once: a work queue (patterns/queue) shares it among N workers, retries failures with backoff and dead-letters what keeps failing")
		ad.sizing = true
		if ad.example == "" {
			ad.example = "go run ./examples/checkout"
		}
	}
	switch a.freshness {
	case "minutes", "hours":
		ad.patterns = append(ad.patterns, "batch")
		ad.why = append(ad.why, fmt.Sprintf("data may be %s old: process in windowed batches (patterns/batch) for throughput; the same handler switches back to per-message by configuration", a.freshness))
	case "realtime":
		if !a.wait {
			ad.patterns = append(ad.patterns, "stream")
			ad.why = append(ad.why, "views must be current within a second: keep a projection over the log (patterns/stream) with a checkpoint, and live-tail it for dashboards; it can be rebuilt by replaying from any position")
			if a.push && !a.everyone {
				ad.example = "go run ./examples/dashboard"
			}
		}
	}
	return ad
}

func parseYes(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes", "true", "1":
		return true, nil
	case "n", "no", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("answer yes or no, not %q", s)
}

func parseFreshness(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "realtime", "real-time", "subsecond", "now":
		return "realtime", nil
	case "2", "seconds", "second":
		return "seconds", nil
	case "3", "minutes", "minute":
		return "minutes", nil
	case "4", "hours", "hour", "daily", "day":
		return "hours", nil
	}
	return "", fmt.Errorf("answer realtime, seconds, minutes or hours (or 1-4), not %q", s)
}

func init() {
	register(command{name: "advise", order: 90, cmd: &adviseCmd{},
		help: "Answer four questions and get the pattern to use, and why."})
}

type adviseCmd struct {
	EverySystemReacts string `help:"Do you need every interested system to react to each message? (yes/no)" placeholder:"yes|no"`
	CallerWaits       string `help:"Must the caller wait for the result? (yes/no)" placeholder:"yes|no"`
	Freshness         string `help:"How fresh must the data be? (realtime, seconds, minutes, hours)" placeholder:"FRESHNESS"`
	SourceCanPush     string `help:"Can the source push (publish, call a webhook)? (yes/no)" placeholder:"yes|no"`
}

func (c *adviseCmd) Help() string {
	return "Answer on stdin, or give every answer as a flag to skip the questions. Needs no broker."
}

func (c *adviseCmd) Run(e *env) error {
	everyone, wait, fresh, push := &c.EverySystemReacts, &c.CallerWaits, &c.Freshness, &c.SourceCanPush
	in := bufio.NewReader(e.input())
	ask := func(flagVal *string, question string, parseAns func(string) error) error {
		if *flagVal != "" {
			if err := parseAns(*flagVal); err != nil {
				return usagef("%v", err)
			}
			return nil
		}
		for {
			fmt.Fprintf(e.stdout, "%s ", question)
			line, err := in.ReadString('\n')
			if strings.TrimSpace(line) == "" && err != nil {
				if err == io.EOF {
					return fmt.Errorf("no answer to %q on stdin (or pass the flags; see --help)", question)
				}
				return err
			}
			if perr := parseAns(line); perr != nil {
				fmt.Fprintf(e.stdout, "  %v\n", perr)
				if err != nil {
					return perr
				}
				continue
			}
			return nil
		}
	}
	var ans answers
	var err error
	steps := []struct {
		v *string
		q string
		p func(string) error
	}{
		{everyone, "1. Do you need every interested system to react to each message? [yes/no]", func(s string) error { ans.everyone, err = parseYes(s); return err }},
		{wait, "2. Must the caller wait for the result? [yes/no]", func(s string) error { ans.wait, err = parseYes(s); return err }},
		{fresh, "3. How fresh must the data be? [1 realtime (<1s) / 2 seconds / 3 minutes / 4 hours]", func(s string) error { ans.freshness, err = parseFreshness(s); return err }},
		{push, "4. Can the source push (publish itself, or call a webhook)? [yes/no]", func(s string) error { ans.push, err = parseYes(s); return err }},
	}
	// Check the answers given as flags before asking anything.
	for _, s := range steps {
		if *s.v != "" {
			if e := s.p(*s.v); e != nil {
				return usagef("%v", e)
			}
		}
	}
	for _, s := range steps {
		if e := ask(s.v, s.q, s.p); e != nil {
			return e
		}
	}
	ad := advise(ans)
	fmt.Fprintf(e.stdout, "\nUse: %s\n\nWhy:\n", strings.Join(ad.patterns, " + "))
	for _, w := range ad.why {
		fmt.Fprintf(e.stdout, "  - %s\n", w)
	}
	if ad.sizing {
		fmt.Fprintf(e.stdout, "\n%s\n", sizingAdvice)
	}
	fmt.Fprintf(e.stdout, "\nSee it run: %s\nPackages:   %s\n", ad.example, packages(ad.patterns))
	return nil
}

func packages(ps []string) string {
	var out []string
	for _, p := range ps {
		out = append(out, "github.com/msgkit/messaging/patterns/"+p)
	}
	return strings.Join(out, ", ")
}
