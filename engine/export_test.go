package engine

import "time"

// SetFetchWarnEvery sets how often a run of fetch failures is logged at
// Warn, until the returned function restores it.
func SetFetchWarnEvery(d time.Duration) (restore func()) {
	old := fetchWarnEvery
	fetchWarnEvery = d
	return func() { fetchWarnEvery = old }
}
