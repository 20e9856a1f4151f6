package inspectotel_test

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/inspect/inspectotel"
)

// Observe the backlog of every group of topic orders, as the broker reports
// it, from a client of any adapter that is a messaging.Inspector. A program
// gives its MeterProvider (or none: the global one); here a manual reader
// collects once.
func ExampleRegister() {
	ctx := context.Background()
	client, err := memory.New()
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

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	reg, err := inspectotel.Register(client, inspectotel.WithMeterProvider(mp), inspectotel.WithTopics("orders"))
	if err != nil {
		panic(err)
	}
	defer reg.Unregister()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "messaging.consumer.group.backlog" {
				continue
			}
			for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				topic, _ := p.Attributes.Value("messaging.destination.name")
				group, _ := p.Attributes.Value("messaging.consumer.group.name")
				fmt.Printf("%s topic=%s group=%s: %d\n", m.Name, topic.AsString(), group.AsString(), p.Value)
			}
		}
	}
	// Output:
	// messaging.consumer.group.backlog topic=orders group=billing: 3
}
