package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/msgkit/messaging"
)

const benchHeader = "msgctl-bench-sent"

func init() {
	register(command{name: "bench", order: 80, cmd: &benchCmd{},
		help: "Measure publish-to-consume throughput and latency percentiles."})
}

type benchCmd struct {
	Count       int           `help:"Messages to publish." default:"10000"`
	Size        int           `help:"Payload bytes." default:"256"`
	Publishers  int           `help:"Concurrent publishers." default:"4"`
	Batch       int           `help:"Messages per Publish call." default:"1"`
	Concurrency int           `help:"Consumer handlers run at once." default:"4"`
	Timeout     time.Duration `help:"Give up after this long." default:"5m"`
	Quiet       bool          `help:"No progress bar."`
}

func (c *benchCmd) Help() string {
	return "Publishes --count messages to a fresh topic with --publishers concurrent publishers while\n" +
		"one consumer group consumes them, then prints throughput and the publish-to-handler latency\n" +
		"percentiles. The topic is deleted afterwards. A progress bar goes to stderr."
}

func (c *benchCmd) Run(e *env) error {
	count, size, pubs, batch, conc := &c.Count, &c.Size, &c.Publishers, &c.Batch, &c.Concurrency
	quiet := &c.Quiet
	if *count < 1 || *size < 0 || *pubs < 1 || *batch < 1 || *conc < 1 || c.Timeout <= 0 {
		return usagef("--count, --publishers, --batch and --concurrency must be >= 1, --size >= 0, --timeout > 0")
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	client, err := e.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	rawURL, _ := e.globals.brokerURL()

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	topic := "msgctl-bench-" + hex.EncodeToString(rnd[:])
	group := topic + ".g"
	defer func() {
		if d, ok := client.(messaging.TopicDeleter); ok {
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer dcancel()
			_ = d.DeleteTopic(dctx, topic)
		}
	}()
	if err := messaging.Provision(ctx, client, topic, group); err != nil {
		return err
	}

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, *count)
		seen      = make(map[string]struct{}, *count)
		consumed  atomic.Int64
		allIn     = make(chan struct{})
		published atomic.Int64
	)
	handler := func(_ context.Context, m *messaging.Message) error {
		sent, err := strconv.ParseInt(m.Header[benchHeader], 10, 64)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if _, dup := seen[m.ID]; dup {
			return nil
		}
		seen[m.ID] = struct{}{}
		if err == nil {
			latencies = append(latencies, now.Sub(time.Unix(0, sent)))
		}
		if consumed.Add(1) == int64(*count) {
			close(allIn)
		}
		return nil
	}
	sub, err := client.Subscribe(ctx, topic, handler, messaging.Group(group), messaging.Concurrency(*conc))
	if err != nil {
		return err
	}
	defer sub.Close()

	payload := make([]byte, *size)
	_, _ = rand.Read(payload)
	fmt.Fprintf(e.stderr, "bench: %d messages of %d bytes to %s on %s (%d publishers, batch %d, %d handlers)\n",
		*count, *size, topic, redacted(rawURL), *pubs, *batch, *conc)

	stopBar := progress(e.stderr, *quiet, *count, &published, &consumed)
	start := time.Now()
	var pubErr error
	var pubErrOnce sync.Once
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *pubs {
		wg.Go(func() {
			for {
				first := next.Add(int64(*batch)) - int64(*batch)
				if first >= int64(*count) || ctx.Err() != nil {
					return
				}
				n := min(int64(*batch), int64(*count)-first)
				msgs := make([]*messaging.Message, n)
				for i := range msgs {
					msgs[i] = &messaging.Message{Payload: payload, Header: messaging.Header{benchHeader: strconv.FormatInt(time.Now().UnixNano(), 10)}}
				}
				if err := client.Publish(ctx, topic, msgs...); err != nil {
					pubErrOnce.Do(func() { pubErr = err })
					cancel()
					return
				}
				published.Add(n)
			}
		})
	}
	wg.Wait()
	pubDur := time.Since(start)
	if pubErr != nil {
		stopBar()
		return fmt.Errorf("publish: %w", pubErr)
	}
	select {
	case <-allIn:
	case <-ctx.Done():
		stopBar()
		return fmt.Errorf("consumed %d of %d before giving up: %w", consumed.Load(), *count, ctx.Err())
	case <-sub.Done():
		stopBar()
		return fmt.Errorf("subscription ended after %d of %d: %v", consumed.Load(), *count, sub.Err())
	}
	total := time.Since(start)
	stopBar()

	mu.Lock()
	lat := slices.Clone(latencies)
	mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\t\n", k, v) }
	row("metric", "value")
	row("messages", strconv.Itoa(*count))
	row("payload", fmt.Sprintf("%d B", *size))
	row("publish time", pubDur.Round(time.Millisecond).String())
	row("publish rate", fmt.Sprintf("%.0f msg/s", float64(*count)/pubDur.Seconds()))
	row("end-to-end time", total.Round(time.Millisecond).String())
	row("consume rate", fmt.Sprintf("%.0f msg/s", float64(*count)/total.Seconds()))
	row("throughput", fmt.Sprintf("%.2f MB/s", float64(*count**size)/total.Seconds()/1e6))
	for _, p := range []struct {
		name string
		q    float64
	}{{"latency p50", .50}, {"latency p90", .90}, {"latency p99", .99}, {"latency p99.9", .999}} {
		row(p.name, pct(p.q).Round(time.Microsecond).String())
	}
	if len(lat) > 0 {
		row("latency max", lat[len(lat)-1].Round(time.Microsecond).String())
	}
	return tw.Flush()
}

// progress draws a progress bar on w until the returned stop is called.
func progress(w io.Writer, quiet bool, total int, published, consumed *atomic.Int64) (stop func()) {
	if quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	draw := func() {
		p, c := published.Load(), consumed.Load()
		const width = 30
		filled := int(float64(width) * float64(c) / float64(total))
		fmt.Fprintf(w, "\r[%s%s] published %d/%d consumed %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p, total, c, total)
	}
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw()
				fmt.Fprintln(w)
				return
			case <-t.C:
				draw()
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
