package batch_test

// Every adapter's harness, for integration.ForEachBackend.
import _ "github.com/msgkit/messaging/tests/backends"
