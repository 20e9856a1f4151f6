package main

import (
	"fmt"
	"strings"

	"github.com/msgkit/messaging"
)

func init() {
	register(command{name: "provision", order: 60, cmd: &provisionCmd{},
		help: "Create a topic and the durable state of its consumer groups before anything is published."})
}

type provisionCmd struct {
	Topic  string   `arg:"" help:"Topic to create."`
	Groups []string `arg:"" optional:"" name:"group" help:"Consumer groups to create on it."`
}

func (c *provisionCmd) Help() string {
	return "Messages published before a group exists are kept for it only if it was provisioned: on\n" +
		"RabbitMQ a publish with no group yet fails (\"Provision its groups first\"). Idempotent.\n" +
		"On brokers that need no provisioning it only checks the names."
}

func (c *provisionCmd) Run(e *env) error {
	for _, n := range append([]string{c.Topic}, c.Groups...) {
		if err := messaging.ValidateName(n); err != nil {
			return usagef("%v", err)
		}
	}
	client, err := e.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	if err := messaging.Provision(e.ctx, client, c.Topic, c.Groups...); err != nil {
		return err
	}
	if len(c.Groups) == 0 {
		fmt.Fprintf(e.stdout, "provisioned topic %s\n", c.Topic)
	} else {
		fmt.Fprintf(e.stdout, "provisioned topic %s with group(s) %s\n", c.Topic, strings.Join(c.Groups, ", "))
	}
	return nil
}
