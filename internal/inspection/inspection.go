// Package inspection runs messaging.Inspector over a list of topics, or
// over every topic a messaging.TopicLister lists: what msgctl and the
// exporters share.
package inspection

import (
	"context"
	"fmt"
	"slices"

	"github.com/msgkit/messaging"
)

// Result is one topic's inspection: Stats, or the error Inspect returned.
type Result struct {
	Topic string
	Stats messaging.TopicStats
	Err   error
}

// Topics returns topics when there are any (each once, in the order
// given), else the names insp lists. It fails with an error wrapping
// messaging.ErrUnsupported when insp is no messaging.TopicLister.
func Topics(ctx context.Context, insp messaging.Inspector, topics []string) ([]string, error) {
	if len(topics) > 0 {
		var out []string
		for _, t := range topics {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	l, ok := insp.(messaging.TopicLister)
	if !ok {
		return nil, fmt.Errorf("messaging: list topics: %w: this client cannot list its broker's topics", messaging.ErrUnsupported)
	}
	names, err := l.Topics(ctx)
	if err != nil {
		return nil, fmt.Errorf("messaging: list topics: %w", err)
	}
	return names, nil
}

// Inspect inspects each topic in turn, in the order given; one topic's
// error does not stop the others. It stops early, leaving the rest with
// ctx's error, once ctx is done.
func Inspect(ctx context.Context, insp messaging.Inspector, topics []string) []Result {
	out := make([]Result, len(topics))
	for i, t := range topics {
		out[i].Topic = t
		if err := ctx.Err(); err != nil {
			out[i].Err = err
			continue
		}
		out[i].Stats, out[i].Err = insp.Inspect(ctx, t)
	}
	return out
}
