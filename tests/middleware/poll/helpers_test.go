package poll_test

import (
	"testing"

	"github.com/msgkit/messaging/middleware/poll"
)

// mustSource returns poll.NewSource(fetch, opts...), failing t on an error.
func mustSource(t *testing.T, fetch poll.FetchFunc, opts ...poll.Option) *poll.Source {
	t.Helper()
	src, err := poll.NewSource(fetch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}
