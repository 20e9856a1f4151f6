package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/deadletter"
)

func init() {
	register(command{name: "dlq", order: 70, cmd: &dlqCmd{},
		help: "Inspect (read-only) and redrive the dead letters of a dead-letter topic."})
}

type dlqCmd struct {
	List    dlqListCmd    `cmd:"" help:"List the pending dead letters, oldest first (read-only)."`
	Show    dlqShowCmd    `cmd:"" help:"Show one dead letter in full (read-only)."`
	Redrive dlqRedriveCmd `cmd:"" help:"Republish dead letters to their original topic."`
}

func (c *dlqCmd) Help() string {
	return "A dead-letter topic is what middleware/deadletter and the queue pattern write (a queue's is\n" +
		"\"<topic>.dlq\"). Needs an adapter that can replay (mem, NATS JetStream, Redis, Kafka,\n" +
		"RabbitMQ with streams=true).\n\n" +
		"list and show write nothing: they read the topic from its start until --quiet passes without\n" +
		"a message, and on NATS and RabbitMQ they first check that the topic exists, so they create\n" +
		"no stream, exchange or queue (a missing topic has no dead letters). On Kafka, a broker with\n" +
		"auto.create.topics.enable creates a missing topic when it is read.\n" +
		"redrive republishes each letter, then appends a marker that hides it from later lists; like\n" +
		"list, it leaves a missing topic alone (nothing to redrive)."
}

// dlqFlags are the flags of every dlq subcommand.
type dlqFlags struct {
	DLQ     string        `arg:"" name:"dlq-topic" help:"The dead-letter topic."`
	Timeout time.Duration `help:"Give up after this long." default:"30s"`
}

type dlqListCmd struct {
	dlqFlags
	Quiet time.Duration `help:"The end of the log is taken to be reached after this long without a message (shorter than --timeout)." default:"1s"`
}

type dlqShowCmd struct {
	dlqFlags
	ID    string        `arg:"" help:"Dead letter ID or original message ID."`
	Quiet time.Duration `help:"The end of the log is taken to be reached after this long without a message (shorter than --timeout)." default:"1s"`
}

type dlqRedriveCmd struct {
	dlqFlags
	IDs []string `arg:"" optional:"" name:"id" help:"Dead letter IDs or original message IDs."`
	All bool     `help:"Redrive every pending dead letter."`
}

// topicExister is implemented by adapters whose Read would create a missing
// topic (NATS JetStream, RabbitMQ): list and show check first, to stay
// read-only.
type topicExister interface {
	TopicExists(ctx context.Context, topic string) (bool, error)
}

// open validates the topic and returns its dead-letter queue, with a
// context bounded by --timeout and a function releasing both.
func (f *dlqFlags) open(e *env) (context.Context, messaging.Client, *deadletter.Queue, func(), error) {
	if err := messaging.ValidateName(f.DLQ); err != nil {
		return nil, nil, nil, nil, usagef("%v", err)
	}
	if f.Timeout <= 0 {
		return nil, nil, nil, nil, usagef("--timeout must be positive")
	}
	client, err := e.connect()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(e.ctx, f.Timeout)
	release := func() { cancel(); _ = client.Close() }
	q, err := deadletter.NewQueue(client, f.DLQ)
	if err != nil {
		release()
		return nil, nil, nil, nil, err
	}
	return ctx, client, q, release, nil
}

// scan lists the pending letters without writing to the broker.
func (f *dlqFlags) scan(e *env, quiet time.Duration) ([]deadletter.Entry, *deadletter.Queue, func(), error) {
	if quiet <= 0 {
		return nil, nil, nil, usagef("--quiet must be positive")
	}
	if f.Timeout > 0 && quiet >= f.Timeout {
		// The scan ends only after quiet without a message: it could never
		// finish within the timeout.
		return nil, nil, nil, usagef("--quiet (%v) must be shorter than --timeout (%v): the log's end is taken to be reached only after --quiet without a message", quiet, f.Timeout)
	}
	ctx, client, q, release, err := f.open(e)
	if err != nil {
		return nil, nil, nil, err
	}
	if te, ok := client.(topicExister); ok {
		exists, err := te.TopicExists(ctx, f.DLQ)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		if !exists {
			return nil, q, release, nil
		}
	}
	entries, err := q.Scan(ctx, quiet)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return entries, q, release, nil
}

func (c *dlqListCmd) Run(e *env) error {
	entries, _, release, err := c.scan(e, c.Quiet)
	if err != nil {
		return err
	}
	defer release()
	if len(entries) == 0 {
		fmt.Fprintf(e.stdout, "no dead letters in %s\n", c.DLQ)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORIGINAL ID\tTIME\tTOPIC\tGROUP\tATTEMPTS\tREASON")
	for _, l := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", l.Message.ID, l.OriginalID, l.Time.Format(time.RFC3339), l.Topic, l.Group, l.Attempts, oneLine(l.Reason, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d dead letter(s)\n", len(entries))
	return nil
}

func (c *dlqShowCmd) Run(e *env) error {
	entries, q, release, err := c.scan(e, c.Quiet)
	if err != nil {
		return err
	}
	defer release()
	l, err := q.Find(entries, c.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "id:          %s\noriginal id: %s\ntopic:       %s\ngroup:       %s\nattempts:    %d\ntime:        %s\nkey:         %s\nreason:      %s\n",
		l.Message.ID, l.OriginalID, l.Topic, l.Group, l.Attempts, l.Time.Format(time.RFC3339Nano), l.Message.Key, l.Reason)
	h := deadletter.Strip(l.Message.Header)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(e.stdout, "header:      %s=%s\n", k, h[k])
	}
	fmt.Fprintf(e.stdout, "payload (%d bytes):\n%s\n", len(l.Message.Payload), textPayload(l.Message.Payload))
	return nil
}

func (c *dlqRedriveCmd) Run(e *env) error {
	if (len(c.IDs) > 0) == c.All {
		return usagef("redrive takes IDs or --all (not both)")
	}
	ctx, client, q, release, err := c.open(e)
	if err != nil {
		return err
	}
	defer release()
	if te, ok := client.(topicExister); ok { // redriving appends a marker: it would create the topic
		exists, err := te.TopicExists(ctx, c.DLQ)
		if err != nil {
			return err
		}
		if !exists && c.All {
			fmt.Fprintf(e.stdout, "no dead letters in %s\n", c.DLQ)
			return nil
		}
		if !exists {
			_, err := q.Find(nil, c.IDs[0])
			return err
		}
	}
	var n int
	if c.All {
		n, err = q.RedriveAll(ctx)
	} else {
		n, err = q.Redrive(ctx, c.IDs...)
	}
	if err != nil && n > 0 {
		return fmt.Errorf("redrove %d, then: %w", n, err)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "redrove %d dead letter(s)\n", n)
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
