package rabbitmq_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/integration"
)

// testCA writes a CA and a server certificate for localhost / 127.0.0.1
// into dir and returns the CA pool.
func testCA(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "msgkit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	write := func(name, typ string, b []byte) {
		must(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// TestTLS: an amqps:// client with the node's CA connects over TLS and
// publishes and consumes; without the CA the handshake is refused.
func TestTLS(t *testing.T) {
	certDir := t.TempDir()
	pool := testCA(t, certDir)
	port := freePort(t)
	n := startNodeWith(t, func(string) string {
		return fmt.Sprintf(`listeners.ssl.1 = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
`, port, filepath.Join(certDir, "ca.pem"), filepath.Join(certDir, "server.pem"), filepath.Join(certDir, "server.key"))
	})
	url := fmt.Sprintf("amqps://guest:guest@localhost:%d/", port)
	_ = n

	if _, err := rabbitmq.Open(t.Context(), url, rabbitmq.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		t.Error("amqps without the test CA connected")
	}

	c := integration.OpenRabbitMQ(t, url, rabbitmq.WithTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))
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
