package logging

import (
	"context"
	"log/slog"
	"time"

	"github.com/msgkit/messaging"
)

var _ messaging.AsyncPublisher = (*publisher)(nil)

// PublishAsync publishes through the wrapped Publisher's PublishAsync (or
// its Publish when it has none; see messaging.PublishAsync) and logs each
// message's result as Publish logs a call of one message, before calling
// done. The log record is written from the goroutine that reports the
// result.
func (t *publisher) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	start := time.Now()
	messaging.PublishAsync(ctx, t.p, topic, msg, func(m *messaging.Message, err error) {
		log := t.l
		attrs := []slog.Attr{slog.String("topic", topic), slog.Int("messages", 1), slog.Duration("duration", time.Since(start))}
		if m != nil {
			attrs = append(attrs, slog.String("id", m.ID))
		}
		if err != nil {
			log.LogAttrs(ctx, slog.LevelError, "publish failed", append(attrs, slog.String("error", err.Error()))...)
		} else {
			log.LogAttrs(ctx, t.c.success, "published", attrs...)
		}
		if done != nil {
			done(m, err)
		}
	})
}

// Flush flushes the wrapped Publisher (see messaging.Flush).
func (t *publisher) Flush(ctx context.Context) error { return messaging.Flush(ctx, t.p) }
