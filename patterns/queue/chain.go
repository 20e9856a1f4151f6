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
func (cfg *config) chain(pub messaging.Publisher, topic string, h messaging.Handler) (messaging.Handler, string, error) {
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
		mws = append(mws, deadletter.New(pub, dlTopic))
	}
	mws = append(mws, retry.New(retry.MaxAttempts(cfg.maxAttempts), retry.Backoff(cfg.initial, cfg.maxBackoff)))
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
