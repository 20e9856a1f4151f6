package queue

import (
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
		dl, err := deadletter.New(c, dlTopic)
		if err != nil {
			return nil, "", err // it carries its prefix
		}
		mws = append(mws, dl)
	}
	retryOpts := []retry.Option{retry.WithMaxAttempts(cfg.maxAttempts), retry.WithBackoff(cfg.initial, cfg.maxBackoff)}
	if !c.Capabilities().Groups {
		retryOpts = append(retryOpts, retry.WithInProcess())
	}
	rt, err := retry.New(retryOpts...)
	if err != nil {
		return nil, "", err // it carries its prefix
	}
	mws = append(mws, rt)
	mws = append(mws, cfg.mws...)
	out, err := middleware.Chain(h, mws...)
	if err != nil {
		return nil, "", err // it carries its prefix
	}
	return out, dlTopic, nil
}

// DeadLetterTopic is the default dead-letter topic of a queue topic:
// topic + ".dlq".
func DeadLetterTopic(topic string) string { return topic + ".dlq" }
