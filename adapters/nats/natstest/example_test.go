package natstest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
)

// Request/reply between two parts of a program (or two services) over core
// NATS subjects; works in both modes.
func Example_requestReply() {
	ctx := context.Background()
	// An in-process server for the example; dial yours, e.g.
	// "nats://127.0.0.1:4222?mode=core".
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server did not start")
	}
	c, err := natsadapter.Open(ctx, srv.ClientURL()+"?mode=core")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
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
