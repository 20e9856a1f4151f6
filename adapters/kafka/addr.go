package kafka

import (
	"net"

	kafkago "github.com/segmentio/kafka-go"
)

// seedAddr is several seed brokers as one net.Addr, with the same Network
// and String as kafkago.TCP(seeds...) but computed once. kafka-go's own
// multi-address joins its parts into new strings on every call, and its
// Writer makes two such calls per record (a cached metadata lookup per
// message): with three seeds that was about 8% of the CPU time of the
// publish benchmark. kafka-go's Transport splits both strings at the commas,
// exactly as it does for its own type.
type seedAddr struct{ network, address string }

func (a *seedAddr) Network() string { return a.network }
func (a *seedAddr) String() string  { return a.address }

// brokerAddr returns the address of seeds for a kafka-go Writer or Client.
func brokerAddr(seeds []string) net.Addr {
	a := kafkago.TCP(seeds...)
	if len(seeds) == 1 {
		return a // kafka-go's single address already returns fixed strings
	}
	return &seedAddr{network: a.Network(), address: a.String()}
}
