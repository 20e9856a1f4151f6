//go:build race

package main_test

import "os"

// With the race detector, msgctl is built with it too (see buildFlags). A
// race found in it makes it exit with status 66, which fails the test that
// ran it. The detector's default wait of a second before every exit is
// turned off: the tests run msgctl hundreds of times.
func init() {
	buildFlags = append(buildFlags, "-race")
	os.Setenv("GORACE", os.Getenv("GORACE")+" atexit_sleep_ms=0")
}
