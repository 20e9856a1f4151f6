package scenario

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/stream"
)

// Sale is one event on the dashboard's stream.
type Sale struct {
	Region string `json:"region"`
	Cents  int    `json:"cents"`
}

// Totals is the dashboard's running aggregate.
type Totals struct {
	Sales    int            `json:"sales"`
	Cents    int            `json:"cents"`
	ByRegion map[string]int `json:"by_region"`
}

// String formats the totals for the dashboard's output, regions sorted.
func (t Totals) String() string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(t.ByRegion)) {
		parts = append(parts, fmt.Sprintf("%s=%d", r, t.ByRegion[r]))
	}
	return fmt.Sprintf("%d sales, $%d.%02d (%s)", t.Sales, t.Cents/100, t.Cents%100, strings.Join(parts, " "))
}

func applySale(t Totals, s Sale, _ *messaging.Message) Totals {
	by := maps.Clone(t.ByRegion)
	if by == nil {
		by = map[string]int{}
	}
	by[s.Region]++
	return Totals{Sales: t.Sales + 1, Cents: t.Cents + s.Cents, ByRegion: by}
}

// Dashboard streams sales into a running aggregate (a projection) printed as
// it changes; stops it, publishes more sales while it is down, and restarts
// it from its checkpoint: it resumes where it stopped and counts every sale
// exactly once. store keeps the checkpoint (nil: in memory). It needs an
// adapter with replay, and fails when the final totals are wrong.
func Dashboard(ctx context.Context, env *Env, store checkpoint.Store) error {
	const tag = "dashboard"
	if _, err := stream.AsStream(env.Client); err != nil {
		return fmt.Errorf("scenario: dashboard needs a log-backed adapter (Capabilities().Replay): %w", err)
	}
	topic := env.Topic("sales")
	defer env.Cleanup()
	if store == nil {
		store = &checkpoint.Memory{}
	}
	first, second := 12, 8
	if env.Short {
		first, second = 6, 4
	}
	regions := []string{"eu", "us", "apac"}
	sell := func(from, n int) error {
		for i := from; i < from+n; i++ {
			s := Sale{Region: regions[i%len(regions)], Cents: 1000 + 250*(i%4)}
			m, err := encodeJSON(s)
			if err != nil {
				return err
			}
			if err := env.Client.Publish(ctx, topic, m); err != nil {
				return fmt.Errorf("scenario: dashboard: publish sale: %w", err)
			}
		}
		return nil
	}
	want := Totals{ByRegion: map[string]int{}}
	for i := range first + second {
		want = applySale(want, Sale{Region: regions[i%len(regions)], Cents: 1000 + 250*(i%4)}, nil)
	}

	// run runs the projection until it has applied `until` sales in total,
	// printing each update, then stops it (its checkpoint is saved).
	run := func(until int) (Totals, error) {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		proj := &stream.Projection[Sale, Totals]{
			Name:    env.Group("dashboard"),
			Topic:   topic,
			Initial: Totals{ByRegion: map[string]int{}},
			Apply:   applySale,
			Store:   store,
			OnUpdate: func(t Totals, m *messaging.Message) {
				env.Printf(tag, "  offset %-4s %s", m.Offset, t)
				if t.Sales >= until {
					stop()
				}
			},
		}
		if cp, ok, err := store.Load(ctx, proj.Name); err == nil && ok {
			env.Printf(tag, "restarting from checkpoint after offset %s", cp.Position)
		}
		timer := time.AfterFunc(30*time.Second, stop)
		defer timer.Stop()
		if err := proj.Run(rctx, env.Client); err != nil && !errors.Is(err, context.Canceled) {
			return Totals{}, err
		}
		t, _ := proj.State()
		if t.Sales < until {
			return t, fmt.Errorf("scenario: dashboard: projection stopped at %d sales, want %d", t.Sales, until)
		}
		return t, nil
	}

	if err := sell(0, first); err != nil {
		return err
	}
	env.Printf(tag, "published %d sales; starting the dashboard", first)
	if _, err := run(first); err != nil {
		return err
	}
	env.Printf(tag, "dashboard stopped; %d more sales arrive while it is down", second)
	if err := sell(first, second); err != nil {
		return err
	}
	got, err := run(first + second)
	if err != nil {
		return err
	}
	if got.String() != want.String() {
		return fmt.Errorf("scenario: dashboard: totals %v, want %v", got, want)
	}
	env.Printf(tag, "final: %s: every sale counted exactly once across the restart", got)
	if env.Short {
		return nil
	}

	// Live: sales keep coming for a few seconds; the dashboard follows them
	// as they are published (from its checkpoint again).
	const live = 10
	env.Printf(tag, "going live: %d more sales, one every 300ms", live)
	errc := make(chan error, 1)
	go func() {
		t := time.NewTicker(300 * time.Millisecond) // paces the demo's producer
		defer t.Stop()
		for i := range live {
			select {
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			case <-t.C:
			}
			if err := sell(first+second+i, 1); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got, err = run(first + second + live)
	if perr := <-errc; perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	env.Printf(tag, "live final: %s", got)
	return nil
}
