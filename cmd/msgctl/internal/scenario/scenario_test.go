package scenario_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/examples/scenario"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// TestScenarios runs every scenario in short mode on every backend: the
// examples' CI run. Each scenario checks its own outcome.
func TestScenarios(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		for _, sc := range []struct {
			name string
			run  func(context.Context, *scenario.Env) error
		}{
			{"checkout", scenario.Checkout},
			{"fanout", scenario.Fanout},
			{"dashboard", func(ctx context.Context, e *scenario.Env) error {
				store, err := checkpoint.NewDir(t.TempDir())
				if err != nil {
					return err
				}
				return scenario.Dashboard(ctx, e, store)
			}},
			{"apisync", func(ctx context.Context, e *scenario.Env) error { return scenario.APISync(ctx, e, nil) }},
		} {
			t.Run(sc.name, func(t *testing.T) {
				c := h.Client(t)
				var out bytes.Buffer
				env := &scenario.Env{Client: c, Out: &out, Short: true, Prefix: integration.UniqueName(t, "ex")}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				defer cancel()
				err := sc.run(ctx, env)
				t.Log("\n" + out.String())
				if errors.Is(err, messaging.ErrUnsupported) && !c.Capabilities().Replay {
					t.Skipf("%s: %v", h.Name, err)
				}
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestExamplesRun builds each example and runs it in short mode on the
// embedded broker, as a user would with go run.
func TestExamplesRun(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"checkout", "fanout", "dashboard", "apisync"} {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(dir, name)
			build := exec.Command("go", "build", "-o", bin, "../"+name)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-short", "-checkpoint", t.TempDir())
			cmd.Env = append(os.Environ(), "MESSAGING_URL=mem://")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s -short: %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), "["+name+"]") {
				t.Errorf("no narration in output:\n%s", out)
			}
			// A usage error exits 2.
			bad := exec.CommandContext(ctx, bin, "-no-such-flag")
			if err := bad.Run(); err == nil || bad.ProcessState.ExitCode() != 2 {
				t.Errorf("bad flag: %v, want exit status 2", err)
			}
		})
	}
}
