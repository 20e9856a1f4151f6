package integration

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration { // 1..n
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(i + 1)
		}
		return s
	}
	for _, tc := range []struct {
		n    int
		q    float64
		want time.Duration
	}{
		{1, 0.5, 1}, {1, 0.99, 1}, {1, 1, 1},
		{2, 0.5, 1}, {2, 0.99, 2},
		{100, 0.5, 50}, {100, 0.99, 99}, {100, 1, 100},
		{101, 0.5, 51}, {101, 0.99, 100},
		{3000, 0.5, 1500}, {3000, 0.99, 2970}, {3000, 1, 3000},
	} {
		if got := percentile(seq(tc.n), tc.q); got != tc.want {
			t.Errorf("percentile(1..%d, %v) = %v, want %v", tc.n, tc.q, got, tc.want)
		}
	}
}
