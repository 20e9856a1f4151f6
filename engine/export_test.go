package engine

import (
	"time"

	"github.com/msgkit/messaging/internal/retrylog"
)

// SetFetchWarnEvery sets how often a run of fetch failures is logged at
// Warn (retrylog.Every), until the returned function restores it.
func SetFetchWarnEvery(d time.Duration) (restore func()) {
	old := retrylog.Every
	retrylog.Every = d
	return func() { retrylog.Every = old }
}
