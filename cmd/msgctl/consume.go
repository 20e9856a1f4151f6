package main

import (
	"fmt"

	"github.com/msgkit/messaging"
)

func init() {
	register(command{name: "consume", order: 30, cmd: &consumeCmd{},
		help: "Consume a topic as a consumer group (or an ephemeral subscriber) and print its messages."})
	register(command{name: "tail", order: 40, cmd: &tailCmd{},
		help: "Print the messages published to a topic from now on (consume without a group)."})
}

type consumeCmd struct {
	Topic string `arg:"" help:"Topic to consume."`
	Group string `help:"Consumer group (default: an ephemeral subscription of its own)."`
	outputFlags
}

func (c *consumeCmd) Help() string {
	return "Prints each message (acknowledging it) until interrupted, --count messages were printed,\n" +
		"or --idle passed without one. Consumers of the same --group share the messages, and a new\n" +
		"group starts at the oldest retained message (on RabbitMQ, at the group's creation: see\n" +
		"msgctl provision); without one, only messages published from now on are printed."
}

func (c *consumeCmd) Run(e *env) error { return consume(e, c.Topic, c.Group, c.outputFlags) }

type tailCmd struct {
	Topic string `arg:"" help:"Topic to follow."`
	outputFlags
}

func (c *tailCmd) Help() string {
	return "An ephemeral subscription, which no other consumer notices; stops when interrupted, at\n--count or after --idle."
}

func (c *tailCmd) Run(e *env) error { return consume(e, c.Topic, "", c.outputFlags) }

func consume(e *env, topic, group string, out outputFlags) error {
	if err := messaging.ValidateName(topic); err != nil {
		return usagef("%v", err)
	}
	if group != "" {
		if err := messaging.ValidateName(group); err != nil {
			return usagef("--group: %v", err)
		}
	}
	p, err := newPrinter(e.stdout, out)
	if err != nil {
		return err
	}
	client, err := e.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	var opts []messaging.SubscribeOption
	how := "an ephemeral subscription (new messages only)"
	if group != "" {
		opts = append(opts, messaging.Group(group))
		how = "group " + group
	}
	if out.Count > 0 {
		// Fetch no more than will be printed: what is fetched and not
		// handled goes back to the group with a delivery counted against
		// it (Attempt, and MaxAttempts of the group's own workers). At most
		// 100, below every adapter's default prefetch.
		opts = append(opts, messaging.Prefetch(min(out.Count, 100)))
	}
	sub, err := client.Subscribe(e.ctx, topic, p.handler, opts...)
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Fprintf(e.stderr, "msgctl: consuming %s as %s; Ctrl-C to stop\n", topic, how)
	return p.wait(e.ctx, sub, out.Idle)
}
