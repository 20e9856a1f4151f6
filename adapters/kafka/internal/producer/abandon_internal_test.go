package producer

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/msgkit/messaging"
)

// playedBroker is a kafka-go transport whose produce requests the test
// answers: each request's record values go to attempts, and it returns
// the error the test sends on replies.
//
// When gate is not nil, a request first tells started and waits for gate
// before it reads its records, as kafka-go's transport reads them only
// once it has a connection; a request that cannot read them (readErrs)
// fails with that error at once, as kafka-go's does.
type playedBroker struct {
	attempts chan []string
	replies  chan error
	started  chan struct{}
	gate     chan struct{}
	readErrs chan error
}

func (b *playedBroker) RoundTrip(ctx context.Context, _ net.Addr, req protocol.Message) (protocol.Message, error) {
	pr, ok := req.(*produceAPI.Request)
	if !ok {
		return nil, errors.New("unexpected request")
	}
	if b.gate != nil {
		b.started <- struct{}{}
		<-b.gate
	}
	var values []string
	rr := pr.Topics[0].Partitions[0].RecordSet.Records
	for {
		r, err := rr.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.readErrs <- err
			return nil, err
		}
		v, _ := io.ReadAll(r.Value)
		values = append(values, string(v))
	}
	b.attempts <- values
	return nil, <-b.replies
}

// TestAbandonedCallIsNotResent: a call whose ctx ended while a sender
// goroutine held its records in a request being retried returned, and its
// caller may reuse its records' memory then (messaging.Publisher: the
// messages are the caller's again once Publish returns). The sender must
// not send them again: it used to retry the request as it was, reading the
// caller's records after the call returned (sending what the caller had
// since written there). The test plays the broker, so it decides when each
// attempt ends.
func TestAbandonedCallIsNotResent(t *testing.T) {
	b := &playedBroker{attempts: make(chan []string), replies: make(chan error)}
	p := New(&kafkago.Client{Addr: kafkago.TCP("127.0.0.1:1"), Transport: b}, Settings{
		Acks:        kafkago.RequireAll,
		MaxRecords:  10,
		Linger:      time.Millisecond, // every call's records go to a sender goroutine
		Unavailable: time.Minute,
	})
	take := func(what string) []string {
		t.Helper()
		select {
		case v := <-b.attempts:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("no request for %s", what)
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	value := []byte("m0")
	errc := make(chan error, 1)
	go func() {
		errc <- p.Write(ctx, "t", 1, []kafkago.Message{{Value: value}})
	}()
	if got := take("the first attempt"); len(got) != 1 || got[0] != "m0" {
		t.Fatalf("first attempt: %q, want [m0]", got)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	copy(value, "xx") // the caller reuses its buffer: the call returned
	b.replies <- kafkago.NotLeaderForPartition
	// The sender goes on without the abandoned call's records: with none
	// left, it ends.
	sendersEndWithoutRequest(t, p, b, ": the call's records were read after it returned")
	p.Close()
}

// sendersEndWithoutRequest waits for p's senders to end, failing t if a
// request is made meanwhile (what, after its records, says why that is
// wrong).
func sendersEndWithoutRequest(t *testing.T, p *Producer, b *playedBroker, what string) {
	t.Helper()
	ended := make(chan struct{})
	go func() {
		p.senders.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case got := <-b.attempts:
		t.Errorf("a request after the call returned: %q, want none%s", got, what)
		b.replies <- messaging.ErrClosed
		<-ended
	}
}

// TestAbandonedCallIsNotReadLate: a call whose ctx ended while a sender
// goroutine's request held its records, not read yet (kafka-go reads a
// request's records once it has a connection to the leader), returned,
// and its caller may reuse their memory then. The request must not read
// them afterwards: it used to, sending what the caller had since written
// there. The test plays the broker's transport, so it decides when the
// request reads its records.
func TestAbandonedCallIsNotReadLate(t *testing.T) {
	b := &playedBroker{
		attempts: make(chan []string), replies: make(chan error),
		started: make(chan struct{}), gate: make(chan struct{}), readErrs: make(chan error, 1),
	}
	p := New(&kafkago.Client{Addr: kafkago.TCP("127.0.0.1:1"), Transport: b}, Settings{
		Acks:        kafkago.RequireAll,
		MaxRecords:  10,
		Linger:      time.Millisecond, // every call's records go to a sender goroutine
		Unavailable: time.Minute,
	})
	ctx, cancel := context.WithCancel(context.Background())
	value := []byte("m0")
	errc := make(chan error, 1)
	go func() {
		errc <- p.Write(ctx, "t", 1, []kafkago.Message{{Value: value}})
	}()
	select {
	case <-b.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no request")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	copy(value, "xx") // the caller reuses its buffer: the call returned
	close(b.gate)     // the request now has its connection, and reads
	select {
	case got := <-b.attempts:
		t.Errorf("the request read %q after the call returned, want an error: no records to read", got)
		b.replies <- messaging.ErrClosed
	case err := <-b.readErrs:
		t.Logf("the request's read failed: %v", err)
	}
	sendersEndWithoutRequest(t, p, b, "")
	p.Close()
}
