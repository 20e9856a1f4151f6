package kafkatest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestCallerIDs: with ids=caller, Publish and PublishAsync leave a message
// without an ID as it is and write it as a record without headers; a
// consumer gets "topic/partition/offset" as its ID and the record
// timestamp as Time; a caller's ID and Time still travel.
func TestCallerIDs(t *testing.T) {
	c := kafkatest.Open(t, "ids=caller")
	ctx := t.Context()
	topic := integration.UniqueName(t, "callerids")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	before := time.Now().Truncate(time.Millisecond)
	integration.PublishWithoutIDs(t, c, topic)
	after := time.Now()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC) // Kafka keeps milliseconds
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "mine-1", Time: at, Payload: []byte("mine")}); err != nil {
		t.Fatal(err)
	}

	// What the broker stored (the topic has one partition).
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: strings.Split(kafkatest.Broker.Endpoint(t), ","), Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond,
	})
	t.Cleanup(func() { _ = r.Close() })
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type expect struct {
		id string
		at func(time.Time) bool // whether a delivered Time is right
	}
	want := map[string]expect{}
	for range 3 {
		rec, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatal(err)
		}
		p := string(rec.Value)
		switch p {
		case "bare", "async":
			if len(rec.Headers) != 0 {
				t.Errorf("record %q has headers %v, want none", p, rec.Headers)
			}
			want[p] = expect{topic + "/0/" + strconv.FormatInt(rec.Offset, 10), func(got time.Time) bool {
				return !got.Before(before) && !got.After(after) // the record timestamp: when it was sent
			}}
		case "mine":
			want[p] = expect{"mine-1", at.Equal}
		}
	}

	// RedeliveryKeepsID, in the conformance suite, checks that a
	// redelivery keeps the ID and Time.
	for _, m := range integration.ConsumeEarliest(t, c, topic, 3) {
		w, ok := want[string(m.Payload)]
		if !ok || m.ID != w.id || !w.at(m.Time) {
			t.Errorf("%q delivered as ID %q at %v, want ID %q", m.Payload, m.ID, m.Time, w.id)
		}
	}
}

// TestConformanceCallerIDs runs the suite with ids=caller (WithCallerIDs):
// Publish assigns no ID nor Time.
func TestConformanceCallerIDs(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	integration.RunConformance(t, integration.Harness{
		Name: "kafka-caller-ids",
		Open: func(t testing.TB) messaging.Client { return kafkatest.Open(t, "ids=caller") },
	})
}
