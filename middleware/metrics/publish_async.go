package metrics

import (
	"context"
	"time"

	"github.com/msgkit/messaging"
)

var _ messaging.AsyncPublisher = (*publisher)(nil)

// PublishAsync publishes through the wrapped Publisher's PublishAsync (or
// its Publish when it has none; see messaging.PublishAsync) and records
// each message's result and its time from PublishAsync to the result, as
// for a Publish call of one message, before calling done.
func (t *publisher) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	start := time.Now()
	label := topicLabel(topic)
	messaging.PublishAsync(ctx, t.p, topic, msg, func(m *messaging.Message, err error) {
		t.m.pubDuration.WithLabelValues(label).Observe(time.Since(start).Seconds())
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		t.m.published.WithLabelValues(label, outcome).Inc()
		if done != nil {
			done(m, err)
		}
	})
}

// Flush flushes the wrapped Publisher (see messaging.Flush).
func (t *publisher) Flush(ctx context.Context) error { return messaging.Flush(ctx, t.p) }
