package poll_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/poll"
)

// countingPublisher records the size of each Publish call.
type countingPublisher struct{ calls []int }

func (p *countingPublisher) Publish(_ context.Context, _ string, msgs ...*messaging.Message) error {
	p.calls = append(p.calls, len(msgs))
	return nil
}

func (p *countingPublisher) Close() error { return nil }

// TestPollerPublishesAPageInOneCall: each page of new items is one Publish
// call, and without WithSeen the cursor alone decides what is new (an item
// on the next page with an earlier ID is published again).
func TestPollerPublishesAPageInOneCall(t *testing.T) {
	pages := map[string]poll.Page[int]{
		"":  {Items: items(0, 5), Cursor: "5", More: true},
		"5": {Items: items(4, 7), Cursor: "7"},
	}
	src := poll.SourceFunc[int](func(_ context.Context, cursor, _ string) (poll.Page[int], error) {
		return pages[cursor], nil
	})
	pub := &countingPublisher{}
	p, err := poll.New("pages", src, pub, "items")
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.PollOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 || len(pub.calls) != 2 || pub.calls[0] != 5 || pub.calls[1] != 3 {
		t.Fatalf("published %d items in calls of %v, want 8 in calls of [5 3]", n, pub.calls)
	}
}

func items(from, to int) []poll.Item[int] {
	var out []poll.Item[int]
	for i := from; i < to; i++ {
		out = append(out, poll.Item[int]{ID: "id-" + strconv.Itoa(i), Value: i})
	}
	return out
}
