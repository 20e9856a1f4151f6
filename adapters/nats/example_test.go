package nats_test

import (
	"context"
	"fmt"
	"log"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
)

// Request/reply between two parts of a program (or two services) over core
// NATS subjects; works in both modes. (Compiled, not run: it needs a
// server; TestRequestReply covers the behaviour.)
func ExampleClient_Request() {
	ctx := context.Background()
	c, err := natsadapter.Open(ctx, "nats://127.0.0.1:4222?mode=core")
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
	fmt.Println(string(reply.Payload)) // echo:ping
}
