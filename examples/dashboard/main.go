// Live dashboard: sales stream into a running aggregate (a projection over
// the topic's log). The dashboard stops, more sales arrive while it is down,
// and it restarts from its checkpoint: every sale is counted exactly once.
// Needs a log-backed broker (mem, NATS JetStream, Redis Streams, Kafka,
// RabbitMQ with streams=true).
//
//	go run ./examples/dashboard                      # in-process broker
//	go run ./examples/dashboard -url kafka://127.0.0.1:9092 -checkpoint /tmp/dash
//
// This file is self-contained: copy it into your own module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
	"github.com/msgkit/messaging/patterns/stream"

	// Each adapter registers its URL scheme when imported.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// Sale is one event on the stream.
type Sale struct {
	Region string `json:"region"`
	Cents  int    `json:"cents"`
}

// Totals is the dashboard: a running aggregate of the sales.
type Totals struct {
	Sales    int            `json:"sales"`
	Cents    int            `json:"cents"`
	ByRegion map[string]int `json:"by_region"`
}

func main() {
	url := flag.String("url", "mem://", "broker URL")
	dir := flag.String("checkpoint", "", "directory for the checkpoint (default: in memory)")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var store checkpoint.Store = &checkpoint.Memory{}
	if *dir != "" {
		var err error
		if store, err = checkpoint.NewDir(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "dashboard:", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, *url, store, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url string, store checkpoint.Store, out io.Writer) error {
	client, err := messaging.Open(ctx, url)
	if err != nil {
		return err
	}
	defer client.Close()
	topic := fmt.Sprintf("sales-%d", time.Now().UnixNano())
	if d, ok := client.(messaging.TopicDeleter); ok {
		defer d.DeleteTopic(context.WithoutCancel(ctx), topic)
	}
	regions := []string{"eu", "us", "apac"}
	sell := func(from, to int) error {
		for i := from; i < to; i++ {
			m, err := codec.Encode(codec.JSON, Sale{Region: regions[i%3], Cents: 1000 + 250*(i%4)})
			if err != nil {
				return err
			}
			if err := client.Publish(ctx, topic, m); err != nil {
				return err
			}
		}
		return nil
	}

	// dashboard runs the projection until it has counted `until` sales, then
	// stops; the projection saves its checkpoint as it goes.
	dashboard := func(until int) (Totals, error) {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		p := &stream.Projection[Sale, Totals]{
			Name:    topic + "-dashboard",
			Topic:   topic,
			Initial: Totals{ByRegion: map[string]int{}},
			Apply: func(t Totals, s Sale, _ *messaging.Message) Totals {
				by := map[string]int{}
				for k, v := range t.ByRegion {
					by[k] = v
				}
				by[s.Region]++
				return Totals{Sales: t.Sales + 1, Cents: t.Cents + s.Cents, ByRegion: by}
			},
			Store: store,
			OnUpdate: func(t Totals, _ *messaging.Message) {
				if t.Sales >= until {
					stop()
				}
			},
		}
		if err := p.Run(rctx, client); err != nil && !errors.Is(err, context.Canceled) {
			return Totals{}, err
		}
		t, _ := p.State()
		if t.Sales != until {
			return t, fmt.Errorf("dashboard stopped at %d sales, want %d: %w", t.Sales, until, ctx.Err())
		}
		return t, nil
	}

	if err := sell(0, 6); err != nil {
		return err
	}
	t, err := dashboard(6)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dashboard: %d sales, %d cents, by region %v\n", t.Sales, t.Cents, t.ByRegion)
	fmt.Fprintln(out, "dashboard stopped; 4 more sales arrive")
	if err := sell(6, 10); err != nil {
		return err
	}
	t, err = dashboard(10) // resumes from its checkpoint: counts each sale once
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restarted from its checkpoint: %d sales, %d cents, by region %v\n", t.Sales, t.Cents, t.ByRegion)
	return nil
}
