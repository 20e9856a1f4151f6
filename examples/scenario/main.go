package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// Flags are the command-line settings every example accepts.
type Flags struct {
	URL        string
	Short      bool
	Checkpoint string // directory for checkpoints; empty: in memory
}

// Store returns the checkpoint store the flags ask for.
func (f Flags) Store() (checkpoint.Store, error) {
	if f.Checkpoint == "" {
		return &checkpoint.Memory{}, nil
	}
	return checkpoint.NewDir(f.Checkpoint)
}

// Main is the body of an example's main function: it parses the flags
// (-url, -short, -checkpoint, -timeout), opens the broker, runs the
// scenario and exits with status 0 on success, 1 on failure, 2 on a usage
// error. The adapters must be registered by the caller (blank imports).
func Main(name, about string, run func(ctx context.Context, env *Env, f Flags) error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f Flags
	def := os.Getenv("MESSAGING_URL")
	if def == "" {
		def = "mem://"
	}
	fs.StringVar(&f.URL, "url", def, "broker URL (default $MESSAGING_URL, else mem://, the in-process broker)")
	fs.BoolVar(&f.Short, "short", false, "small, quick, self-terminating run (CI)")
	fs.StringVar(&f.Checkpoint, "checkpoint", "", "directory for checkpoints (default: in memory)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./examples/%s [flags]\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	err := func() error {
		client, err := messaging.Open(ctx, f.URL)
		if err != nil {
			return err
		}
		defer client.Close()
		return run(ctx, &Env{Client: client, Out: os.Stdout, Short: f.Short}, f)
	}()
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
