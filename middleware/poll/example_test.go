package poll_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/poll"
)

// A Source turns a system that cannot push into a Consumer: it calls the
// fetch function with the last cursor and delivers each new item to the
// handler, advancing the cursor once they are handled.
func ExampleNewSource() {
	records := []string{"alice", "bob", "carol"} // the external system
	fetch := func(_ context.Context, cursor string) ([]poll.Item, string, error) {
		after, _ := strconv.Atoi(cursor) // "" is 0
		var items []poll.Item
		for i := after; i < len(records); i++ {
			items = append(items, poll.Item{ID: "user-" + strconv.Itoa(i), Payload: []byte(records[i])})
		}
		return items, strconv.Itoa(len(records)), nil
	}
	src, err := poll.NewSource(fetch)
	if err != nil {
		panic(err)
	}
	defer src.Close()

	got := make(chan string)
	sub, err := src.Subscribe(context.Background(), "users", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Payload)
		return nil
	})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	fmt.Println(<-got, <-got, <-got)
	// Output: alice bob carol
}
