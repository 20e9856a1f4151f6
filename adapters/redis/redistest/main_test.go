package redistest_test

import (
	"os"
	"testing"

	"github.com/msgkit/messaging/integration/brokertest"
)

// TestMain runs up to four parallel tests at a time (see brokertest.Run).
func TestMain(m *testing.M) { os.Exit(brokertest.Run(m, 4)) }
