package messaging

import (
	"fmt"
	"strings"
)

// adapterPackages maps the URL schemes of the adapters this module ships to
// the package whose import registers them. Open uses it only to say which
// import is missing; the registry alone decides what Open can open.
var adapterPackages = map[string]string{
	"mem":    "github.com/msgkit/messaging/adapters/memory",
	"nats":   "github.com/msgkit/messaging/adapters/nats",
	"tls":    "github.com/msgkit/messaging/adapters/nats",
	"redis":  "github.com/msgkit/messaging/adapters/redis",
	"rediss": "github.com/msgkit/messaging/adapters/redis",
	"kafka":  "github.com/msgkit/messaging/adapters/kafka",
	"amqp":   "github.com/msgkit/messaging/adapters/rabbitmq",
	"amqps":  "github.com/msgkit/messaging/adapters/rabbitmq",
}

// unknownSchemeHint says how to make scheme available: the import of the
// shipped adapter that registers it, or the list of registered schemes.
func unknownSchemeHint(scheme string) string {
	registered := strings.Join(Schemes(), ", ")
	if registered == "" {
		registered = "none"
	}
	if pkg, ok := adapterPackages[scheme]; ok {
		return fmt.Sprintf("import _ %q to register it (registered: %s)", pkg, registered)
	}
	return fmt.Sprintf("no adapter of this module handles it (registered: %s; a third-party adapter registers its scheme when imported)", registered)
}
