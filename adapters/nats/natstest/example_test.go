package natstest_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
)

// Request/reply between two parts of a program (or two services) over core
// NATS subjects; works in both modes.
func Example_requestReply() {
	ctx := context.Background()
	c, stop := openCore(ctx)
	defer stop()
	sub, err := c.Serve(ctx, "example.echo", func(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Payload: append([]byte("echo:"), req.Payload...)}, nil
	}, messaging.Group("echo-servers"))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	reply, err := c.Request(ctx, "example.echo", &messaging.Message{Payload: []byte("ping")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply.Payload))
	// Output: echo:ping
}

// Fire and forget on core NATS: PublishAsync without a callback sends each
// event as nats.go's Publish would, with no result to track; Flush returns
// once the server has every one of them.
func Example_fireAndForget() {
	ctx := context.Background()
	c, stop := openCore(ctx)
	defer stop()
	const n = 1000
	all := make(chan struct{})
	var got atomic.Int64
	sub, err := c.Subscribe(ctx, "example.clicks", func(context.Context, *messaging.Message) error {
		if got.Add(1) == n {
			close(all)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for i := range n {
		c.PublishAsync(ctx, "example.clicks", &messaging.Message{Payload: fmt.Appendf(nil, "click %d", i)}, nil)
	}
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("flushed")
	select {
	case <-all:
		fmt.Println(got.Load(), "received")
	case <-time.After(10 * time.Second):
		fmt.Println("only", got.Load(), "received")
	}
	// Output:
	// flushed
	// 1000 received
}

// openCore opens a core-mode client on an in-process NATS server for an
// example; dial yours instead, e.g.
//
//	natsadapter.Open(ctx, "nats://127.0.0.1:4222?mode=core")
//
// stop closes the client, then stops the server.
func openCore(ctx context.Context) (c *natsadapter.Client, stop func()) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server did not start")
	}
	c, err = natsadapter.Open(ctx, srv.ClientURL()+"?mode=core")
	if err != nil {
		log.Fatal(err)
	}
	return c, func() {
		_ = c.Close()
		srv.Shutdown()
	}
}
