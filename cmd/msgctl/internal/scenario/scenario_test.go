package scenario_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/cmd/msgctl/internal/scenario"
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
