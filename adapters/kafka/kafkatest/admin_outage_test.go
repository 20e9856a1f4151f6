package kafkatest_test

import (
	"testing"

	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private broker (kfake)
// cut, each topology and admin call fails with messaging.ErrUnavailable
// within about unavailable_timeout, or with its context's error when that
// ends first (fault.AdminWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, "kafka://"+k.Brokers()+"?unavailable_timeout=1s&"+kafkatest.TestParams, true)
	topic, group := integration.UniqueName(t, "adm"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	fault.AdminWhileUnreachable(t, c, k.Cut, topic, group, integration.UniqueName(t, "gone"), nil)
}
