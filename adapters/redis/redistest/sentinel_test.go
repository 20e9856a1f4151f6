package redistest_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestSentinelClient: New works over a go-redis failover client that finds
// the master through a (private) Sentinel.
func TestSentinelClient(t *testing.T) {
	master := redistest.StartServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sport := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mk 127.0.0.1 %d 1\n", sport, dir, master.Port)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(redistest.ServerBinary, conf, "--sentinel")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	// Sentinel logs "+monitor master" once it watches the master.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		done := false
		for sc.Scan() {
			if !done && strings.Contains(sc.Text(), "+monitor master mk") {
				close(ready)
				done = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("sentinel did not start monitoring the master within 30s")
	}

	fc := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: "mk", SentinelAddrs: []string{fmt.Sprintf("127.0.0.1:%d", sport)}})
	t.Cleanup(func() { _ = fc.Close() })
	c, err := redisadapter.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := integration.UniqueName(t, "sentinel")
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "via-sentinel"}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)
	col.Report(t, []string{"via-sentinel"})
}
