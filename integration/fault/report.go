package fault

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// ReportEnv names the environment variable that, when set to a file path,
// makes the fault scenarios append their OUTAGE and FAILOVER lines to that
// file as well as to the test log. go test shows the log of a passing test
// only with -v; CI sets the variable and prints the file, so every run's
// figures are visible.
const ReportEnv = "MESSAGING_FAULT_REPORT"

var reportMu sync.Mutex

// report logs line and appends it to the file named by ReportEnv, if any
// (failing the test when it cannot be written).
func report(t testing.TB, line string) {
	t.Helper()
	t.Log(line)
	path := os.Getenv(ReportEnv)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = fmt.Fprintln(f, line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Errorf("fault: writing the report to %s=%s: %v", ReportEnv, path, err)
	}
}
