package fault

import (
	"fmt"
	"os"
	"testing"

	"github.com/msgkit/messaging/integration"
)

// NeedBinary skips the test (fails it under MESSAGING_REQUIRE_BROKERS=1)
// when the broker binary at path, which a private broker starter runs, does
// not exist.
func NeedBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("fault tests need %s: %v", path, err)
		if os.Getenv(integration.RequireBrokersEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
