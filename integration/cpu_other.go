//go:build !unix

package integration

import "time"

// processCPU is zero: this platform's process CPU time is not read here.
func processCPU() time.Duration { return 0 }
