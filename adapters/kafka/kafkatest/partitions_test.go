package kafkatest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishSeesAddedPartitions: Publish keeps a topic's partition count
// for metadata_ttl (so that a Publish within it makes no lookup), and no
// longer: partitions added to the topic receive keyless messages within
// about twice metadata_ttl, as with kafka-go's metadata cache alone.
func TestPublishSeesAddedPartitions(t *testing.T) {
	const ttl = 300 * time.Millisecond
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)+"&metadata_ttl="+ttl.String(), true)
	topic := integration.UniqueName(t, "grow")
	publish := func() {
		t.Helper()
		msgs := make([]*messaging.Message, 8)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: []byte("x")}
		}
		if err := c.Publish(t.Context(), topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publish() // creates the topic with one partition; its count is kept
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(k.Brokers(), ",")[0])}
	res, err := admin.CreatePartitions(t.Context(), &kafkago.CreatePartitionsRequest{
		Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	newer := func() int64 { // messages in the added partitions
		reqs := map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2), kafkago.LastOffsetOf(3)}}
		out, err := admin.ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{Topics: reqs})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range out.Topics[topic] {
			if p.Error == nil {
				n += p.LastOffset
			}
		}
		return n
	}
	for newer() == 0 {
		if took := time.Since(added); took > 2*ttl+2*time.Second {
			t.Fatalf("no keyless message in the added partitions %v after they were added (metadata_ttl %v)", took, ttl)
		}
		publish()
	}
	t.Logf("added partitions used %v after they were added (metadata_ttl %v)", time.Since(added).Round(time.Millisecond), ttl)
}
