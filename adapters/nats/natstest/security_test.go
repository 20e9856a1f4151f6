package natstest_test

import (
	"context"
	"crypto/tls"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/integration"
)

// The security tests run their own in-process nats-server, configured for
// TLS, nkey or JWT (creds) authentication: each shows that the right
// credential connects, publishes and consumes, and that a wrong or missing
// one fails to connect with an error saying why.

// startSecureServer runs an in-process server with opts (host, port, store
// and logging filled in) until the test ends, and returns its host:port.
func startSecureServer(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.NoLog, opts.NoSigs = true, true
	if opts.JetStream {
		opts.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10s")
	}
	return s.Addr().String()
}

// openSecure opens a client with rawURL, failing fast.
func openSecure(rawURL string, opts ...natsadapter.Option) (*natsadapter.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return natsadapter.Open(ctx, rawURL, opts...)
}

// roundTrip proves c works: a message published on a fresh topic reaches a
// subscription of c.
func roundTrip(t *testing.T, c *natsadapter.Client) {
	t.Helper()
	topic, id := integration.UniqueName(t, "secure"), integration.UniqueName(t, "id")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	got := make(chan *messaging.Message, 1)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		select {
		case got <- m:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: id, Payload: []byte("hello")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case m := <-got:
		if m.ID != id || string(m.Payload) != "hello" {
			t.Fatalf("received %s %q, want %s \"hello\"", m.ID, m.Payload, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not received")
	}
}

// wantConnectError checks that opening rawURL fails with an error
// containing every one of want (case-insensitive).
func wantConnectError(t *testing.T, what, rawURL string, want ...string) {
	t.Helper()
	c, err := openSecure(rawURL)
	if err == nil {
		_ = c.Close()
		t.Fatalf("%s: connected, want an error", what)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
	t.Logf("%s: %v", what, err)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS: a server requiring TLS with client certificates accepts a client
// given the CA, its certificate and key in the URL, and refuses one that
// does not trust the server's CA or presents no certificate.
func TestTLS(t *testing.T) {
	certs, other := integration.NewTestCerts(t), integration.NewTestCerts(t)
	kp, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := startSecureServer(t, &server.Options{
		JetStream: true,
		TLS:       true,
		TLSVerify: true,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{kp},
			ClientCAs:    certs.Pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		TLSTimeout: 5,
	})
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "nats://" + addr + "?" + v.Encode()
	}

	for _, scheme := range []string{"nats", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			u := strings.Replace(q("tls_ca", certs.CAFile, "tls_cert", certs.ClientCertFile, "tls_key", certs.ClientKeyFile), "nats://", scheme+"://", 1)
			c, err := openSecure(u)
			if err != nil {
				t.Fatalf("open with CA and client certificate: %v", err)
			}
			defer c.Close()
			if st := c.Conn().TLSRequired(); !st {
				t.Error("connection does not use TLS")
			}
			roundTrip(t, c)
		})
	}
	wantConnectError(t, "server certificate from an untrusted CA",
		q("tls_ca", other.CAFile, "tls_cert", certs.ClientCertFile, "tls_key", certs.ClientKeyFile), "certificate")
	wantConnectError(t, "no CA given", "tls://"+addr, "certificate")
	// TLS 1.3 completes the client's side of the handshake before the server
	// checks the client certificate: depending on timing the client reads
	// the server's alert, or finds the connection closed, which nats.go
	// reports as closed "after TLS handshake".
	if c, err := openSecure(q("tls_ca", certs.CAFile)); err == nil {
		_ = c.Close()
		t.Error("no client certificate: connected, want an error")
	} else if e := err.Error(); !strings.Contains(e, "certificate required") && !strings.Contains(e, "after TLS handshake") {
		t.Errorf("no client certificate: error %q names neither the missing certificate nor the closed handshake", e)
	}
	if _, err := openSecure(q("tls_ca", certs.CAFile, "tls_cert", certs.ClientCertFile)); err == nil || !strings.Contains(err.Error(), "tls_key") {
		t.Errorf("tls_cert without tls_key: %v, want an error naming tls_key", err)
	}
}

// TestNkeySeedFile: a server with an nkey user accepts a client with that
// user's seed file (nkey=FILE) and refuses another seed or none.
func TestNkeySeedFile(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	addr := startSecureServer(t, &server.Options{
		JetStream: true,
		Nkeys:     []*server.NkeyUser{{Nkey: pub}},
	})
	seedFile := writeFile(t, "user.nk", seed)
	c, err := openSecure("nats://" + addr + "?nkey=" + url.QueryEscape(seedFile))
	if err != nil {
		t.Fatalf("open with the user's seed: %v", err)
	}
	defer c.Close()
	roundTrip(t, c)

	wantConnectError(t, "another user's seed", "nats://"+addr+"?nkey="+url.QueryEscape(writeFile(t, "stranger.nk", strangerSeed)), "authorization violation")
	wantConnectError(t, "no seed", "nats://"+addr, "authorization violation")
	wantConnectError(t, "missing seed file", "nats://"+addr+"?nkey="+url.QueryEscape(filepath.Join(t.TempDir(), "absent.nk")), "URL parameter nkey: cannot read the file")
	wantConnectError(t, "not a seed", "nats://"+addr+"?nkey="+url.QueryEscape(writeFile(t, "junk.nk", []byte("not a seed\n"))), "URL parameter nkey: not an nkey seed file")
}

// TestCredsFile: a server in operator mode (operator, account and user
// JWTs, the account in a memory resolver) accepts a client with the user's
// .creds file (creds=FILE) and refuses a user of an account it does not
// know, or no credentials.
func TestCredsFile(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opClaims.Name = "test-operator"
	opJWT, err := opClaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	opDecoded, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	account := func() (nkeys.KeyPair, string, string) {
		acc, _ := nkeys.CreateAccount()
		accPub, _ := acc.PublicKey()
		claims := jwt.NewAccountClaims(accPub)
		claims.Name = "test-account"
		accJWT, err := claims.Encode(operator)
		if err != nil {
			t.Fatal(err)
		}
		return acc, accPub, accJWT
	}
	creds := func(acc nkeys.KeyPair, accPub, name string) string {
		user, _ := nkeys.CreateUser()
		userPub, _ := user.PublicKey()
		seed, _ := user.Seed()
		claims := jwt.NewUserClaims(userPub)
		claims.Name = name
		claims.IssuerAccount = accPub
		userJWT, err := claims.Encode(acc)
		if err != nil {
			t.Fatal(err)
		}
		file, err := jwt.FormatUserConfig(userJWT, seed)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name+".creds", file)
	}
	acc, accPub, accJWT := account()
	unknown, unknownPub, _ := account() // never given to the server
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	// Core mode: JetStream in operator mode needs a system account and
	// more setup, and authentication happens at connect either way.
	addr := startSecureServer(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{opDecoded},
		AccountResolver:  resolver,
	})

	c, err := openSecure("nats://" + addr + "?mode=core&creds=" + url.QueryEscape(creds(acc, accPub, "alice")))
	if err != nil {
		t.Fatalf("open with the user's creds: %v", err)
	}
	defer c.Close()
	roundTrip(t, c)

	wantConnectError(t, "user of an unknown account", "nats://"+addr+"?creds="+url.QueryEscape(creds(unknown, unknownPub, "mallory")), "authorization violation")
	wantConnectError(t, "no credentials", "nats://"+addr, "authorization violation")
	wantConnectError(t, "missing creds file", "nats://"+addr+"?creds="+url.QueryEscape(filepath.Join(t.TempDir(), "absent.creds")), "URL parameter creds: cannot read the file")
}
