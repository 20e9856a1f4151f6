package queue

import (
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/retry"
)

// chain wraps h, outermost first, with the dead-letter layer (unless
// disabled), the retry layer in broker mode (a failed attempt is redelivered
// by the adapter after an exponential backoff; the last one is final), and
// the user's middleware.
//
// On an adapter without Groups (core NATS) nothing redelivers a failed
// message, so the retry layer runs in process: it calls the handler again
// itself, waiting the backoff in between.
func (cfg *config) chain(c messaging.Client, topic string, h messaging.Handler) (messaging.Handler, string, error) {
	var mws []messaging.Middleware
	dlTopic := ""
	if !cfg.noDeadLetter {
		dlTopic = cfg.dlTopic
		if dlTopic == "" {
			dlTopic = DeadLetterTopic(topic)
		}
		if err := messaging.ValidateName(dlTopic); err != nil {
			return nil, "", fmt.Errorf("queue: dead-letter topic: %w", err)
		}
		mws = append(mws, deadletter.New(c, dlTopic))
	}
	retryOpts := []retry.Option{retry.MaxAttempts(cfg.maxAttempts), retry.Backoff(cfg.initial, cfg.maxBackoff)}
	if !c.Capabilities().Groups {
		retryOpts = append(retryOpts, retry.InProcess())
	}
	mws = append(mws, retry.New(retryOpts...))
	mws = append(mws, cfg.mws...)
	out, err := middleware.Chain(h, mws...)
	if err != nil {
		return nil, "", fmt.Errorf("queue: %w", err)
	}
	return out, dlTopic, nil
}

// DeadLetterTopic is the default dead-letter topic of a queue topic:
// topic + ".dlq".
func DeadLetterTopic(topic string) string { return topic + ".dlq" }
