// Package logging writes one structured log record (log/slog) per handled
// delivery, and optionally per publish.
//
// Levels: a success at Debug (WithSuccessLevel), a failure that will be
// retried at Warn, a permanent failure at Error (an error marked
// messaging.Permanent, or the last attempt the subscription's MaxAttempts
// allows, which the adapter gives up), a message dead-lettered by a layer
// inside at Warn (with the dead-letter topic), a skipped duplicate at Debug.
// Records carry topic, group, id, key, attempt, duration and error. Put the
// layer outside deadletter and dedupe to see those outcomes.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// Option configures New and Publisher. An Option given an invalid value
// makes them fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*config) error

type config struct {
	success slog.Level
}

// WithSuccessLevel sets the level of records for successes and duplicates
// (default slog.LevelDebug). Every level is valid.
func WithSuccessLevel(l slog.Level) Option {
	return func(c *config) error { c.success = l; return nil }
}

// newConfig checks the logger l and applies opts in order; it returns the
// first error.
func newConfig(fn string, l *slog.Logger, opts []Option) (config, error) {
	c := config{success: slog.LevelDebug}
	if l == nil {
		return config{}, fmt.Errorf("logging: %s: nil logger (pass slog.Default() for the default one): %w", fn, messaging.ErrInvalidOption)
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// New returns the logging middleware writing to l. A nil l is invalid (an
// error wrapping messaging.ErrInvalidOption); opts are applied in order and
// the first error is returned.
func New(l *slog.Logger, opts ...Option) (messaging.Middleware, error) {
	c, err := newConfig("New", l, opts)
	if err != nil {
		return nil, err
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Logging})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			log := l
			ctx, report := layer.WithReport(ctx)
			start := time.Now()
			err := layer.Call(ctx, next, msg)
			if err == nil && report.DeadLetterTopic == "" && !log.Enabled(ctx, c.success) {
				return nil
			}
			attrs := []slog.Attr{
				slog.String("topic", msg.Topic), slog.String("group", msg.Group), slog.String("id", msg.ID),
				slog.String("key", msg.Key), slog.Int("attempt", msg.Attempt), slog.Duration("duration", time.Since(start)),
			}
			level, text := c.success, "message handled"
			switch {
			case err == nil && report.DeadLetterTopic != "":
				level, text = slog.LevelWarn, "message dead-lettered"
				attrs = append(attrs, slog.String("dead_letter_topic", report.DeadLetterTopic))
			case err == nil && report.Duplicate:
				text = "duplicate message skipped"
			case err == nil:
			case layer.GivenUp(ctx, msg, err):
				level, text = slog.LevelError, "message failed permanently"
			default:
				level, text = slog.LevelWarn, "message failed, will be retried"
				if d, ok := messaging.RetryDelay(err); ok {
					attrs = append(attrs, slog.Duration("retry_after", d))
				}
			}
			if err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			log.LogAttrs(ctx, level, text, attrs...)
			return err
		}
	}, nil
}

// Publisher returns p logging each Publish call to l: at Debug
// (WithSuccessLevel) when it succeeds, at Error with the error when it
// fails. Close returns nil and does not close p, which the caller owns. A
// nil p or l is invalid.
func Publisher(p messaging.Publisher, l *slog.Logger, opts ...Option) (messaging.Publisher, error) {
	if p == nil {
		return nil, fmt.Errorf("logging: Publisher: nil publisher: %w", messaging.ErrInvalidOption)
	}
	c, err := newConfig("Publisher", l, opts)
	if err != nil {
		return nil, err
	}
	return &publisher{p: p, l: l, c: c}, nil
}

type publisher struct {
	p messaging.Publisher
	l *slog.Logger
	c config
}

func (t *publisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	log := t.l
	start := time.Now()
	err := t.p.Publish(ctx, topic, msgs...)
	attrs := []slog.Attr{slog.String("topic", topic), slog.Int("messages", len(msgs)), slog.Duration("duration", time.Since(start))}
	if len(msgs) == 1 && msgs[0] != nil {
		attrs = append(attrs, slog.String("id", msgs[0].ID))
	}
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "publish failed", append(attrs, slog.String("error", err.Error()))...)
		return err
	}
	log.LogAttrs(ctx, t.c.success, "published", attrs...)
	return nil
}

func (t *publisher) Close() error { return nil }
