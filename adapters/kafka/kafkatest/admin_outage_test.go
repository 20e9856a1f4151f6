package kafkatest_test

import (
	"testing"

	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private broker (kfake)
// cut, or the broker silent (it takes connections and requests and
// answers nothing, which no error reveals), each topology and admin call
// fails with messaging.ErrUnavailable within about unavailable_timeout, or
// with its context's error when that ends first
// (fault.AdminWhileUnreachable); then Close returns within about
// unavailable_timeout too (fault.CloseWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	for _, how := range []struct {
		name string
		of   func(*kafkatest.Cluster) func()
	}{{"cut", func(k *kafkatest.Cluster) func() { return k.Cut }}, {"silent", func(k *kafkatest.Cluster) func() { return k.Proxy(0).Silence }}} {
		t.Run(how.name, func(t *testing.T) {
			t.Parallel() // a private cluster and client each; waits mostly
			k := kafkatest.StartCluster(t, 1)
			c := openURL(t, "kafka://"+k.Brokers()+"?unavailable_timeout=1s&"+kafkatest.TestParams, true)
			topic, group := integration.UniqueName(t, "adm"), integration.UniqueName(t, "g")
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			fault.AdminWhileUnreachable(t, c, how.of(k), topic, group, integration.UniqueName(t, "gone"), nil)
			fault.CloseWhileUnreachable(t, c)
		})
	}
}
