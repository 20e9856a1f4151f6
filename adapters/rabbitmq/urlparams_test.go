package rabbitmq

import (
	"net/url"
	"testing"

	"github.com/msgkit/messaging/driver/urlparam"
)

// TestURLParamsDocumented: doc.go documents exactly the declared URL
// parameters, urlOptions reads each of them and rejects any other, naming
// it.
func TestURLParamsDocumented(t *testing.T) {
	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
		_, _, _, err := urlOptions(&url.URL{Scheme: "amqp", Host: "127.0.0.1:1", RawQuery: q})
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
