package urlparam

import (
	"net/url"
	"testing"
)

// FuzzParams: no query makes a getter panic, and a value Err accepts is
// in range (sizes and durations are never negative: no overflow).
func FuzzParams(f *testing.F) {
	for _, q := range []string{"s=1MiB&d=2s&i=3&b=true", "s=1%", "%zz", "s=9999999999999GiB", "s=-1&d=-1s", "i=1&i=2"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p := New(&url.URL{RawQuery: q})
		s, d := p.Size("s", 0), p.Duration("d", 0)
		p.Int("i", 0)
		p.Bool("b", false)
		p.OneOf("o", "a", "a", "b")
		p.String("token", "")
		if err := p.Err(); err == nil && (s < 0 || d < 0) {
			t.Fatalf("query %q: size %d, duration %v accepted", q, s, d)
		}
	})
}

func TestSizeOverflow(t *testing.T) {
	p := New(&url.URL{RawQuery: "s=9999999999999GiB"})
	if n := p.Size("s", 0); p.Err() == nil {
		t.Fatalf("overflowing size accepted as %d", n)
	}
}
