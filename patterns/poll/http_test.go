package poll_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/poll"
)

// TestHTTPSourceErrorsHideCredentials: the Poller logs Fetch's errors, so
// none may show the URL's password or a token in its query, whatever
// failed: the URL, the connection, the status or the body.
func TestHTTPSourceErrorsHideCredentials(t *testing.T) {
	const secret = "SUPERSECRETPASSWORD"
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer status.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("not json"))
	}))
	defer garbage.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String() // nothing listens once l is closed
	l.Close()
	for _, tc := range []struct{ name, url string }{
		{"unparsable", "http://user:" + secret + "@host:bad/items"},
		{"connection", "http://user:" + secret + "@" + closed + "/items?api_key=" + secret},
		{"status", status.URL + "/items?access_token=" + secret},
		{"body", strings.Replace(garbage.URL, "http://", "http://user:"+secret+"@", 1) + "/items"},
	} {
		src := &poll.HTTPSource[map[string]any]{URL: tc.url, ItemID: func(map[string]any) string { return "" }}
		_, err := src.Fetch(context.Background(), "c1", "")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the secret: %v", tc.name, err)
		}
		if tc.name == "unparsable" && !errors.Is(err, messaging.ErrInvalidURL) {
			t.Errorf("%s: %v, want ErrInvalidURL", tc.name, err)
		}
		if tc.name == "status" && !errors.Is(err, poll.ErrHTTPStatus) {
			t.Errorf("%s: %v, want ErrHTTPStatus", tc.name, err)
		}
	}
}
