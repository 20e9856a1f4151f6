package urlparam

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestParams(t *testing.T) {
	u, _ := url.Parse("x://h/?size=2MiB&d=250ms&n=7&b=true&mode=core")
	p := New(u)
	if p.Size("size", 0) != 2<<20 || p.Duration("d", 0) != 250*time.Millisecond || p.Int("n", 0) != 7 ||
		!p.Bool("b", false) || p.OneOf("mode", "js", "js", "core") != "core" || p.String("absent", "def") != "def" {
		t.Fatal("getter returned a wrong value")
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestParamsErrors(t *testing.T) {
	u, _ := url.Parse("x://h/?size=lots&n=x&typo=1&mode=weird")
	p := New(u)
	p.Size("size", 0)
	p.Int("n", 0)
	p.OneOf("mode", "js", "js", "core")
	err := p.Err()
	if !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("Err: %v", err)
	}
	for _, want := range []string{"size", "n=", "typo", "mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
