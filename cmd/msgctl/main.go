// Command msgctl is the command-line tool of the messaging library: a demo
// of the patterns that needs no setup, and commands to publish, consume,
// replay, provision, inspect dead letters, watch the backlog of consumer
// groups (stats, top), benchmark a broker, choose a pattern (advise) and
// inspect a transactional outbox (outbox status).
//
// Usage:
//
//	msgctl <command> [arguments] [flags]
//
// Flags may come before or after the arguments. Every command that talks to
// a broker takes it from --url, else from the MESSAGING_URL environment
// variable; without either it fails (exit status 2) and says so. Only demo
// has a default: mem://, the in-process broker. Run `msgctl --help` or
// `msgctl <command> --help`.
//
// Exit status: 0 on success, 1 when the command failed (a command whose
// output could not be written, e.g. to a full disk, failed), 2 for a usage
// error (unknown command or flag, missing or malformed argument, no broker
// URL), 128+n when signal n interrupted it (130 for Ctrl-C, 143 for
// SIGTERM) before it finished, saying "interrupted". consume, tail, replay
// and top, which run until stopped, stop printing and exit 0 when
// interrupted: that is how they are meant to end.
//
// Each command is one file that registers itself (see register).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/redis/go-redis/v9"
	redislogging "github.com/redis/go-redis/v9/logging"
)

// globals are the flags every command accepts.
type globals struct {
	URL            string           `help:"Broker URL, e.g. nats://127.0.0.1:4222, redis://127.0.0.1:6379, kafka://127.0.0.1:9092, amqp://guest:guest@127.0.0.1:5672/ or mem:// (default: $MESSAGING_URL)." placeholder:"URL"`
	ConnectTimeout time.Duration    `help:"Give up connecting to the broker after this long." default:"10s"`
	Version        kong.VersionFlag `help:"Print msgctl's version and exit."`
}

// env is what a command's Run method receives.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer // stdout is out
	globals        *globals
	out            *errWriter
}

// errWriter is the stdout a command writes to: it passes each write to w
// and keeps the first error, so that a command which did its work but could
// not print its result fails (run checks it) even where the command itself
// ignores the write's error.
type errWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	return n, err
}

// Err is the first write's error, if any.
func (w *errWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// command is one msgctl subcommand: cmd is a pointer to a struct whose
// fields are its arguments and flags (kong tags) and whose method
// Run(*env) error runs it.
type command struct {
	name, help string
	order      int // position in the help listing
	cmd        any
}

var commands []command

// register adds a subcommand; each command's file calls it from init.
func register(c command) { commands = append(commands, c) }

// usageError is a usage error found while running a command (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	// go-redis logs through a process-wide logger, on stderr, what its
	// errors then say again (a refused dial: 2-4 lines before msgctl's own
	// error). msgctl prints the adapter's errors itself: silence it.
	redis.SetLogger(&redislogging.VoidLogger{})
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if s, ok := (<-sigs).(syscall.Signal); ok {
			cancel(interrupt{s})
		}
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Exit)
	signal.Stop(sigs)
	os.Exit(code)
}

// interrupt is the cause of run's context when a signal ends it.
type interrupt struct{ sig syscall.Signal }

func (i interrupt) Error() string { return i.sig.String() + " signal received" }

// interruptedStatus is the exit status of a command interrupted by ctx:
// 128 plus the signal's number, 130 (SIGINT's) when ctx says no signal.
func interruptedStatus(ctx context.Context) int {
	var i interrupt
	if errors.As(context.Cause(ctx), &i) {
		return 128 + int(i.sig)
	}
	return 128 + int(syscall.SIGINT)
}

// version is the module version msgctl was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "msgctl " + bi.Main.Version
	}
	return "msgctl (devel)"
}

// run parses args, runs the command and returns the exit status. exit is
// what --help and --version call (os.Exit in main).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, exit func(int)) int {
	if len(args) > 0 && args[0] == "help" { // msgctl help [command]
		args = append(args[1:], "--help")
	}
	var g globals
	opts := []kong.Option{
		kong.Name("msgctl"),
		kong.Description("One messaging API over NATS, Redis Streams, Kafka, RabbitMQ and an in-process broker.\n\nStart with: msgctl demo (no setup). The other commands need a broker, --url URL or $MESSAGING_URL, except advise and outbox status (a database: --db).\n\nExit status: 0 success, 1 failure, 2 usage error, 130 interrupted by Ctrl-C (143 by SIGTERM) before finishing; consume, tail, replay and top, which run until stopped, exit 0 when interrupted."),
		kong.Writers(stdout, stderr),
		kong.Exit(exit),
		kong.Vars{"version": version()},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
	}
	slices.SortStableFunc(commands, func(a, b command) int { return a.order - b.order })
	for _, c := range commands {
		opts = append(opts, kong.DynamicCommand(c.name, c.help, "", c.cmd))
	}
	parser, err := kong.New(&g, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "msgctl: %v\n", err)
		return 1
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && len(args) == 0 {
			_ = pe.Context.PrintUsage(true)
			return 2
		}
		fmt.Fprintf(stderr, "msgctl: %s\n", hideURLs(err.Error(), args))
		if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
			fmt.Fprintf(stderr, "Run 'msgctl %s --help' for usage.\n", pe.Context.Selected().Path())
		} else {
			fmt.Fprintln(stderr, "Run 'msgctl --help' for usage.")
		}
		return 2
	}
	out := &errWriter{w: stdout}
	e := &env{ctx: ctx, stdin: stdin, stdout: out, stderr: stderr, globals: &g, out: out}
	err = kctx.Run(e)
	if werr := out.Err(); err == nil && werr != nil {
		err = fmt.Errorf("write output: %w", werr)
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "msgctl %s: %s\nRun 'msgctl %s --help' for usage.\n", kctx.Selected().Path(), hideURLs(ue.Error(), args), kctx.Selected().Path())
		return 2
	case ctx.Err() != nil: // interrupted before it finished: its error is the interruption's
		msg := "interrupted"
		if err.Error() != ctx.Err().Error() {
			msg += " (" + hideURLs(err.Error(), args) + ")"
		}
		fmt.Fprintf(stderr, "msgctl %s: %s\n", kctx.Selected().Path(), msg)
		return interruptedStatus(ctx)
	}
	fmt.Fprintf(stderr, "msgctl %s: %s\n", kctx.Selected().Path(), hideURLs(err.Error(), args))
	return 1
}

// input returns stdin as a reader whose Read gives up with ctx's error once
// ctx is done (Ctrl-C), for the commands that wait for input: the signal is
// caught, so a Read blocked on a terminal or an open pipe would otherwise
// hold the command until the input ends. A Read given up on leaves its
// goroutine blocked until stdin delivers; the command is ending anyway.
func (e *env) input() io.Reader { return &ctxReader{ctx: e.ctx, r: e.stdin} }

type ctxReader struct {
	ctx     context.Context
	r       io.Reader
	res     chan readResult // the read in flight delivers here
	pending bool            // a read is in flight
	buf     []byte          // read and not yet returned
	err     error           // the read's error, returned once buf is empty
}

type readResult struct {
	b   []byte
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if len(c.buf) == 0 && c.err == nil {
		if !c.pending {
			if c.res == nil {
				c.res = make(chan readResult, 1)
			}
			c.pending = true
			go func() {
				b := make([]byte, 32<<10)
				n, err := c.r.Read(b)
				c.res <- readResult{b[:n], err}
			}()
		}
		select {
		case r := <-c.res:
			c.pending = false
			c.buf, c.err = r.b, r.err
		case <-c.ctx.Done():
			return 0, c.ctx.Err() // run reports it as "interrupted"
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	if n == 0 && len(p) > 0 && c.err != nil {
		return 0, c.err
	}
	return n, nil
}
