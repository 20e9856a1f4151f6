package messaging

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Inspector is implemented by clients that can report a topic's backlog
// from the broker's own state (not from counters kept in this process), so
// that one process can watch consumers running anywhere. Every adapter of
// this module implements it.
//
// Inspect reads the state of topic and of every group the broker knows for
// it. It fails with an error wrapping ErrInvalidTopic for a malformed name
// and ErrTopicNotFound when the topic does not exist. A figure the broker
// cannot give is reported as unknown (the zero Count or Age), never as
// zero. The figures are a snapshot: they may be a few milliseconds apart
// from each other. Inspect is safe for concurrent use and cheap enough to
// call every few seconds (it does not read messages' bodies, beyond the
// oldest undelivered one per group where that is how the broker tells its
// age).
type Inspector interface {
	Inspect(ctx context.Context, topic string) (TopicStats, error)
}

// TopicLister is implemented by clients that can list the topics the broker
// holds for this library (msgctl stats and top without arguments use it).
// The names are sorted. Adapters whose broker cannot list (RabbitMQ without
// its management API) do not implement it, or fail with ErrUnsupported.
type TopicLister interface {
	Topics(ctx context.Context) ([]string, error)
}

// TopicStats is a topic's state as the broker reports it.
type TopicStats struct {
	Topic string `json:"topic"`
	// Broker is the adapter's URL scheme ("nats", "redis", "kafka",
	// "amqp", "mem").
	Broker string `json:"broker"`
	// Messages is how many messages the broker retains for the topic.
	Messages Count `json:"messages"`
	// Bytes is their size, where the broker knows it.
	Bytes Count `json:"bytes"`
	// First and Last are the offsets (as in Message.Offset) of the oldest
	// and newest retained messages; empty when the topic holds none or the
	// broker does not number its messages. On partitioned brokers they are
	// per partition (see Partitions) and empty here.
	First string `json:"first,omitempty"`
	Last  string `json:"last,omitempty"`
	// Partitions is the per-partition detail on partitioned brokers (Kafka),
	// empty elsewhere.
	Partitions []PartitionStats `json:"partitions,omitempty"`
	// Groups are the topic's consumer groups, sorted by name.
	Groups []GroupStats `json:"groups"`
}

// PartitionStats is one partition of a partitioned topic.
type PartitionStats struct {
	Partition int    `json:"partition"`
	First     string `json:"first,omitempty"`
	Last      string `json:"last,omitempty"`
	Messages  Count  `json:"messages"`
}

// GroupStats is one consumer group's progress through a topic.
type GroupStats struct {
	Group string `json:"group"`
	// Backlog is how many messages were published to the topic (and kept
	// for the group) but not yet delivered to it.
	Backlog Count `json:"backlog"`
	// InFlight is how many were delivered to a member and not yet settled.
	InFlight Count `json:"in_flight"`
	// OldestAge is the age of the oldest message not yet delivered to the
	// group (known and zero when Backlog is zero).
	OldestAge Age `json:"oldest_age"`
	// Redeliveries is how many deliveries were redeliveries, where the
	// broker counts them.
	Redeliveries Count `json:"redeliveries"`
	// Consumers is how many consumers (group members) are connected.
	Consumers Count `json:"consumers"`
}

// Count is a figure a broker may not report. The zero Count is unknown.
type Count struct {
	n     int64
	known bool
}

// KnownCount is a Count the broker reported as n.
func KnownCount(n int64) Count { return Count{n: n, known: true} }

// Value returns the count and whether it is known.
func (c Count) Value() (int64, bool) { return c.n, c.known }

// String is the count in decimal, or "?" when unknown.
func (c Count) String() string {
	if !c.known {
		return "?"
	}
	return strconv.FormatInt(c.n, 10)
}

// MarshalJSON encodes the count as a number, or null when unknown.
func (c Count) MarshalJSON() ([]byte, error) {
	if !c.known {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, c.n, 10), nil
}

// UnmarshalJSON decodes a number, or null as unknown.
func (c *Count) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = Count{}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*c = KnownCount(n)
	return nil
}

// Age is a duration a broker may not report. The zero Age is unknown.
type Age struct {
	d     time.Duration
	known bool
}

// KnownAge is an Age the broker reported as d.
func KnownAge(d time.Duration) Age { return Age{d: d, known: true} }

// Value returns the age and whether it is known.
func (a Age) Value() (time.Duration, bool) { return a.d, a.known }

// String is the age as time.Duration prints it, or "?" when unknown.
func (a Age) String() string {
	if !a.known {
		return "?"
	}
	return a.d.String()
}

// MarshalJSON encodes the age in seconds (a number), or null when unknown.
func (a Age) MarshalJSON() ([]byte, error) {
	if !a.known {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, a.d.Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON decodes seconds, or null as unknown.
func (a *Age) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*a = Age{}
		return nil
	}
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = KnownAge(time.Duration(s * float64(time.Second)))
	return nil
}
