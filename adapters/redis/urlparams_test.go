package redis

import (
	"net/url"
	"testing"

	"github.com/msgkit/messaging/driver/urlparam"
)

// TestURLParamsDocumented: doc.go documents exactly the declared URL
// parameters, parseURL reads each of them and rejects any other (go-redis
// rejects the ones it does not know), naming it.
func TestURLParamsDocumented(t *testing.T) {
	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
		rc, _, err := parseURL(&url.URL{Scheme: "redis", Host: "127.0.0.1:1", RawQuery: q})
		if rc != nil {
			rc.Close()
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
