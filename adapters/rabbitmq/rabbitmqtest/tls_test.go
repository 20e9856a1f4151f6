package rabbitmqtest_test

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestTLS: an amqps:// client with the node's CA connects over TLS and
// publishes and consumes; without the CA the handshake is refused.
func TestTLS(t *testing.T) {
	t.Parallel() // its own private node
	certs := integration.NewTestCerts(t)
	port := fault.FreePort(t)
	n := rabbitmqtest.StartNodeWith(t, func(string) string {
		return fmt.Sprintf(`listeners.ssl.1 = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
`, port, certs.CAFile, certs.CertFile, certs.KeyFile)
	})
	url := fmt.Sprintf("amqps://guest:guest@localhost:%d/", port)
	_ = n

	if _, err := rabbitmq.Open(t.Context(), url, rabbitmq.WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		t.Error("amqps without the test CA connected")
	}

	c := rabbitmqtest.Open(t, url, rabbitmq.WithTLSConfig(&tls.Config{RootCAs: certs.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))
	topic, group := integration.UniqueName(t, "tls"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msg := messaging.NewMessage([]byte("over TLS"))
	if err := c.Publish(t.Context(), topic, msg); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)
	col.Report(t, []string{msg.ID})
}
