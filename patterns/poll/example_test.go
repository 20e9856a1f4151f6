package poll_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/poll"
)

type Ticket struct {
	N     int    `json:"n"`
	Title string `json:"title"`
}

// A Poller copies what a system without push has added since its cursor
// into a topic; consumers then react to the topic. PollOnce is one round
// (Run polls on an interval).
func ExampleNew() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://poll-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	tickets := []Ticket{{1, "login broken"}, {2, "slow search"}} // the external system
	src := poll.SourceFunc[Ticket](func(_ context.Context, cursor, _ string) (poll.Page[Ticket], error) {
		after, _ := strconv.Atoi(cursor)
		var page poll.Page[Ticket]
		for _, t := range tickets {
			if t.N > after {
				page.Items = append(page.Items, poll.Item[Ticket]{ID: "ticket-" + strconv.Itoa(t.N), Value: t})
			}
		}
		page.Cursor = strconv.Itoa(len(tickets))
		return page, nil
	})
	p, err := poll.New[Ticket]("helpdesk", src, client, "tickets")
	if err != nil {
		panic(err)
	}
	n, _ := p.PollOnce(ctx)
	fmt.Println("published", n)
	n, _ = p.PollOnce(ctx)
	fmt.Println("published", n)
	tickets = append(tickets, Ticket{3, "typo"})
	n, _ = p.PollOnce(ctx)
	cursor, _ := p.Cursor(ctx)
	fmt.Println("published", n, "cursor", cursor)
	// Output:
	// published 2
	// published 0
	// published 1 cursor 3
}
