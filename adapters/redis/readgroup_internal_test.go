package redis

import (
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestPlainReads: group reads go out as plain commands only on a
// standalone or failover client whose ReadTimeout cannot cut a blocked read
// short. No client here
// connects (go-redis dials on first use).
func TestPlainReads(t *testing.T) {
	client := func(readTimeout time.Duration) goredis.UniversalClient {
		rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ReadTimeout: readTimeout})
		t.Cleanup(func() { _ = rc.Close() })
		return rc
	}
	cluster := func(readTimeout time.Duration) goredis.UniversalClient {
		rc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ReadTimeout: readTimeout})
		t.Cleanup(func() { _ = rc.Close() })
		return rc
	}
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { _ = ring.Close() })
	cases := []struct {
		name  string
		rc    goredis.UniversalClient
		block time.Duration
		want  bool
	}{
		{"default timeout (5s), default block", client(0), DefaultBlock, true},
		{"timeout 3s, block 1s", client(3 * time.Second), time.Second, true},
		{"timeout 2999ms, block 1s", client(2999 * time.Millisecond), time.Second, false},
		{"default timeout, block 4s", client(0), 4 * time.Second, false},
		{"no timeout (-1)", client(-1), time.Minute, true},
		{"no deadline (-2)", client(-2), time.Minute, true},
		{"cluster, default timeout", cluster(0), DefaultBlock, false},
		{"cluster, no timeout", cluster(-1), time.Minute, false},
		{"ring (options not read)", ring, DefaultBlock, false},
	}
	for _, c := range cases {
		if got := plainReads(c.rc, c.block); got != c.want {
			t.Errorf("%s: plainReads = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseEntries(t *testing.T) {
	entries := []any{
		[]any{"1-0", []any{"payload", "a"}},
		[]any{"1-1", nil}, // deleted while pending
	}
	want := []entry{{id: "1-0", list: []any{"payload", "a"}}, {id: "1-1"}}
	for name, reply := range map[string]any{
		"RESP2": []any{[]any{"key", entries}},
		"RESP3": map[any]any{"key": entries},
	} {
		got, err := parseEntries(reply)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parseEntries = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, bad := range []any{
		"OK",
		[]any{},
		[]any{[]any{"key"}},
		map[any]any{"a": entries, "b": entries},
		[]any{[]any{"key", []any{[]any{"1-0"}}}},
		[]any{[]any{"key", []any{[]any{int64(1), []any{}}}}},
		[]any{[]any{"key", []any{"1-0"}}},
	} {
		got, err := parseEntries(bad)
		if err == nil {
			t.Errorf("parseEntries(%v) = %v, want an error", bad, got)
		} else if strings.Contains(err.Error(), "1-0") || strings.Contains(err.Error(), "OK") {
			t.Errorf("parseEntries(%v): %v; the error must not quote the reply's values (payloads)", bad, err)
		}
	}
}
