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

// TestParamsStrict: a parameter given twice, a negative duration or size,
// a bad boolean and an Invalid call are errors wrapping ErrInvalidOption
// that name the parameter and never show a credential's value; a malformed
// query wraps ErrInvalidURL; sizes take decimal and binary units.
func TestParamsStrict(t *testing.T) {
	for _, tc := range []struct {
		query, name string
		get         func(*Params)
	}{
		{"n=1&n=2", "n", func(p *Params) { p.Int("n", 0) }},
		{"mode=js&mode=js", "mode", func(p *Params) { p.String("mode", "") }},
		{"d=-1s", "d", func(p *Params) { p.Duration("d", 0) }},
		{"s=-1", "s", func(p *Params) { p.Size("s", 0) }},
		{"s=-2KiB", "s", func(p *Params) { p.Size("s", 0) }},
		{"b=yes", "b", func(p *Params) { p.Bool("b", false) }},
		{"x=1", "x", func(p *Params) { p.Invalid("x", p.String("x", ""), "too odd") }},
	} {
		p := New(&url.URL{RawQuery: tc.query})
		tc.get(p)
		if err := p.Err(); !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name+"=") {
			t.Errorf("%s: Err() = %v, want ErrInvalidOption naming %s", tc.query, err, tc.name)
		}
	}
	p := New(&url.URL{RawQuery: "token=s3cr3t&token=s3cr3t&sasl_password=hunter22"})
	p.String("token", "")
	p.Int("sasl_password", 0)
	if err := p.Err(); !errors.Is(err, messaging.ErrInvalidOption) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "hunter22") ||
		!strings.Contains(err.Error(), "token") || !strings.Contains(err.Error(), "sasl_password") {
		t.Errorf("bad credentials: Err() = %v, want ErrInvalidOption naming token and sasl_password without their values", err)
	}
	p = New(&url.URL{RawQuery: "s=1%"})
	p.Size("s", 0)
	if err := p.Err(); !errors.Is(err, messaging.ErrInvalidURL) {
		t.Errorf("malformed query: Err() = %v, want ErrInvalidURL", err)
	}
	p = New(&url.URL{RawQuery: "token=s3cr%zz"})
	p.String("token", "")
	if err := p.Err(); !errors.Is(err, messaging.ErrInvalidURL) || strings.Contains(err.Error(), "zz") {
		t.Errorf("malformed secret: Err() = %v, want ErrInvalidURL quoting nothing of the value", err)
	}
	for v, want := range map[string]int{"7": 7, "7B": 7, "2KB": 2000, "2KiB": 2048, "3MB": 3e6, "3MiB": 3 << 20, "1GB": 1e9, "1GiB": 1 << 30, "0": 0} {
		p := New(&url.URL{RawQuery: "s=" + v})
		if got := p.Size("s", -1); got != want || p.Err() != nil {
			t.Errorf("Size(s=%s) = %d, %v; want %d", v, got, p.Err(), want)
		}
	}
	p = New(&url.URL{RawQuery: "d=0s&b=0&i=-3"})
	if d, b, i := p.Duration("d", time.Hour), p.Bool("b", true), p.Int("i", 0); d != 0 || b || i != -3 || p.Err() != nil {
		t.Errorf("d=0s&b=0&i=-3: %v %v %v, %v", d, b, i, p.Err())
	}
}

// TestParamsKnownAndDefaults: Has marks its parameter known; a getter
// given a malformed value returns its default (and Err reports the value).
func TestParamsKnownAndDefaults(t *testing.T) {
	p := New(&url.URL{RawQuery: "flag=1"})
	if !p.Has("flag") || p.Has("other") {
		t.Fatal("Has: wrong presence")
	}
	if err := p.Err(); err != nil {
		t.Errorf("a parameter asked for with Has is unknown: %v", err)
	}
	p = New(&url.URL{RawQuery: "n=x&mode=weird&b=maybe&d=soon&s=lots"})
	if n, mode, b, d, s := p.Int("n", 4), p.OneOf("mode", "js", "js", "core"), p.Bool("b", true), p.Duration("d", time.Second), p.Size("s", 5); n != 4 || mode != "js" || !b || d != time.Second || s != 5 {
		t.Errorf("malformed values: %v %q %v %v %v, want the defaults 4 js true 1s 5", n, mode, b, d, s)
	}
	if err := p.Err(); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Err() = %v, want ErrInvalidOption", err)
	}
}
