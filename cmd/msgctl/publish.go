package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/msgkit/messaging"
)

func init() {
	register(command{name: "publish", order: 20, cmd: &publishCmd{},
		help: "Publish messages: one per PAYLOAD argument, the raw bytes of --file (- for stdin), or one per line of stdin."})
}

type publishCmd struct {
	Topic    string            `arg:"" help:"Topic to publish to."`
	Payloads []string          `arg:"" optional:"" name:"payload" help:"Payloads, one message each."`
	File     string            `help:"Publish one message whose payload is this file's bytes, unchanged (- reads stdin to its end)." placeholder:"PATH" type:"path"`
	Key      string            `help:"Message key (ordering / partitioning)."`
	Header   map[string]string `help:"Header key=value (repeatable)." short:"H" mapsep:"none" placeholder:"KEY=VALUE"`
}

// Help is shown under the command's usage line.
func (c *publishCmd) Help() string {
	return "Prints each message's ID once the broker has accepted it. Without PAYLOAD arguments and\n" +
		"without --file, each line of stdin (up to 16 MiB) is a message (the newline is not part of it).\n" +
		"--file keeps binary payloads intact: --file - publishes all of stdin as one message."
}

func (c *publishCmd) Run(e *env) error {
	if err := messaging.ValidateName(c.Topic); err != nil {
		return usagef("%v", err)
	}
	if err := messaging.ValidateHeader(c.Header); err != nil {
		return usagef("--header: %v", err)
	}
	if c.File != "" && len(c.Payloads) > 0 {
		return usagef("give PAYLOAD arguments or --file, not both")
	}
	var raw []byte
	if c.File != "" {
		var err error
		if c.File == "-" {
			raw, err = io.ReadAll(e.input())
		} else {
			raw, err = os.ReadFile(c.File)
		}
		if err != nil {
			return err
		}
	}
	client, err := e.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	send := func(payload []byte) error {
		m := &messaging.Message{Key: c.Key, Payload: payload}
		if len(c.Header) > 0 {
			m.Header = messaging.Header(c.Header)
		}
		if err := client.Publish(e.ctx, c.Topic, m); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(e.stdout, m.ID); err != nil {
			return fmt.Errorf("published %s, but printing its ID failed: %w", m.ID, err)
		}
		return nil
	}
	switch {
	case c.File != "":
		return send(raw)
	case len(c.Payloads) > 0:
		for _, p := range c.Payloads {
			if err := send([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(e.input())
	sc.Buffer(make([]byte, 64*1024), maxLine)
	line := 0
	for sc.Scan() {
		line++
		if err := send(append([]byte(nil), sc.Bytes()...)); err != nil {
			return err
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("stdin line %d is longer than %d MiB (publish a large payload as one message with --file): %w", line+1, maxLine>>20, err)
	} else if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	return nil
}

// maxLine is the longest line of stdin publish takes as a message.
const maxLine = 16 << 20
