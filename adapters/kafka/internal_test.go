package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// parseRawURL parses rawURL as Open does.
func parseRawURL(rawURL string) ([]string, []Option, error) {
	u, err := messaging.ParseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	return parseURL(u)
}

func TestParseURL(t *testing.T) {
	brokers, opts, err := parseRawURL("kafka://a:1,b:2?partitions=4&acks=one&batch_timeout=5ms&commit_interval=1s&compression=zstd&max_message_size=2MiB")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(brokers, ",") != "a:1,b:2" {
		t.Errorf("brokers %v", brokers)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.partitions != 4 || cfg.requiredAcks != 1 || cfg.batchTimeout.Milliseconds() != 5 || cfg.commitInterval.Seconds() != 1 || cfg.maxMessageSize != 2<<20 || cfg.compression == 0 {
		t.Errorf("config not applied: %+v", cfg)
	}
	if b, _, err := parseRawURL("kafka://host"); err != nil || b[0] != "host:9092" {
		t.Errorf("default port: %v %v", b, err)
	}

	for _, tc := range []struct {
		url  string
		want error
	}{
		{"kafka://h:1?nope=1", messaging.ErrInvalidOption},
		{"kafka://h:1?partitions=x", messaging.ErrInvalidOption},
		{"kafka://h:1?acks=most", messaging.ErrInvalidOption},
		{"kafka://h:1?sasl=plain", messaging.ErrInvalidOption},
		{"kafka://h:1?tls_skip_verify=true", messaging.ErrInvalidOption},
		{"kafka://", messaging.ErrInvalidURL},
		{"kafka://h:1/path", messaging.ErrInvalidURL},
		{"kafka://:9092", messaging.ErrInvalidURL},
		{"kafka://h:1,:2", messaging.ErrInvalidURL},
		{"kafka://h:1?%zz", messaging.ErrInvalidURL},
		{"kafka://h:1?max_message_size=1%", messaging.ErrInvalidURL},
		{"kafka://h:1?max_message_size=1%25", messaging.ErrInvalidOption},
		{"nats://h:1", messaging.ErrInvalidURL},
	} {
		if _, _, err := parseRawURL(tc.url); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.url, err, tc.want)
		}
	}
	if _, err := newConfig([]Option{WithPartitions(0)}); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("partitions 0: %v", err)
	}
}

func TestParseURLSASLKeepsPasswordOut(t *testing.T) {
	_, opts, err := parseRawURL("kafka://alice:s3cret@h:1?sasl=scram-sha-512")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.sasl == nil || cfg.sasl.Name() != "SCRAM-SHA-512" {
		t.Fatalf("sasl mechanism %v", cfg.sasl)
	}
	// Credentials without sasl= mean PLAIN.
	_, opts, err = parseRawURL("kafka://alice:s3cret@h:1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = newConfig(opts); err != nil {
		t.Fatal(err)
	}
	if cfg.sasl == nil || cfg.sasl.Name() != "PLAIN" {
		t.Fatalf("credentials without sasl=: mechanism %v, want PLAIN", cfg.sasl)
	}
	_, _, err = parseRawURL("kafka://alice:s3cret@h:1?sasl=scram-sha-512&bad=1")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v: want an error without the password", err)
	}
}

func TestParseOffsets(t *testing.T) {
	got, err := parseOffsets("0:12, 3:40")
	if err != nil || len(got) != 2 || got[0] != 12 || got[3] != 40 {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"12", "a:1", "0:-1", "0:1,0:2", "-1:3", ""} {
		if _, err := parseOffsets(bad); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("%q: %v, want ErrInvalidOption", bad, err)
		}
	}
}

// TestPartStateCommitsContiguousPrefix: out-of-order completions (concurrent
// workers) commit only up to the first unfinished offset, and offset gaps
// (compaction, transaction markers) are handled.
func TestPartStateCommitsContiguousPrefix(t *testing.T) {
	ps := &partState{next: 10, lastCommit: 10}
	if _, ok := ps.commitPoint(); ok {
		t.Fatal("nothing fetched: no commit expected")
	}
	for _, off := range []int64{10, 11, 13, 14} { // 12 is a gap in the log
		ps.fetched(off)
	}
	ps.finish(11)
	ps.finish(14)
	if off, ok := ps.commitPoint(); ok || off != 10 {
		t.Fatalf("commit point %d %v, want 10 and no new commit (10 unfinished)", off, ok)
	}
	ps.finish(10)
	if off, _ := ps.commitPoint(); off != 13 {
		t.Fatalf("commit point %d, want 13", off)
	}
	ps.setCommitted(13)
	if _, ok := ps.commitPoint(); ok {
		t.Fatal("unchanged commit point reported again")
	}
	ps.finish(13)
	if off, ok := ps.commitPoint(); !ok || off != 15 {
		t.Fatalf("commit point %d %v, want 15 (all finished)", off, ok)
	}
	ps.finish(99) // unknown offsets are ignored
	if off, _ := ps.commitPoint(); off != 15 {
		t.Fatalf("commit point %d after an unknown finish, want 15", off)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	m := &messaging.Message{ID: "id-1", Key: "k", Payload: []byte("p"), Header: messaging.Header{"a": "1", "e": ""}}
	m.Time = time.Unix(1700000000, 123456789)
	rec, err := toRecord("t", m)
	if err != nil {
		t.Fatal(err)
	}
	rec.Partition, rec.Offset = 2, 7
	got := fromRecord(&rec, "g", 3)
	if got.ID != "id-1" || got.Key != "k" || string(got.Payload) != "p" || len(got.Header) != 2 || got.Header["e"] != "" ||
		got.Offset != "2:7" || got.Group != "g" || got.Attempt != 3 || !got.Time.Equal(m.Time) {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := toRecord("t", &messaging.Message{Header: messaging.Header{"msgkit-id": "x"}}); !errors.Is(err, messaging.ErrInvalidHeader) {
		t.Fatalf("reserved header: %v", err)
	}
	foreign := fromRecord(&kafkago.Message{Topic: "t", Partition: 1, Offset: 5, Value: []byte("v")}, "", 1)
	if foreign.ID != "t/1/5" || foreign.Header != nil {
		t.Fatalf("record without ID header: %+v", foreign)
	}
}

// TestPartStatePausesWhenTheFrontIsStuck: with maxUncommitted records
// behind an unfinished one, the fetcher waits until the front finishes.
func TestPartStatePausesWhenTheFrontIsStuck(t *testing.T) {
	ps := &partState{next: 0, lastCommit: 0}
	for off := range int64(maxUncommitted) {
		ps.fetched(off)
		if off > 0 {
			ps.finish(off)
		}
	}
	// Blocking can only be observed over time: waitRoom must still be
	// waiting when this short deadline passes.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if ps.waitRoom(ctx) {
		t.Fatal("room reported with the front record unfinished and the window full")
	}
	room := make(chan bool)
	go func() { room <- ps.waitRoom(context.Background()) }()
	ps.finish(0)
	if !<-room {
		t.Fatal("no room after the front record finished")
	}
	if off, _ := ps.commitPoint(); off != maxUncommitted {
		t.Fatalf("commit point %d, want %d", off, maxUncommitted)
	}
}

// TestIncarnationBalancerDropsStaleMembers: members left behind by a
// subscription's earlier joins (same identity, lower join counter) get no
// partitions and are evicted; the live members share every partition.
func TestIncarnationBalancerDropsStaleMembers(t *testing.T) {
	evicted := make(chan []string, 1)
	a := newIncarnationBalancer(func(ids []string) { evicted <- ids })
	b := newIncarnationBalancer(nil)
	userData := func(bal *incarnationBalancer) []byte {
		d, err := bal.UserData()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	staleA, liveA, liveB := userData(a), userData(a), userData(b)
	members := []kafkago.GroupMember{
		{ID: "m-stale", Topics: []string{"t"}, UserData: staleA},
		{ID: "m-a", Topics: []string{"t"}, UserData: liveA},
		{ID: "m-b", Topics: []string{"t"}, UserData: liveB},
		{ID: "m-plain", Topics: []string{"t"}}, // a plain kafka-go member: kept
	}
	var parts []kafkago.Partition
	for i := range 6 {
		parts = append(parts, kafkago.Partition{Topic: "t", ID: i})
	}
	got := a.AssignGroups(members, parts)
	if n := len(got["m-stale"]["t"]); n != 0 {
		t.Errorf("stale member got %d partitions", n)
	}
	total := 0
	for _, id := range []string{"m-a", "m-b", "m-plain"} {
		if len(got[id]["t"]) == 0 {
			t.Errorf("live member %s got no partition: %v", id, got)
		}
		total += len(got[id]["t"])
	}
	if total != len(parts) {
		t.Errorf("live members got %d of %d partitions: %v", total, len(parts), got)
	}
	select {
	case ids := <-evicted:
		if len(ids) != 1 || ids[0] != "m-stale" {
			t.Errorf("evicted %v, want [m-stale]", ids)
		}
	case <-time.After(5 * time.Second):
		t.Error("stale member not evicted")
	}
}

// TestRevokedGenerationHandsOutNothing: once a generation ends (its
// partitions revoked), records it fetched but did not hand out are dropped
// by Receive and stay uncommitted; the drain waits for the handed-out ones;
// a release leaves the commit point before the released record.
func TestRevokedGenerationHandsOutNothing(t *testing.T) {
	g := &generation{drained: make(chan struct{})}
	ps := &partState{gen: g, next: 10, lastCommit: 10}
	r := &groupReceiver{in: newInbox(8)}
	for off := int64(10); off < 14; off++ {
		ps.fetched(off)
		r.in.put(t.Context(), driver.Delivery{Msg: &messaging.Message{}, Token: token{ps: ps, off: off}})
	}
	ds, err := r.Receive(t.Context(), 2)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Receive: %d deliveries, %v; want 2", len(ds), err)
	}
	ds = slices.Clone(ds) // as the engine copies them: the next Receive reuses the array
	if !g.end() {
		t.Fatal("end reported nothing outstanding with 2 deliveries handed out")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if ds, err := r.Receive(ctx, 2); err == nil {
		t.Fatalf("Receive handed out %d records of an ended generation", len(ds))
	}
	// Offset 10 released (the subscription stopped), 11 acknowledged.
	if err := r.Settle(t.Context(), []driver.Settlement{{Delivery: ds[0], Outcome: driver.Release}, {Delivery: ds[1], Outcome: driver.Ack}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.drained:
	default:
		t.Fatal("not drained after every handed-out delivery was settled")
	}
	if off, ok := ps.commitPoint(); ok || off != 10 {
		t.Fatalf("commit point %d (moved %v), want 10: the released record holds it", off, ok)
	}
}

// TestJoinRetriable: group errors that a new join can resolve are retried;
// error codes every join gets again end the subscription.
func TestJoinRetriable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp 127.0.0.1:9092: connect: connection refused"), true},
		{kafkago.GroupCoordinatorNotAvailable, true},
		{kafkago.GroupLoadInProgress, true},
		{kafkago.NotCoordinatorForGroup, true},
		{kafkago.RebalanceInProgress, true},
		{kafkago.UnknownMemberId, true},
		{kafkago.IllegalGeneration, true},
		{kafkago.UnknownTopicOrPartition, true},
		{fmt.Errorf("sync: %w", kafkago.RequestTimedOut), true},
		{kafkago.InvalidSessionTimeout, false},
		{kafkago.InconsistentGroupProtocol, false},
		{kafkago.GroupAuthorizationFailed, false},
		{fmt.Errorf("fetch offsets: %w", kafkago.TopicAuthorizationFailed), false},
		{kafkago.InvalidGroupId, false},
	} {
		if got := joinRetriable(tc.err); got != tc.want {
			t.Errorf("joinRetriable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
