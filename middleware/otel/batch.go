package otel

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/utf8text"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// AttrBatchFailed is the number of messages of a batch whose result was an
// error, set by NewBatch's span when there is one. The semantic conventions
// do not define it.
const AttrBatchFailed = attribute.Key("messaging.batch.failed_message_count")

// NewBatch returns the tracing middleware for a messaging.BatchHandler (of
// BatchConsumer.SubscribeBatch, batch.Subscribe or poll.Drain), with the
// same options as New. It applies opts in order and returns the first
// error.
//
// Each call of the handler runs in one consumer span, as the OpenTelemetry
// messaging semantic conventions ask for the processing of a batch:
//
//   - named "process <topic>" when every message has the same topic, else
//     "process"; messaging.operation.type and messaging.operation.name are
//     "process";
//   - messaging.destination.name (and messaging.consumer.group.name) are
//     set when every message has the same topic (group);
//     messaging.batch.message_count is the number of messages, left out
//     for a batch of one, as the conventions ask;
//   - the span is a child of the handler's context, not of a message's
//     producer span: it has a link to the context each message carries in
//     its headers (read with the configured propagator; a message without
//     one has no link), with the message's messaging.message.id and
//     messaging.message.delivery_attempt as the link's attributes, in the
//     order of the messages;
//   - when some messages failed, the span's status is Error (its
//     description counts them and gives the first failure),
//     AttrBatchFailed is their number and error.type is ErrorType of the
//     first failure; each failure is recorded as an exception event with
//     the message's ID and its error.type. A panic in the handler, or a
//     result slice of the wrong length, fails every message (as the
//     adapter treats it): it is recorded once, and the wrapped handler
//     returns that error for every message (wrapping
//     messaging.ErrHandlerPanic for a panic) instead of panicking.
//
// The results are otherwise returned unchanged.
//
// The context the handler gets is the one of the batch: its span is the
// batch's span (spans the handler starts are children of it, and
// trace.SpanFromContext(ctx) adds events to it), the same for every message
// of the batch. It does not hold any message's trace context or baggage,
// which a batch of messages from several traces cannot have one of. To
// continue a message's trace, say with a span per message, extract its
// context from msg.Header with the same propagator, for example
// propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(msg.Header)),
// and start the span there (linked to, or as a child of, the batch's span as
// the application prefers).
func NewBatch(opts ...Option) (func(messaging.BatchHandler) messaging.BatchHandler, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	tracer := c.tp.Tracer(ScopeName)
	return func(next messaging.BatchHandler) messaging.BatchHandler {
		return func(ctx context.Context, msgs []*messaging.Message) []error {
			ctx, span := c.startBatch(ctx, tracer, msgs)
			defer span.End()
			errs, all := layer.CallBatch(ctx, next, msgs)
			batchFailed(span, msgs, errs, all)
			return errs
		}
	}, nil
}

// startBatch starts the consumer span of processing msgs.
func (c *config) startBatch(ctx context.Context, tracer trace.Tracer, msgs []*messaging.Message) (context.Context, trace.Span) {
	topic, group, sameTopic, sameGroup := "", "", true, true
	links := make([]trace.Link, 0, len(msgs))
	for i, m := range msgs {
		if i == 0 {
			topic, group = m.Topic, m.Group
		}
		sameTopic = sameTopic && m.Topic == topic
		sameGroup = sameGroup && m.Group == group
		sc := trace.SpanContextFromContext(c.prop.Extract(context.Background(), propagation.MapCarrier(m.Header)))
		if sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
				AttrMessageID.String(utf8text.Valid(m.ID)), AttrAttempt.Int(m.Attempt),
			}})
		}
	}
	name := "process"
	kv := []attribute.KeyValue{AttrOperation.String("process"), AttrOperationName.String("process")}
	if sameTopic && len(msgs) > 0 {
		topic := utf8text.Valid(topic)
		name += " " + topic
		kv = append(kv, AttrDestination.String(topic))
	}
	if sameGroup && group != "" {
		kv = append(kv, AttrGroup.String(utf8text.Valid(group)))
	}
	if len(msgs) != 1 {
		kv = append(kv, AttrBatchCount.Int(len(msgs)))
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(c.attrs(kv...)...), trace.WithLinks(links...))
}

// batchFailed records on span the failures among the results errs of
// msgs; all is the error that failed the whole batch, if one did.
func batchFailed(span trace.Span, msgs []*messaging.Message, errs []error, all error) {
	failed := 0
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if first == nil {
			first = err
		}
		if all == nil {
			recordError(span, err, AttrMessageID.String(utf8text.Valid(msgs[i].ID)), AttrErrorType.String(ErrorType(err)))
		}
	}
	if all != nil {
		recordError(span, all, AttrErrorType.String(ErrorType(all)))
	}
	if failed == 0 {
		return
	}
	span.SetStatus(codes.Error, utf8text.Valid(fmt.Sprintf("%d of %d messages failed, the first: %v", failed, len(msgs), first)))
	span.SetAttributes(AttrBatchFailed.Int(failed), AttrErrorType.String(ErrorType(first)))
}
