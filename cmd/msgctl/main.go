// Command msgctl is the command-line tool of the messaging library: a demo
// of the patterns that needs no setup, and commands to publish, consume,
// replay, inspect dead letters, benchmark a broker and choose a pattern.
//
// Usage:
//
//	msgctl <command> [flags] [arguments]
//
// Commands take the broker URL from --url, else the MESSAGING_URL
// environment variable, else mem:// (the in-process broker, which lives only
// as long as the command). Run `msgctl help` or `msgctl <command> --help`.
//
// Exit status: 0 on success, 1 when the command failed, 2 for a usage error
// (unknown command or flag, missing argument).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one msgctl subcommand.
type command struct {
	name    string
	args    string // argument synopsis after the flags
	summary string
	run     func(ctx context.Context, a *app, args []string) error
}

// app carries the process's streams, so tests can run commands in process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// errUsage marks usage errors (exit status 2); the message has been printed.
var errUsage = errors.New("usage error")

func commands() []command {
	return []command{
		{"demo", "", "run the scenarios (checkout, fan-out, dashboard, API sync) on an in-process broker", runDemo},
		{"publish", "TOPIC [PAYLOAD...]", "publish messages (one per argument, or one per stdin line)", runPublish},
		{"consume", "TOPIC", "consume a topic as a consumer group (or an ephemeral one) and print messages", runConsume},
		{"tail", "TOPIC", "print messages of a topic as they are published (consume without a group)", runTail},
		{"replay", "TOPIC", "print a topic's log from a position (--from earliest|latest|OFFSET|after:OFFSET|RFC3339 time)", runReplay},
		{"dlq", "list|show|redrive ...", "inspect and redrive dead-lettered messages", runDLQ},
		{"bench", "", "measure publish-to-consume throughput and latency percentiles", runBench},
		{"advise", "", "answer four questions and get the pattern to use, and why", runAdvise},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, a *app, args []string) int {
	if len(args) == 0 {
		usage(a.stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run(ctx, a, []string{args[1], "--help"})
		}
		usage(a.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, a, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(a.stderr, "msgctl %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(a.stderr, "msgctl: unknown command %q\n\n", name)
	usage(a.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "msgctl: one messaging API over NATS, Redis Streams, Kafka, RabbitMQ and memory\n\nUsage:\n  msgctl <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nThe broker URL comes from --url, else $MESSAGING_URL, else mem:// (in-process).\nStart with:  msgctl demo\nMore:        msgctl <command> --help\n")
}

// newFlags returns a flag set for command c that prints its usage to
// a.stderr (a.stdout for --help) and never exits.
func newFlags(a *app, name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("msgctl "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: msgctl %s [flags] %s\n\n%s\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping --help to flag.ErrHelp (usage printed to stdout)
// and other flag errors to errUsage.
func parse(a *app, fs *flag.FlagSet, args []string) error {
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "-h" || arg == "--help" || arg == "-help" {
			fs.SetOutput(a.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
}

// usageError prints msg and the command's usage, and returns errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}
