package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// entry is a stream entry a group read returned: its fields as the flat
// list of the reply (plain reads) or as go-redis's map (typed reads).
type entry struct {
	id     string
	list   []any
	values map[string]any
}

// readMargin is how much longer than the block time a client's ReadTimeout
// must be for group reads to go out as plain commands (see plainReads).
const readMargin = 2 * time.Second

// plainReads reports whether rc's group reads can go out as a plain
// command (Do), their reply decoded here (parseEntries). go-redis's typed
// XReadGroup puts each entry's fields in a map, about a fifth of the bytes
// a consumer allocates a message (370 bytes for one field); as a list they
// cost less. Measured with BenchmarkConsume and BenchmarkEndToEnd (8
// interleaved rounds of 100,000 messages): 3-8% fewer bytes allocated a
// message and 2-10% fewer collections; the paired ratio to plain raw went
// from 0.78 to 0.82 consuming payload-only entries and from 0.83 to 0.88
// end to end with WithCallerIDs, and did not move on the adapter's own
// entries (their id field costs more allocations as a list). A plain
// command's reply is awaited for the client's ReadTimeout only, where the
// typed one is awaited for its block time plus 10s; so plain reads are used
// only when ReadTimeout exceeds the block time by readMargin or is off.
// Options gives the timeout as go-redis applies it: 0 or -1 for none (-1
// or -2 given). They are used on a standalone or failover (Sentinel)
// client only. On a cluster client, with plain reads, the groups of
// TestFailoverMaster came back later after the promotion than with typed
// ones (the slowest group of a run: median 1.0s against 0.6s, 12 runs
// each; once 3.3s in CI, past the 2s target), for a reason not found; so a
// cluster keeps go-redis's XReadGroup. Other client types (a Ring, a
// wrapper) keep it too: their ReadTimeout cannot be read.
func plainReads(rc goredis.UniversalClient, block time.Duration) bool {
	c, ok := rc.(*goredis.Client)
	if !ok {
		return false
	}
	t := c.Options().ReadTimeout
	return t <= 0 || t >= block+readMargin
}

// readGroup reads up to n new entries of the group (XREADGROUP ... STREAMS
// key >), blocking up to block. No entries is (nil, goredis.Nil).
func (r *groupReceiver) readGroup(ctx context.Context, n int, block time.Duration) ([]entry, error) {
	if !r.c.plainReads {
		args := &goredis.XReadGroupArgs{Group: r.group, Consumer: r.consumer, Streams: []string{r.key, ">"}, Count: int64(n), Block: block}
		res, err := r.c.rc.XReadGroup(ctx, args).Result()
		if len(res) != 1 { // one stream read: none when err is set
			return nil, err
		}
		es := make([]entry, len(res[0].Messages))
		for i, x := range res[0].Messages {
			es[i] = entry{id: x.ID, values: x.Values}
		}
		return es, err
	}
	res, err := r.c.rc.Do(ctx, "xreadgroup", "group", r.group, r.consumer, "count", n, "block", block.Milliseconds(), "streams", r.key, ">").Result()
	if err != nil {
		return nil, err
	}
	return parseEntries(res)
}

// parseEntries decodes a reply of XREADGROUP on one stream: RESP2's
// [[key, entries]] or RESP3's {key: entries}, entries being [id, [field,
// value, ...]] each.
func parseEntries(res any) ([]entry, error) {
	var list []any
	switch v := res.(type) {
	case []any:
		if len(v) != 1 {
			return nil, errUnexpectedReply("XREADGROUP", res)
		}
		stream, _ := v[0].([]any)
		if len(stream) != 2 {
			return nil, errUnexpectedReply("XREADGROUP", res)
		}
		list, _ = stream[1].([]any)
	case map[any]any:
		if len(v) != 1 {
			return nil, errUnexpectedReply("XREADGROUP", res)
		}
		for _, l := range v {
			list, _ = l.([]any)
		}
	default:
		return nil, errUnexpectedReply("XREADGROUP", res)
	}
	es := make([]entry, len(list))
	for i, x := range list {
		e, _ := x.([]any)
		var ok bool
		if len(e) == 2 {
			es[i].id, ok = e[0].(string)
			es[i].list, _ = e[1].([]any) // nil for an entry deleted while pending
		}
		if !ok {
			return nil, errUnexpectedReply("XREADGROUP", x)
		}
	}
	return es, nil
}

// errUnexpectedReply says what part of a reply was not as cmd answers: its
// type and length, not its values, which carry payloads.
func errUnexpectedReply(cmd string, v any) error {
	n := 0
	switch v := v.(type) {
	case []any:
		n = len(v)
	case map[any]any:
		n = len(v)
	}
	return fmt.Errorf("redis: unexpected %s reply: %T of %d elements", cmd, v, n)
}
