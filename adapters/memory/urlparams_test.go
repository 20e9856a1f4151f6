package memory

import (
	"net/url"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
)

// TestURLParamsDocumented: doc.go documents exactly the declared URL
// parameters, open reads each of them and rejects any other, naming it.
func TestURLParamsDocumented(t *testing.T) {
	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
		_, err := open(t.Context(), &url.URL{Scheme: "mem", Host: "urlparams-test", RawQuery: q}, messaging.OpenSettings{})
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
