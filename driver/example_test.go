package driver_test

import (
	"errors"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// An adapter's Publish checks and completes the messages of a call before
// it sends any of them.
func ExamplePreparePublish() {
	msg := &messaging.Message{Payload: []byte("hello")}
	if err := driver.PreparePublish("orders", []*messaging.Message{msg}, 1<<20); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ID set:", msg.ID != "", "Time set:", !msg.Time.IsZero())

	big := &messaging.Message{Payload: make([]byte, 2<<20)}
	err := driver.PreparePublish("orders", []*messaging.Message{big}, 1<<20)
	fmt.Println(errors.Is(err, messaging.ErrMessageTooLarge), big.ID == "")

	err = driver.PreparePublish("", []*messaging.Message{msg}, 0)
	fmt.Println(errors.Is(err, messaging.ErrInvalidTopic))
	// Output:
	// ID set: true Time set: true
	// true true
	// true
}
