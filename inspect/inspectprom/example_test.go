package inspectprom_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory" // registers mem://
	"github.com/msgkit/messaging/inspect/inspectprom"
)

// Export the backlog of every group of topic orders, as the broker reports
// it, from any client (the README's "Is my consumer keeping up?").
func Example() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://inspectprom-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	// Group billing exists and three orders wait for it.
	if err := messaging.Provision(ctx, client, "orders", "billing"); err != nil {
		panic(err)
	}
	for range 3 {
		if err := client.Publish(ctx, "orders", &messaging.Message{Payload: []byte("order")}); err != nil {
			panic(err)
		}
	}

	collector, err := inspectprom.New(client.(messaging.Inspector), inspectprom.WithTopics("orders"))
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector)

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() == "messaging_group_backlog_messages" {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				fmt.Printf("%s topic=%s group=%s: %v\n", f.GetName(), labels["topic"], labels["group"], m.GetGauge().GetValue())
			}
		}
	}
	// Output:
	// messaging_group_backlog_messages topic=orders group=billing: 3
}
