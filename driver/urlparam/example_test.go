package urlparam_test

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
)

// An adapter declares its URL parameters once and reads a URL against
// them with typed getters and defaults; Err, called after the getters,
// rejects a malformed value or an undeclared parameter, naming it.
func Example() {
	params := []urlparam.Param{
		{Name: "prefetch", Doc: "messages pulled ahead"},
		{Name: "max_message_size", Doc: "largest message accepted"},
		{Name: "timeout", Doc: "how long a connection attempt may take"},
	}
	for _, raw := range []string{
		"mybroker://host?prefetch=10&max_message_size=512KiB",
		"mybroker://host?prefetch=ten",
		"mybroker://host?prefech=10",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		p := urlparam.NewDeclared(u, params)
		prefetch := p.Int("prefetch", 256)
		maxSize := p.Size("max_message_size", 1<<20)
		timeout := p.Duration("timeout", 5*time.Second)
		if err := p.Err(); err != nil {
			fmt.Println(errors.Is(err, messaging.ErrInvalidOption), err)
			continue
		}
		fmt.Println(prefetch, maxSize, timeout)
	}
	// Output:
	// 10 524288 5s
	// true messaging: invalid option: URL parameter prefetch="ten": not an integer
	// true messaging: invalid option: unknown URL parameter(s) prefech (known: max_message_size, prefetch, timeout)
}

// Named wraps an adapter's option built from a URL parameter, so that the
// option's error also names the parameter the user wrote.
func ExampleNamed() {
	type config struct{ prefetch int }
	withPrefetch := func(n int) func(*config) error {
		return func(c *config) error {
			if n < 1 {
				return fmt.Errorf("mybroker: WithPrefetch(%d): must be at least 1: %w", n, messaging.ErrInvalidOption)
			}
			c.prefetch = n
			return nil
		}
	}

	u, err := url.Parse("mybroker://host?prefetch=0")
	if err != nil {
		panic(err)
	}
	p := urlparam.NewDeclared(u, []urlparam.Param{{Name: "prefetch", Doc: "messages pulled ahead"}})
	opt := urlparam.Named("prefetch", withPrefetch(p.Int("prefetch", 256)))
	if err := p.Err(); err != nil {
		panic(err)
	}
	var cfg config
	fmt.Println(opt(&cfg))
	// Output: mybroker: WithPrefetch(0): must be at least 1: messaging: invalid option (URL parameter prefetch)
}

// CheckDoc, which an adapter's test runs on its doc.go (see CheckDeclared),
// reports the declared parameters its "Parameters" block does not list, and
// the listed ones nothing declares.
func ExampleCheckDoc() {
	const doc = `// Package mybroker is an adapter.
//
// Parameters:
//
//	prefetch=256              messages pulled ahead
//	tls=false                 use TLS
package mybroker`
	err := urlparam.CheckDoc(doc, []urlparam.Param{
		{Name: "prefetch", Doc: "messages pulled ahead"},
		{Name: "timeout", Doc: "how long a connection attempt may take"},
	})
	fmt.Println(err)
	// Output: urlparam: documented URL parameters differ from the declared ones: not documented: [timeout]; documented but not declared: [tls]
}
