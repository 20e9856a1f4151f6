package otel

import (
	"context"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/utf8text"
)

var _ messaging.AsyncPublisher = (*publisher)(nil)

// PublishAsync publishes through the wrapped Publisher's PublishAsync (or
// its Publish when it has none; see messaging.PublishAsync) with a producer
// span per message, from PublishAsync to the message's result, whose
// context is written into a copy of the message's headers (as Publish
// does). The caller's message gets the ID and Time the publisher set before
// done is called with it.
func (t *publisher) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	if msg == nil {
		messaging.PublishAsync(ctx, t.p, topic, msg, done) // the publisher reports it
		return
	}
	ctx, span := t.startSend(ctx, topic, 1)
	cp := *msg
	cp.Header = t.headers(ctx, msg.Header)
	messaging.PublishAsync(ctx, t.p, topic, &cp, func(m *messaging.Message, err error) {
		msg.ID, msg.Time = cp.ID, cp.Time
		span.SetAttributes(AttrMessageID.String(utf8text.Valid(msg.ID)))
		if err != nil {
			failed(span, err)
		}
		span.End()
		if done != nil {
			done(msg, err)
		}
	})
}

// Flush flushes the wrapped Publisher (see messaging.Flush).
func (t *publisher) Flush(ctx context.Context) error { return messaging.Flush(ctx, t.p) }
