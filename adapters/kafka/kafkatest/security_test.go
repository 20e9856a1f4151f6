package kafkatest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
)

// TestSASL: a private cluster requiring SASL accepts the adapter with PLAIN
// and SCRAM credentials from the URL (publish and read a message), and
// rejects a wrong password without showing it.
func TestSASL(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plain-pw"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "s256-pw"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "s512-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	for _, tc := range []struct{ name, userinfo, mech string }{
		{"plain", "plainuser:plain-pw", "plain"},
		{"scram-sha-256", "scram256:s256-pw", "scram-sha-256"},
		{"scram-sha-512", "scram512:s512-pw", "scram-sha-512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, err := kafka.Open(ctx, "kafka://"+tc.userinfo+"@"+addr+"?sasl="+tc.mech)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer c.Close()
			topic := integration.UniqueName(t, "sasl")
			if err := c.Publish(ctx, topic, &messaging.Message{ID: "authed"}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			got := make(chan string, 1)
			sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
				got <- m.ID
				return nil
			})
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			defer sub.Close()
			select {
			case id := <-got:
				if id != "authed" {
					t.Fatalf("read %s", id)
				}
			case <-ctx.Done():
				t.Fatal("nothing read over SASL")
			}
			if err := c.DeleteTopic(ctx, topic); err != nil {
				t.Errorf("delete topic: %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := messaging.Open(ctx, "kafka://scram256:not-the-pw@"+addr+"?sasl=scram-sha-256")
		if err == nil {
			t.Fatal("open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), "not-the-pw") {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}

// selfSigned returns a TLS server config with a fresh self-signed
// certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// TestTLS: the adapter talks to a TLS-only cluster with tls=true; without
// TLS, Open fails within its context.
func TestTLS(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(selfSigned(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := kafka.Open(ctx, "kafka://"+addr+"?tls=true&tls_skip_verify=true")
	if err != nil {
		t.Fatalf("open over TLS: %v", err)
	}
	defer c.Close()
	topic := integration.UniqueName(t, "tls")
	got := make(chan string, 1)
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "encrypted"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "encrypted" {
			t.Fatalf("read %s", id)
		}
	case <-ctx.Done():
		t.Fatal("nothing read over TLS")
	}

	short, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel2()
	if c2, err := kafka.Open(short, "kafka://"+addr); err == nil {
		_ = c2.Close()
		t.Fatal("plaintext open of a TLS-only cluster succeeded")
	}
}
