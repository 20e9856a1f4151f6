package redistest_test

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestTLSAndACL: a private server that speaks only TLS and only to the ACL
// user "alice": rediss:// URLs with the user's password work, a wrong
// password fails without showing it, and New accepts a go-redis client
// configured with the CA.
func TestTLSAndACL(t *testing.T) {
	certs := integration.NewTestCerts(t)
	srv := redistest.StartServerWith(t, func(r *redistest.Server) {
		r.Args = append(r.Args,
			"--port", "0", "--tls-port", strconv.Itoa(r.Port),
			"--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile, "--tls-ca-cert-file", certs.CAFile,
			"--tls-auth-clients", "no",
			"--user", "default", "off",
			"--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all")
		r.Ping.Username, r.Ping.Password = "alice", "alice-pw"
		r.Ping.TLSConfig = &tls.Config{RootCAs: certs.Pool, MinVersion: tls.VersionTLS12}
	})
	ctx := t.Context()
	base := fmt.Sprintf("127.0.0.1:%d", srv.Port)

	c, err := messaging.Open(ctx, "rediss://alice:alice-pw@"+base+"/?skip_verify=true")
	if err != nil {
		t.Fatalf("Open with TLS and ACL user: %v", err)
	}
	defer c.Close()
	topic := integration.UniqueName(t, "tls")
	col := integration.NewCollector()
	sub, err := c.Subscribe(ctx, topic, col.Handler(), messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "over-tls"}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)

	_, err = messaging.Open(ctx, "rediss://alice:wrong-pw-123@"+base+"/?skip_verify=true")
	if err == nil || strings.Contains(err.Error(), "wrong-pw-123") {
		t.Fatalf("wrong password: %v, want an error that does not show the password", err)
	}
	if _, err := messaging.Open(ctx, "redis://alice:alice-pw@"+base+"/?dial_timeout=2s"); err == nil {
		t.Fatal("plain TCP to a TLS-only port succeeded")
	}

	rc := goredis.NewClient(&goredis.Options{Addr: base, Username: "alice", Password: "alice-pw",
		TLSConfig: &tls.Config{RootCAs: certs.Pool, MinVersion: tls.VersionTLS12}})
	defer rc.Close()
	wrapped, err := redisadapter.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := wrapped.Publish(ctx, topic, &messaging.Message{ID: "via-new"}); err != nil {
		t.Fatalf("Publish through New over a TLS client: %v", err)
	}
	col.WaitDistinct(t, 2, 30*time.Second)
	col.Report(t, []string{"over-tls", "via-new"})
	if err := wrapped.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Errorf("Close of a Client from New closed the caller's go-redis client: %v", err)
	}
}
