package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCerts is a throwaway certificate authority with a server certificate
// for localhost and 127.0.0.1 and a client certificate it signed, written as
// PEM files for brokers started by tests.
type TestCerts struct {
	CAFile         string         // the CA certificate
	CertFile       string         // the server certificate
	KeyFile        string         // the server's private key
	ClientCertFile string         // a client certificate (for mutual TLS)
	ClientKeyFile  string         // its private key
	Pool           *x509.CertPool // trusts the CA, for tls.Configs
}

// NewTestCerts writes a new CA and its server and client certificates, valid
// for an hour, to a temporary directory of t.
func NewTestCerts(t testing.TB) TestCerts {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("test certificates: %v", err)
		}
	}
	dir := t.TempDir()
	validity := func(serial int64, name string) x509.Certificate {
		return x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := validity(1, "msgkit test CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid, caTmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	caDER, err := x509.CreateCertificate(rand.Reader, &caTmpl, &caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)

	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		must(os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		return p
	}
	// issue writes a certificate signed by the CA and its key.
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := validity(serial, "localhost")
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{usage}
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, &key.PublicKey, caKey)
		must(err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		must(err)
		return write(name+".pem", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	c := TestCerts{CAFile: write("ca.pem", "CERTIFICATE", caDER), Pool: x509.NewCertPool()}
	c.CertFile, c.KeyFile = issue(2, "server", x509.ExtKeyUsageServerAuth)
	c.ClientCertFile, c.ClientKeyFile = issue(3, "client", x509.ExtKeyUsageClientAuth)
	c.Pool.AddCert(ca)
	return c
}
