package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/pubsub"
)

// OrderPlaced is the event the shop publishes once per order.
type OrderPlaced struct {
	OrderID string   `json:"order_id"`
	SKUs    []string `json:"skus"`
	Cents   int      `json:"cents"`
}

// Fanout publishes "order placed" events once; four independent subscribers
// (inventory, shipping, email, analytics) each get every event. Then a fifth
// (fraud) subscribes, with no change to the publisher, and gets the events
// published from then on as well. It fails when a subscriber misses an event.
func Fanout(ctx context.Context, env *Env) error {
	const tag = "fanout"
	topic := env.Topic("orders.placed")
	defer env.Cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pub, err := pubsub.NewPublisher[OrderPlaced](env.Client, topic)
	if err != nil {
		return err
	}
	got := newNotifier()
	var mu sync.Mutex
	seen := map[string]map[string]bool{} // subscriber -> order IDs
	subscribe := func(name, reaction string) (messaging.Subscription, error) {
		return pubsub.Subscribe(ctx, env.Client, topic, env.Group(name), func(_ context.Context, e OrderPlaced, _ *messaging.Message) error {
			mu.Lock()
			if seen[name] == nil {
				seen[name] = map[string]bool{}
			}
			first := !seen[name][e.OrderID]
			seen[name][e.OrderID] = true
			mu.Unlock()
			if first {
				env.Printf(tag, "  %-9s %s %s", name+":", reaction, e.OrderID)
				got.add(name+"/"+e.OrderID, 1)
			}
			return nil
		})
	}
	subscribers := []struct{ name, reaction string }{
		{"inventory", "reserved stock for"},
		{"shipping", "booked a courier for"},
		{"email", "sent a confirmation for"},
		{"analytics", "counted revenue of"},
	}
	for _, s := range subscribers {
		sub, err := subscribe(s.name, s.reaction)
		if err != nil {
			return err
		}
		defer sub.Close()
	}
	env.Printf(tag, "4 subscribers, each its own group: %s", names(subscribers))

	publish := func(ids ...string) error {
		for _, id := range ids {
			if _, err := pub.Publish(ctx, id, OrderPlaced{OrderID: id, SKUs: []string{"sku-1", "sku-2"}, Cents: 4200}); err != nil {
				return err
			}
			env.Printf(tag, "published %s once", id)
		}
		return nil
	}
	waitAll := func(subs []string, ids []string) error {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		err := waitFor(wctx, got.sig, func() bool {
			for _, s := range subs {
				for _, id := range ids {
					if got.get(s+"/"+id) == 0 {
						return false
					}
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("scenario: fanout: not every subscriber got %v: %w", ids, err)
		}
		return nil
	}

	first := []string{"order-101", "order-102", "order-103"}
	if err := publish(first...); err != nil {
		return err
	}
	subNames := []string{"inventory", "shipping", "email", "analytics"}
	if err := waitAll(subNames, first); err != nil {
		return err
	}
	env.Printf(tag, "each of the 4 subscribers handled all %d orders", len(first))

	// A new team subscribes. The publisher code above is untouched.
	fraud, err := subscribe("fraud", "scored the risk of")
	if err != nil {
		return err
	}
	defer fraud.Close()
	env.Printf(tag, "a 5th subscriber (fraud) joined; the publisher did not change (a new group starts at the oldest retained event, so on log-based brokers it also catches up on earlier orders)")
	later := []string{"order-104", "order-105"}
	if err := publish(later...); err != nil {
		return err
	}
	if err := waitAll(append(subNames, "fraud"), later); err != nil {
		return err
	}
	env.Printf(tag, "all 5 subscribers handled the %d new orders", len(later))
	return nil
}

func names(subs []struct{ name, reaction string }) string {
	var out []string
	for _, s := range subs {
		out = append(out, s.name)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
