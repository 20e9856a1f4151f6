package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/inspection"
)

func init() {
	register(command{name: "stats", order: 72, cmd: &statsCmd{},
		help: "Print the backlog of every consumer group of the topics, as the broker reports it."})
}

type statsCmd struct {
	Topics  []string      `arg:"" optional:"" name:"topic" help:"Topics to inspect (default: every topic the broker lists)."`
	Format  string        `help:"Output format: text (a table), or json (an array of topics with their groups; unknown figures are null, ages in seconds)." enum:"text,json" default:"text"`
	Timeout time.Duration `help:"Give up inspecting after this long." default:"30s"`
}

// statsHelp explains the columns; top shows the same ones.
const statsHelp = `Columns: MESSAGES and BYTES the broker retains for the topic; per group, BACKLOG
published but not yet delivered to the group, IN-FLIGHT delivered and not yet settled,
OLDEST the age of the oldest message of the backlog, REDELIVERIES as the broker counts
them, CONSUMERS connected. "?" is a figure this broker does not report (never shown as
0); "-" is a topic without groups. The figures come from the broker, not from the
consumers, so they cover consumers running anywhere. Without topics, every topic the
broker lists is shown (brokers that cannot list need them named).

Is a consumer keeping up? A BACKLOG and OLDEST that keep growing say no; watch them
live with msgctl top. Consumers needed ≈ arrival rate / one consumer's rate (more to
drain an existing backlog within a target time).`

func (c *statsCmd) Help() string { return statsHelp }

func (c *statsCmd) Run(e *env) error {
	if err := validateTopics(c.Topics); err != nil {
		return err
	}
	if c.Timeout <= 0 {
		return usagef("--timeout must be positive, not %v", c.Timeout)
	}
	client, insp, err := e.connectInspector()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	topics, err := topicsToInspect(ctx, insp, c.Topics)
	if err != nil {
		return err
	}
	results := inspection.Inspect(ctx, insp, topics)
	var stats []messaging.TopicStats
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Topic, r.Err))
			continue
		}
		stats = append(stats, r.Stats)
	}
	if c.Format == "json" {
		if stats == nil {
			stats = []messaging.TopicStats{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(stats); err != nil {
			return err
		}
	} else if len(stats) > 0 {
		writeStatsTable(e.stdout, stats)
	} else if len(errs) == 0 {
		fmt.Fprintln(e.stdout, "no topics")
	}
	return errors.Join(errs...)
}

// validateTopics is a usage error for the first malformed topic name.
func validateTopics(topics []string) error {
	for _, t := range topics {
		if err := messaging.ValidateName(t); err != nil {
			return usagef("%v", err)
		}
	}
	return nil
}

// connectInspector connects to the broker and returns the client and its
// Inspector, or why it has none.
func (e *env) connectInspector() (messaging.Client, messaging.Inspector, error) {
	client, err := e.connect()
	if err != nil {
		return nil, nil, err
	}
	insp, ok := client.(messaging.Inspector)
	if !ok {
		_ = client.Close()
		return nil, nil, fmt.Errorf("this broker's client cannot report its backlog (%T is no messaging.Inspector): %w", client, messaging.ErrUnsupported)
	}
	return client, insp, nil
}

// topicsToInspect returns topics, else the ones the broker lists; a broker
// that cannot list is a usage error (name the topics).
func topicsToInspect(ctx context.Context, insp messaging.Inspector, topics []string) ([]string, error) {
	names, err := inspection.Topics(ctx, insp, topics)
	if errors.Is(err, messaging.ErrUnsupported) {
		return nil, usagef("this broker cannot list its topics: name the topics to inspect (%v)", err)
	}
	return names, err
}

// writeStatsTable prints one row per topic and group.
func writeStatsTable(w io.Writer, stats []messaging.TopicStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tBROKER\tMESSAGES\tBYTES\tGROUP\tBACKLOG\tIN-FLIGHT\tOLDEST\tREDELIVERIES\tCONSUMERS")
	for _, st := range stats {
		topic := strings.Join([]string{st.Topic, st.Broker, st.Messages.String(), st.Bytes.String()}, "\t")
		if len(st.Groups) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\n", topic)
		}
		for _, g := range st.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", topic, g.Group, g.Backlog, g.InFlight, formatAge(g.OldestAge), g.Redeliveries, g.Consumers)
		}
	}
	_ = tw.Flush()
}

// formatAge rounds an age for reading: milliseconds under a second, tenths
// of a second under a minute, seconds above; "?" when unknown.
func formatAge(a messaging.Age) string {
	d, ok := a.Value()
	switch {
	case !ok:
		return "?"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
