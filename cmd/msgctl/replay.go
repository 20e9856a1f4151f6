package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/msgkit/messaging"
)

func init() {
	register(command{name: "replay", order: 50, cmd: &replayCmd{},
		help: "Print a topic's retained log from a position, without a consumer group."})
}

type replayCmd struct {
	Topic  string `arg:"" help:"Topic to read."`
	From   string `help:"Where to start: earliest, latest, OFFSET, after:OFFSET, an RFC 3339 time or a DURATION ago (e.g. 10m)." default:"earliest"`
	Follow bool   `help:"Keep following the log (as --idle 0)."`
	printFlags
	Idle time.Duration `help:"Stop at the end of the log: after this long without a message (0: never)." default:"1s"`
}

func (c *replayCmd) Help() string {
	return "Prints the log in log order; no group notices. Stops at the end of the log after --idle\n" +
		"(default 1s), at --count, or when interrupted; with --follow it keeps printing new messages.\n" +
		"On NATS and RabbitMQ, where reading would create a missing topic, replay checks first: a\n" +
		"topic that does not exist is an error (replay creates none)."
}

func (c *replayCmd) Run(e *env) error {
	if err := messaging.ValidateName(c.Topic); err != nil {
		return usagef("%v", err)
	}
	pos, err := parsePosition(c.From)
	if err != nil {
		return usagef("--from: %v", err)
	}
	out := outputFlags{printFlags: c.printFlags, Idle: c.Idle}
	if c.Follow {
		out.Idle = 0
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
	s, ok := client.(messaging.Stream)
	if !ok || !client.Capabilities().Replay {
		return fmt.Errorf("this broker cannot replay (mem, NATS JetStream, Redis, Kafka and RabbitMQ with streams=true in the URL can): %w", messaging.ErrUnsupported)
	}
	if te, ok := client.(topicExister); ok { // their Read would create a missing topic
		exists, err := te.TopicExists(e.ctx, c.Topic)
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("%s: %w (nothing to replay; replay creates no topic)", c.Topic, messaging.ErrTopicNotFound)
		}
	}
	sub, err := s.Read(e.ctx, c.Topic, pos, p.handler)
	if err != nil {
		return err
	}
	defer sub.Close()
	return p.wait(e.ctx, sub, out.Idle)
}

// timeLike matches a value meant as a time (it starts with a date): no
// broker's offsets look like it, so one that is not an RFC 3339 time is a
// mistake, not an offset.
var timeLike = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}`)

// parsePosition reads --from: earliest, latest, an offset, after:OFFSET, an
// RFC 3339 time or a duration ago. A value that starts with a date but is
// not an RFC 3339 time is an error naming the time's parse error.
func parsePosition(s string) (messaging.Position, error) {
	var pos messaging.Position
	switch {
	case s == "earliest":
		pos = messaging.Earliest
	case s == "latest":
		pos = messaging.Latest
	case strings.HasPrefix(s, "after:"):
		pos = messaging.AfterOffset(strings.TrimPrefix(s, "after:"))
	default:
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			pos = messaging.AtTime(t)
		} else if timeLike.MatchString(s) {
			return pos, fmt.Errorf("not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z): %w", err)
		} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
			pos = messaging.AtTime(time.Now().Add(-d))
		} else {
			pos = messaging.AtOffset(s)
		}
	}
	return pos, pos.Validate()
}
