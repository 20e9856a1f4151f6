package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/internal/producer"
)

// These tests drive the producer against an in-process Kafka-protocol
// cluster of their own (kfake), through a transport that counts produce
// requests and can hold or fail them. The adapter's use of the producer is
// covered by the conformance suite and the fault tests against the shared
// test cluster.

// gate is a RoundTripper that counts produce requests, can hold the next
// one until released, can fail the next ones with given errors, and can
// play a broker that takes every produce request and never answers.
type gate struct {
	inner kafkago.RoundTripper

	mu       sync.Mutex
	produces int
	codec    kafkago.Compression // of the last produce request
	hold     chan struct{}       // the next produce waits until it is closed
	entered  chan struct{}       // closed when a held produce arrived
	fail     []error
	silent   bool          // produce requests wait for their context's end
	slow     time.Duration // each produce request is answered this late
	unsent   [][]string    // silent: the record values of each produce request
}

func (g *gate) RoundTrip(ctx context.Context, addr net.Addr, req kafkago.Request) (kafkago.Response, error) {
	if pr, ok := req.(*produceAPI.Request); ok {
		g.mu.Lock()
		g.produces++
		g.codec = kafkago.Compression(pr.Topics[0].Partitions[0].RecordSet.Attributes.Compression())
		hold, entered := g.hold, g.entered
		g.hold, g.entered = nil, nil
		var fail error
		if len(g.fail) > 0 {
			fail, g.fail = g.fail[0], g.fail[1:]
		}
		g.mu.Unlock()
		if g.silentRequest(pr) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		g.mu.Lock()
		slow := g.slow
		g.mu.Unlock()
		if slow > 0 {
			t := time.NewTimer(slow)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
		if hold != nil {
			close(entered)
			select { // a held request can be abandoned, as a real one can
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if fail != nil {
			return nil, fail
		}
	}
	return g.inner.RoundTrip(ctx, addr, req)
}

// silentRequest reports whether the gate is silent, and then notes the
// values of pr's records (which it reads: pr is not sent).
func (g *gate) silentRequest(pr *produceAPI.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.silent {
		return false
	}
	var values []string
	for {
		r, err := pr.Topics[0].Partitions[0].RecordSet.Records.ReadRecord()
		if err != nil {
			break
		}
		v, _ := kafkago.ReadAll(r.Value)
		if i := slices.Index(v, 0); i >= 0 {
			v = v[:i]
		}
		values = append(values, string(v))
	}
	g.unsent = append(g.unsent, values)
	return true
}

// silence makes the gate take every produce request and never answer.
func (g *gate) silence() {
	g.mu.Lock()
	g.silent = true
	g.mu.Unlock()
}

// requests returns the record values of each produce request the silent
// gate took.
func (g *gate) requests() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.unsent)
}

func (g *gate) holdNext() (entered, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.entered = make(chan struct{}), make(chan struct{})
	return g.entered, g.hold
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.produces
}

type producerEnv struct {
	p      *producer.Producer
	set    producer.Settings
	gate   *gate
	client *kafkago.Client
	topic  string
}

// gatedCluster starts a one-broker kfake cluster and a gate on a
// transport to it, both closed when the test ends.
func gatedCluster(t *testing.T) (*kfake.Cluster, *gate) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	tr := &kafkago.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return cluster, &gate{inner: tr}
}

func newProducerEnv(t *testing.T, partitions int, configure ...func(*producer.Settings)) *producerEnv {
	t.Helper()
	cluster, g := gatedCluster(t)
	client := &kafkago.Client{Addr: kafkago.TCP(cluster.ListenAddrs()...), Transport: g, Timeout: 10 * time.Second}
	topic := "producer-" + t.Name()
	resp, err := client.CreateTopics(t.Context(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatal(err)
	}
	// The kafka adapter's defaults.
	set := producer.Settings{Acks: kafkago.RequireAll, MaxRecords: kafka.DefaultBatchSize, Linger: kafka.DefaultBatchTimeout, Unavailable: messaging.DefaultUnavailableTimeout}
	for _, f := range configure {
		f(&set)
	}
	p := producer.New(client, set)
	t.Cleanup(p.Close)
	return &producerEnv{p: p, set: set, gate: g, client: client, topic: topic}
}

func (e *producerEnv) records(n int, size int, key string) []kafkago.Message {
	recs := make([]kafkago.Message, n)
	for i := range recs {
		recs[i] = kafkago.Message{Topic: e.topic, Value: make([]byte, size)}
		copy(recs[i].Value, strconv.Itoa(i))
		if key != "" {
			recs[i].Key = []byte(key)
		}
	}
	return recs
}

// written reads partition's records from the start: their values, in order.
func (e *producerEnv) written(t *testing.T, partition int) []string {
	t.Helper()
	var out []string
	for offset := int64(0); ; {
		res, err := e.client.Fetch(t.Context(), &kafkago.FetchRequest{Topic: e.topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 50 << 20, MaxWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != nil {
			t.Fatal(res.Error)
		}
		n := 0
		for {
			r, err := res.Records.ReadRecord()
			if err != nil {
				break
			}
			v, err := kafkago.ReadAll(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.Index(v, 0); i >= 0 {
				v = v[:i]
			}
			out = append(out, string(v))
			offset = r.Offset + 1
			n++
		}
		if n == 0 || offset >= res.HighWatermark {
			return out
		}
	}
}

// TestProducerOneRequestPerCall: a call's records for an idle partition go
// in one request, cut only at the 1 MB request limit, in order.
func TestProducerOneRequestPerCall(t *testing.T) {
	e := newProducerEnv(t, 1)
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(500, 1024, "")); err != nil {
		t.Fatal(err)
	}
	if n := e.gate.count(); n != 1 {
		t.Errorf("500 records of 1 KiB: %d produce requests, want 1", n)
	}
	// 2,000 KiB need two 1 MB requests at least, three with the overheads.
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(2000, 1024, "")); err != nil {
		t.Fatal(err)
	}
	if n := e.gate.count() - 1; n != 3 {
		t.Errorf("2,000 records of 1 KiB: %d produce requests, want 3 (1 MB each at most)", n)
	}
	got := e.written(t, 0)
	want := make([]string, 0, 2500)
	for i := range 500 {
		want = append(want, strconv.Itoa(i))
	}
	for i := range 2000 {
		want = append(want, strconv.Itoa(i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("partition holds %d records, want the %d written in order", len(got), len(want))
	}
}

// TestProducerBatchSize: a request holds at most MaxRecords records
// (batch_size): a call of 10 records with a batch size of 3 is 4 requests,
// written in order.
func TestProducerBatchSize(t *testing.T) {
	e := newProducerEnv(t, 1, func(s *producer.Settings) { s.MaxRecords = 3 })
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(10, 16, "")); err != nil {
		t.Fatal(err)
	}
	if n := e.gate.count(); n != 4 {
		t.Errorf("10 records with a batch size of 3: %d produce requests, want 4", n)
	}
	want := make([]string, 10)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	if got := e.written(t, 0); !slices.Equal(got, want) {
		t.Errorf("partition holds %v, want %v", got, want)
	}
}

// TestProducerCoalescesConcurrentCalls: calls made while a request is in
// flight all go in the next request, and every call returns only once its
// record is acknowledged.
func TestProducerCoalescesConcurrentCalls(t *testing.T) {
	const callers = 63
	queued := make(chan int, callers)
	e := newProducerEnv(t, 1, func(s *producer.Settings) { s.TestHookQueued = func(waiting int) { queued <- waiting } })
	entered, release := e.gate.holdNext()
	first := make(chan error, 1)
	go func() { first <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 16, "")) }()
	<-entered
	<-queued // the first call's record, taken by the held request
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			recs := e.records(1, 16, "")
			recs[0].Value = fmt.Appendf(recs[0].Value[:0], "c%d", i)
			errs <- e.p.Write(context.Background(), e.topic, 1, recs)
		}()
	}
	for w := 0; w < callers; {
		w = <-queued
	}
	select {
	case err := <-errs:
		t.Fatalf("a call returned before its record was sent: %v", err)
	case err := <-first:
		t.Fatalf("the first call returned while its request was held: %v", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.gate.count(); n != 2 {
		t.Errorf("%d concurrent calls behind a request in flight: %d produce requests in all, want 2", callers, n)
	}
	if got := e.written(t, 0); len(got) != callers+1 || got[0] != "0" {
		t.Errorf("partition holds %v, want the first record then the %d others", got, callers)
	}
}

// TestProducerPartitions: keyed records go to their key's partition in
// order (murmur2, as kafka-go's Murmur2Balancer), the keyless records of a
// call to one partition, and successive calls to successive partitions.
func TestProducerPartitions(t *testing.T) {
	const parts = 4
	e := newProducerEnv(t, parts)
	var recs []kafkago.Message
	for i := range 40 {
		r := kafkago.Message{Topic: e.topic, Key: []byte("k" + strconv.Itoa(i%8)), Value: []byte(strconv.Itoa(i))}
		recs = append(recs, r)
	}
	if err := e.p.Write(t.Context(), e.topic, parts, recs); err != nil {
		t.Fatal(err)
	}
	want := make([][]string, parts)
	for _, r := range recs {
		p := kafkago.Murmur2Balancer{}.Balance(r, 0, 1, 2, 3)
		want[p] = append(want[p], string(r.Value))
	}
	for p := range parts {
		if got := e.written(t, p); !slices.Equal(got, want[p]) {
			t.Errorf("keyed: partition %d holds %v, want %v", p, got, want[p])
		}
	}
	counts := make([]int, parts)
	for p := range parts {
		counts[p] = len(e.written(t, p))
	}
	for range parts {
		if err := e.p.Write(t.Context(), e.topic, parts, e.records(10, 8, "")); err != nil {
			t.Fatal(err)
		}
	}
	for p := range parts {
		if got := len(e.written(t, p)) - counts[p]; got != 10 {
			t.Errorf("keyless: partition %d got %d records from 4 calls of 10, want 10 (one call each)", p, got)
		}
	}
}

// TestProducerCancelledCallIsDropped: a call whose context ends while it is
// queued returns the context's error at once, and its records are not sent.
func TestProducerCancelledCallIsDropped(t *testing.T) {
	queued := make(chan int, 2)
	e := newProducerEnv(t, 1, func(s *producer.Settings) { s.TestHookQueued = func(waiting int) { queued <- waiting } })
	entered, release := e.gate.holdNext()
	first := make(chan error, 1)
	go func() { first <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 8, "")) }()
	<-entered
	<-queued
	ctx, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() {
		recs := e.records(1, 8, "")
		recs[0].Value = []byte("dropped")
		second <- e.p.Write(ctx, e.topic, 1, recs)
	}()
	<-queued
	cancel()
	err := <-second
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || !errors.Is(pe.Errs[0], context.Canceled) {
		t.Fatalf("cancelled call: %v, want a PublishError wrapping context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	e.p.Close()
	if n := e.gate.count(); n != 1 {
		t.Errorf("%d produce requests, want 1 (the cancelled call's record dropped)", n)
	}
	if got := e.written(t, 0); !slices.Equal(got, []string{"0"}) {
		t.Errorf("partition holds %v, want only the first call's record", got)
	}
}

// TestProducerCancelWhileSending: a call that sends its own records (its
// partition was idle) returns when its context ends mid-request, and the
// partition serves the next call.
func TestProducerCancelWhileSending(t *testing.T) {
	e := newProducerEnv(t, 1)
	entered, _ := e.gate.holdNext()
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- e.p.Write(ctx, e.topic, 1, e.records(1, 8, "")) }()
	<-entered
	cancel()
	var pe *messaging.PublishError
	if err := <-first; !errors.As(err, &pe) || !errors.Is(pe.Errs[0], context.Canceled) {
		t.Fatalf("call cancelled mid-request: %v, want a PublishError wrapping context.Canceled", err)
	}
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(1, 8, "")); err != nil {
		t.Fatalf("next call: %v", err)
	}
	if got := e.written(t, 0); !slices.Equal(got, []string{"0"}) {
		t.Errorf("partition holds %v, want the second call's record only", got)
	}
}

// TestProducerRetries: a request failing with a broken connection is sent
// again (once written), one failing with a permanent error is reported per
// record, and after close the producer refuses records.
func TestProducerRetries(t *testing.T) {
	e := newProducerEnv(t, 1)
	e.gate.mu.Lock()
	e.gate.fail = []error{fmt.Errorf("write: %w", syscall.ECONNRESET), fmt.Errorf("read: %w", syscall.EPIPE)}
	e.gate.mu.Unlock()
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(2, 8, "")); err != nil {
		t.Fatalf("after two transient failures: %v, want success", err)
	}
	if n := e.gate.count(); n != 3 {
		t.Errorf("%d produce requests, want 3 (two failed, one written)", n)
	}
	e.gate.mu.Lock()
	e.gate.fail = []error{errors.New("no such thing")}
	e.gate.mu.Unlock()
	err := e.p.Write(t.Context(), e.topic, 1, e.records(2, 8, ""))
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Failed()) != 2 {
		t.Fatalf("permanent failure: %v, want a PublishError for both records", err)
	}
	if n := e.gate.count(); n != 4 {
		t.Errorf("%d produce requests, want 4 (a permanent failure is not retried)", n)
	}
	if got := e.written(t, 0); !slices.Equal(got, []string{"0", "1"}) {
		t.Errorf("partition holds %v, want the first call's two records once", got)
	}
	e.p.Close()
	if err := e.p.Write(t.Context(), e.topic, 1, e.records(1, 8, "")); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("write after close: %v, want ErrClosed", err)
	}
}

// TestProducerCloseFlushes: close waits for the records queued behind a
// request in flight, which are all sent and acknowledged.
func TestProducerCloseFlushes(t *testing.T) {
	queued := make(chan int, 4)
	e := newProducerEnv(t, 1, func(s *producer.Settings) { s.TestHookQueued = func(waiting int) { queued <- waiting } })
	entered, release := e.gate.holdNext()
	results := make(chan error, 3)
	go func() { results <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 8, "")) }()
	<-entered
	<-queued
	for range 2 {
		go func() { results <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 8, "")) }()
		<-queued
	}
	closed := make(chan struct{})
	go func() { e.p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a request was in flight")
	case err := <-results:
		t.Fatalf("a call returned while its request was held: %v", err)
	default:
	}
	close(release)
	<-closed
	for range 3 {
		if err := <-results; err != nil {
			t.Errorf("call during close: %v", err)
		}
	}
	if got := e.written(t, 0); len(got) != 3 {
		t.Errorf("partition holds %d records, want 3", len(got))
	}
}

// refusing is a RoundTripper whose broker refuses every connection (a
// retriable error); tried is closed at the first request.
type refusing struct {
	once  sync.Once
	tried chan struct{}
}

func (r *refusing) RoundTrip(context.Context, net.Addr, kafkago.Request) (kafkago.Response, error) {
	r.once.Do(func() { close(r.tried) })
	return nil, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
}

// TestProducerCloseStopsRetries: Close stops the retries of a request to a
// broker that refuses connections: it returns at once, not at the records'
// unavailable deadline, and the call fails with messaging.ErrClosed.
func TestProducerCloseStopsRetries(t *testing.T) {
	tr := &refusing{tried: make(chan struct{})}
	p := producer.New(&kafkago.Client{Addr: kafkago.TCP("127.0.0.1:9"), Transport: tr, Timeout: time.Second},
		producer.Settings{Acks: kafkago.RequireAll, MaxRecords: kafka.DefaultBatchSize, Unavailable: time.Minute})
	res := make(chan error, 1)
	go func() {
		res <- p.Write(context.Background(), "refused", 1, []kafkago.Message{{Value: []byte("a")}, {Value: []byte("b")}})
	}()
	select {
	case <-tr.tried:
	case <-time.After(30 * time.Second):
		t.Fatal("no produce request within 30s")
	}
	start := time.Now()
	p.Close()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Close took %v with a request being retried, want it to stop the retries at once (the unavailable timeout is 1m)", took)
	}
	err := <-res
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Errs) != 2 {
		t.Fatalf("Write: %v, want a PublishError for 2 records", err)
	}
	for i, e := range pe.Errs {
		if !errors.Is(e, messaging.ErrClosed) {
			t.Errorf("record %d: %v, want messaging.ErrClosed", i, e)
		}
	}
}

// TestProducerSettings: every compression codec and acknowledgement level
// writes records a consumer reads back as sent.
func TestProducerSettings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec kafkago.Compression
		acks  kafkago.RequiredAcks
	}{
		{"gzip", kafkago.Gzip, kafkago.RequireAll},
		{"snappy", kafkago.Snappy, kafkago.RequireAll},
		{"lz4", kafkago.Lz4, kafkago.RequireAll},
		{"zstd", kafkago.Zstd, kafkago.RequireAll},
		{"acks-one", 0, kafkago.RequireOne},
		{"acks-none", 0, kafkago.RequireNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newProducerEnv(t, 1, func(s *producer.Settings) { s.Compression, s.Acks = tc.codec, tc.acks })
			if err := e.p.Write(t.Context(), e.topic, 1, e.records(300, 64, "")); err != nil {
				t.Fatal(err)
			}
			e.gate.mu.Lock()
			codec := e.gate.codec
			e.gate.mu.Unlock()
			if codec != tc.codec {
				t.Errorf("produce request compressed with %v, want %v", codec, tc.codec)
			}
			want := make([]string, 300)
			for i := range want {
				want[i] = strconv.Itoa(i)
			}
			// With acks=none the write returns before the broker has the
			// records; the read waits for them.
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := e.written(t, 0)
				if slices.Equal(got, want) {
					return
				}
				if len(got) >= len(want) || time.Now().After(deadline) {
					t.Fatalf("partition holds %d records %v..., want the 300 written, in order", len(got), got[:min(len(got), 5)])
				}
			}
		})
	}
}

// TestProducerLinger: with a batch timeout, a partition's sender waits that
// long before sending a request that is not full, so calls made meanwhile
// share it.
func TestProducerLinger(t *testing.T) {
	queued := make(chan int, 2)
	e := newProducerEnv(t, 1, func(s *producer.Settings) {
		s.Linger = 500 * time.Millisecond
		s.TestHookQueued = func(waiting int) { queued <- waiting }
	})
	start := time.Now()
	results := make(chan error, 2)
	go func() { results <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 8, "")) }()
	<-queued
	go func() { results <- e.p.Write(context.Background(), e.topic, 1, e.records(1, 8, "")) }()
	if w := <-queued; w != 2 {
		t.Fatalf("second call queued with %d records waiting, want 2 (the first still lingering)", w)
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if n, took := e.gate.count(), time.Since(start); n != 1 || took < e.set.Linger {
		t.Errorf("%d produce requests after %v, want 1 sent after the %v linger", n, took, e.set.Linger)
	}
}
