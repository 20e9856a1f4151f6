package metrics_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/metrics"
)

// Prometheus counters and histograms of handled messages, by topic and
// outcome; register them on your registry and serve it as usual.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		panic(err)
	}
	h := m.Middleware()(func(_ context.Context, msg *messaging.Message) error {
		if msg.ID == "bad" {
			return errors.New("boom")
		}
		return nil
	})
	for _, id := range []string{"a", "b", "bad"} {
		_ = h(context.Background(), &messaging.Message{ID: id, Topic: "orders", Attempt: 1})
	}
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			if c := s.GetCounter(); c != nil {
				labels := ""
				for _, l := range s.GetLabel() {
					labels += " " + l.GetName() + "=" + l.GetValue()
				}
				fmt.Printf("%s%s %v\n", f.GetName(), labels, c.GetValue())
			}
		}
	}
	// Output:
	// messaging_handled_total group= outcome=ack topic=orders 2
	// messaging_handled_total group= outcome=retry topic=orders 1
}
