package rabbitmqtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
)

// RabbitMQ's own scripts (the /usr/sbin wrappers switch to the rabbitmq user
// and lose the environment that makes the node private).
const (
	RabbitMQServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	RabbitMQCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// Node is a private RabbitMQ node: its own node name, Erlang cookie,
// ports (AMQP and distribution, loopback only), data and log directories
// under t.TempDir(), no plugins and no config file unless given, so it
// shares nothing with the shared broker but epmd's name table. Tests kill
// it with SIGKILL and restart it on the same port and data.
type Node struct {
	t     testing.TB
	Name  string
	Port  int
	Dir   string
	env   []string
	cmd   *exec.Cmd
	log   *os.File
	began time.Time
}

// StartNode boots a private node, or skips when RabbitMQ is not
// installed (fails under MESSAGING_REQUIRE_BROKERS=1).
func StartNode(t testing.TB) *Node { return StartNodeWith(t, nil) }

// StartNodeWith boots a private node with a rabbitmq.conf made by conf
// from the node's directory (nil: no config file).
func StartNodeWith(t testing.TB, conf func(dir string) string) *Node {
	t.Helper()
	fault.NeedBinary(t, RabbitMQServer)
	n := newRabbitNode(t, "", conf)
	n.Start()
	return n
}

// newRabbitNode prepares a private node (not started) with the Erlang
// cookie cookie ("": a random one).
func newRabbitNode(t testing.TB, cookie string, conf func(dir string) string) *Node {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	if cookie == "" {
		cookie = "TESTCOOKIE" + hex.EncodeToString(b[:])
	}
	n := &Node{t: t, Name: "rabbit-test-" + hex.EncodeToString(b[:]) + "@localhost", Port: fault.FreePort(t), Dir: t.TempDir()}
	home := filepath.Join(n.Dir, "home")
	must(t, os.MkdirAll(home, 0o700))
	must(t, os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(cookie), 0o400))
	must(t, os.WriteFile(filepath.Join(n.Dir, "enabled_plugins"), []byte("[].\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(n.Dir, "rabbitmq-env.conf"), nil, 0o600))
	n.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(fault.FreePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.Dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.Dir, "pid"),
		"ERL_CRASH_DUMP="+filepath.Join(n.Dir, "erl_crash.dump"), // not in the package directory
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.Dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.Dir, "rabbitmq-env.conf"),
		// Without conf, a non-existent file: the system one binds the
		// shared port.
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.Dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.Dir, "advanced.config"),
		`ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}`,
	)
	if conf != nil {
		must(t, os.WriteFile(filepath.Join(n.Dir, "rabbitmq.conf"), []byte(conf(n.Dir)), 0o600))
	}
	t.Cleanup(n.stop)
	return n
}

// URL is the node's AMQP URL (guest/guest).
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@%s/", n.Addr()) }

// Addr is the node's AMQP "127.0.0.1:port".
func (n *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.Port) }

// Start boots the node and returns when RabbitMQ has started on it
// (rabbitmqctl wait watches the pid file and the application).
func (n *Node) Start() {
	n.t.Helper()
	n.launch()
	if err := n.await(); err != nil {
		n.t.Fatal(err)
	}
}

// launch starts the node's process without waiting for RabbitMQ.
func (n *Node) launch() {
	n.t.Helper()
	log, err := os.OpenFile(filepath.Join(n.Dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(n.t, err)
	_ = os.Remove(filepath.Join(n.Dir, "pid"))
	cmd := exec.Command(RabbitMQServer)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(n.t, cmd.Start())
	n.cmd, n.log = cmd, log
	n.began = time.Now()
}

// await waits until RabbitMQ has started on the launched node (rabbitmqctl
// wait watches the pid file and the application); safe to call from any
// goroutine.
func (n *Node) await() error {
	if out, err := n.Ctl(90*time.Second, "wait", filepath.Join(n.Dir, "pid"), "--timeout", "90"); err != nil {
		return fmt.Errorf("rabbitmqtest: private RabbitMQ node %s did not start: %v\n%s\n%s", n.Name, err, out, n.tail())
	}
	n.t.Logf("private RabbitMQ node %s on port %d started in %v", n.Name, n.Port, time.Since(n.began).Round(time.Millisecond))
	return nil
}

// Kill SIGKILLs the node's Erlang VM (and the helper processes of the
// process group Start began) and reaps it; a no-op when it is not running.
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	if b, err := os.ReadFile(filepath.Join(n.Dir, "pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	_ = n.cmd.Wait()
	_ = n.log.Close()
	n.cmd = nil
}

func (n *Node) stop() {
	n.Kill()
	if n.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(n.Dir, "log", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			n.t.Logf("%s:\n%s", l, b)
		}
	}
}

// Ctl runs rabbitmqctl against the node and returns its combined output.
func (n *Node) Ctl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, RabbitMQCtl, append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *Node) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "server.out"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
