package redis

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
)

// TestCoalescedPayloadNotReadAfterPublishReturned: a Publish whose ctx
// ends while a pipeline holds its request returns at once; the caller may
// then reuse its message (the payload buffer, say). The pipeline, which
// goes on for another caller still waiting, must not send what the caller
// wrote there afterwards. The test plays the coalescing goroutine, running
// the real pipeline (exec) for both callers' requests; it holds the
// pipeline's dial until the first Publish has returned and its caller has
// reused the payload; a fake server then records what was sent.
func TestCoalescedPayloadNotReadAfterPublishReturned(t *testing.T) {
	dialing, release := make(chan struct{}), make(chan struct{})
	sent := make(chan string, 2)
	var once sync.Once
	rc := goredis.NewClient(&goredis.Options{
		Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			once.Do(func() { close(dialing) })
			<-release
			client, server := net.Pipe()
			go serveXAdd(server, sent)
			return client, nil
		},
	})
	c, err := New(rc, WithCoalescing(1), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	co, take := playCoalescer(t, c)
	timeout := time.After(10 * time.Second)

	payload := []byte("original")
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan error, 1)
	go func() { published <- c.Publish(ctx, "t", messaging.NewMessage(payload)) }()
	r1 := take("the first Publish")
	other := make(chan error, 1)
	go func() { other <- c.Publish(t.Context(), "t", messaging.NewMessage([]byte("other"))) }()
	r2 := take("the other Publish")
	go co.exec([]*pubReq{r1, r2}) // one pipeline
	select {
	case <-dialing: // the pipeline holds the requests
	case <-timeout:
		t.Fatal("no dial within 10s")
	}
	cancel()
	if err := <-published; err == nil {
		t.Fatal("Publish = nil, want ctx's error")
	}
	copy(payload, "reused!!") // the caller's buffer, free once Publish returned
	close(release)
	select {
	case err := <-other: // the pipeline was sent
		if err != nil {
			t.Fatalf("the other Publish: %v", err)
		}
	case <-timeout:
		t.Fatal("the other Publish did not return within 10s")
	}
	close(sent)
	for got := range sent {
		if got != "original" && got != "other" {
			t.Errorf("the pipeline sent payload %q, written by the caller after Publish returned; want %q", got, "original")
		}
	}
}

// serveXAdd answers the XADDs on conn as a Redis server would, sending
// the last argument of each (the payload) on sent, and fails any other
// command.
func serveXAdd(conn net.Conn, sent chan<- string) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		reply := "$3\r\n1-1\r\n"
		if strings.EqualFold(args[0], "xadd") {
			select {
			case sent <- args[len(args)-1]:
			default:
			}
		} else {
			reply = "-ERR unknown command\r\n" // HELLO: go-redis goes on without
		}
		if _, err := io.WriteString(conn, reply); err != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(line[1 : len(line)-2])
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(line[1 : len(line)-2])
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}
