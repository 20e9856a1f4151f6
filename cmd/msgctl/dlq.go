package main

import (
	"context"

	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/msgkit/messaging/middleware/deadletter"
)

const dlqSummary = `Inspects the dead letters of a dead-letter topic (what middleware/deadletter and the
queue pattern write; a queue's is "<topic>.dlq") and republishes them.

  msgctl dlq list    DLQ-TOPIC              pending dead letters, oldest first
  msgctl dlq show    DLQ-TOPIC ID           one dead letter in full (ID or original ID)
  msgctl dlq redrive DLQ-TOPIC ID... | --all  republish to the original topic

Needs an adapter that can replay (mem, NATS JetStream, Redis, Kafka, RabbitMQ streams).`

func runDLQ(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "dlq", "list|show|redrive DLQ-TOPIC [ID...]", dlqSummary)
	getURL := urlFlag(fs)
	all := fs.Bool("all", false, "redrive: every pending dead letter")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	// Flags may follow the subcommand: parse "dlq list --url X T" too.
	var sub string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if err := parse(a, fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if sub == "" {
		if len(rest) == 0 {
			return usageError(fs, "missing subcommand (list, show or redrive)")
		}
		sub, rest = rest[0], rest[1:]
	}
	if len(rest) < 1 {
		return usageError(fs, "missing DLQ-TOPIC")
	}
	topic, ids := rest[0], rest[1:]
	switch sub {
	case "list":
		if len(ids) > 0 {
			return usageError(fs, "list takes no IDs")
		}
	case "show":
		if len(ids) != 1 {
			return usageError(fs, "show takes exactly one ID")
		}
	case "redrive":
		if (len(ids) > 0) == *all {
			return usageError(fs, "redrive takes IDs or --all (not both)")
		}
	default:
		return usageError(fs, "unknown subcommand %q (want list, show or redrive)", sub)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client, err := open(ctx, getURL())
	if err != nil {
		return err
	}
	defer client.Close()
	q, err := deadletter.NewQueue(client, topic)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		entries, err := q.List(ctx)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Fprintf(a.stdout, "no dead letters in %s\n", topic)
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORIGINAL ID\tTIME\tTOPIC\tGROUP\tATTEMPTS\tREASON")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Message.ID, e.OriginalID, e.Time.Format(time.RFC3339), e.Topic, e.Group, e.Attempts, oneLine(e.Reason, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%d dead letter(s)\n", len(entries))
	case "show":
		e, err := q.Get(ctx, ids[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "id:          %s\noriginal id: %s\ntopic:       %s\ngroup:       %s\nattempts:    %d\ntime:        %s\nkey:         %s\nreason:      %s\n",
			e.Message.ID, e.OriginalID, e.Topic, e.Group, e.Attempts, e.Time.Format(time.RFC3339Nano), e.Message.Key, e.Reason)
		for k, v := range deadletter.Strip(e.Message.Header) {
			fmt.Fprintf(a.stdout, "header:      %s=%s\n", k, v)
		}
		fmt.Fprintf(a.stdout, "payload (%d bytes):\n%s\n", len(e.Message.Payload), e.Message.Payload)
	case "redrive":
		var n int
		if *all {
			n, err = q.RedriveAll(ctx)
		} else {
			n, err = q.Redrive(ctx, ids...)
		}
		if err != nil {
			return fmt.Errorf("redrove %d, then: %w", n, err)
		}
		fmt.Fprintf(a.stdout, "redrove %d dead letter(s)\n", n)
	}
	return nil
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
