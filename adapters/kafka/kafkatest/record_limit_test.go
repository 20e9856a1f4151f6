package kafkatest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// createLimitedTopic creates topic with one partition and the topic
// config max.message.bytes=limit (the broker's limit of one record batch).
func createLimitedTopic(t *testing.T, topic string, limit int) {
	t.Helper()
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(kafkatest.Broker.Endpoint(t), ",")...), Timeout: 30 * time.Second}
	resp, err := admin.CreateTopics(t.Context(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafkago.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(limit)}},
	}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestRecordOverTopicLimitFailsAlone: on a topic whose max.message.bytes
// is below the adapter's request bound, the broker refuses a request
// holding too many bytes as a whole. A record that is too large on its own
// fails alone with ErrMessageTooLarge, and the records sent with it (of
// the same PublishAsync batch, or of one Publish) that fit are written, in
// order.
func TestRecordOverTopicLimitFailsAlone(t *testing.T) {
	c := kafkatest.Open(t)
	topic := integration.UniqueName(t, "toplimit")
	createLimitedTopic(t, topic, 4096)
	deleteTopic(t, c, topic)

	// Publish: 40 records of about 200 bytes each fit the limit alone but
	// not together.
	var msgs []*messaging.Message
	for i := range 40 {
		msgs = append(msgs, &messaging.Message{Key: "k", Payload: []byte(strings.Repeat("x", 150) + strconv.Itoa(i))})
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Errorf("Publish of 40 records that each fit the topic's limit: %v, want nil", err)
	}

	// PublishAsync: small records around one over the limit, one lane (one
	// key), so they share batches.
	const n = 41
	big := n / 2
	var mu sync.Mutex
	results := make(map[int][]error)
	for i := range n {
		p := []byte(strings.Repeat("y", 150) + strconv.Itoa(i))
		if i == big {
			p = make([]byte, 8000)
		}
		c.PublishAsync(t.Context(), topic, &messaging.Message{Key: "k", Payload: p}, func(_ *messaging.Message, err error) {
			mu.Lock()
			results[i] = append(results[i], err)
			mu.Unlock()
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	failed := 0
	for i := range n {
		errs := results[i]
		if len(errs) != 1 {
			t.Fatalf("message %d: %d results %v, want 1", i, len(errs), errs)
		}
		switch {
		case i == big && !errors.Is(errs[0], messaging.ErrMessageTooLarge):
			t.Errorf("message %d (8000 bytes): %v, want ErrMessageTooLarge", i, errs[0])
		case i != big && errs[0] != nil:
			failed++
			if failed == 1 {
				t.Errorf("message %d (small): %v, want nil", i, errs[0])
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d small messages failed with the one over the limit", failed, n-1)
	}

	// The topic holds the small records, each once, in publish order.
	var want []string
	for _, m := range msgs {
		want = append(want, string(m.Payload))
	}
	for i := range n {
		if i != big {
			want = append(want, strings.Repeat("y", 150)+strconv.Itoa(i))
		}
	}
	got := make(chan string, 2*len(want))
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("record %d of the topic: %.12q...%q, want ...%q", i, g, g[len(g)-3:], w[len(w)-3:])
			}
		case <-ctx.Done():
			t.Fatalf("read %d of %d records", i, len(want))
		}
	}
}

// TestWriterRecordOverTopicLimit: with WithWriter, a record the broker
// refuses as too large fails with messaging.ErrMessageTooLarge in the
// PublishError, as with the adapter's own producer.
func TestWriterRecordOverTopicLimit(t *testing.T) {
	brokers := strings.Split(kafkatest.Broker.Endpoint(t), ",")
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll}
	t.Cleanup(func() { _ = w.Close() })
	c, err := kafka.New(brokers, kafka.WithWriter(w))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "wlimit")
	createLimitedTopic(t, topic, 4096)
	deleteTopic(t, c, topic)
	err = c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("small")}, &messaging.Message{Payload: []byte(strings.Repeat("x", 8192))})
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Errs) != 2 {
		t.Fatalf("Publish of a record over the topic's limit: %v, want a PublishError for 2 records", err)
	}
	for i, e := range pe.Errs {
		if e != nil && !errors.Is(e, messaging.ErrMessageTooLarge) {
			t.Errorf("record %d: %v, want messaging.ErrMessageTooLarge", i, e)
		}
	}
	if !errors.Is(pe.Errs[1], messaging.ErrMessageTooLarge) {
		t.Errorf("the record over the limit: %v, want messaging.ErrMessageTooLarge", pe.Errs[1])
	}
}
