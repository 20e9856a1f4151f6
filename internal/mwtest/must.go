package mwtest

// Must returns v, or panics with err: for building middleware and
// publishers from constructors whose arguments a test knows to be valid, as
// in Must(retry.New(retry.WithMaxAttempts(3))). The panic fails the test
// with the constructor's error.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
