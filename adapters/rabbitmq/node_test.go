package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RabbitMQ's own scripts (the /usr/sbin wrappers switch to the rabbitmq user
// and lose the environment that makes the node private).
const (
	rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	rabbitCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// node is a private RabbitMQ node for fault tests: its own node name,
// Erlang cookie, ports (AMQP and distribution, loopback only), data and log
// directories under t.TempDir(), no plugins and no config file, so it shares
// nothing with the shared broker but epmd's name table. Tests kill it with
// SIGKILL and restart it on the same port and data.
type node struct {
	t    testing.TB
	name string
	port int
	dir  string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
}

// startNode boots a private node, or skips when RabbitMQ is not installed
// (fails under MESSAGING_REQUIRE_BROKERS=1).
func startNode(t testing.TB) *node { return startNodeWith(t, nil) }

// startNodeWith boots a private node with a rabbitmq.conf made by conf from
// the node's directory (nil: no config file).
func startNodeWith(t testing.TB, conf func(dir string) string) *node {
	t.Helper()
	if _, err := os.Stat(rabbitServer); err != nil {
		msg := "rabbitmq-server not installed: " + err.Error()
		if os.Getenv("MESSAGING_REQUIRE_BROKERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := &node{t: t, name: "rabbit-test-" + hex.EncodeToString(b[:]) + "@localhost", port: freePort(t), dir: t.TempDir()}
	home := filepath.Join(n.dir, "home")
	must(t, os.MkdirAll(home, 0o700))
	must(t, os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte("TESTCOOKIE"+hex.EncodeToString(b[:])), 0o400))
	must(t, os.WriteFile(filepath.Join(n.dir, "enabled_plugins"), []byte("[].\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(n.dir, "rabbitmq-env.conf"), nil, 0o600))
	n.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(freePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"),
		// Without conf, a non-existent file: the system one binds the
		// shared port.
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.dir, "advanced.config"),
		`ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}`,
	)
	if conf != nil {
		must(t, os.WriteFile(filepath.Join(n.dir, "rabbitmq.conf"), []byte(conf(n.dir)), 0o600))
	}
	t.Cleanup(n.stop)
	n.start()
	return n
}

// url is the node's AMQP URL.
func (n *node) url() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port) }

// start boots the node and returns when RabbitMQ has started on it
// (rabbitmqctl wait watches the pid file and the application).
func (n *node) start() {
	n.t.Helper()
	log, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(n.t, err)
	_ = os.Remove(filepath.Join(n.dir, "pid"))
	cmd := exec.Command(rabbitServer)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(n.t, cmd.Start())
	n.cmd, n.log = cmd, log
	begin := time.Now()
	if out, err := n.ctl(90*time.Second, "wait", filepath.Join(n.dir, "pid"), "--timeout", "90"); err != nil {
		n.t.Fatalf("private RabbitMQ node %s did not start: %v\n%s\n%s", n.name, err, out, n.tail())
	}
	n.t.Logf("private RabbitMQ node %s on port %d started in %v", n.name, n.port, time.Since(begin).Round(time.Millisecond))
}

// kill SIGKILLs the node's Erlang VM (and the helper processes of the
// process group this test started) and reaps it.
func (n *node) kill() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	if b, err := os.ReadFile(filepath.Join(n.dir, "pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	_ = n.cmd.Wait()
	_ = n.log.Close()
	n.cmd = nil
}

func (n *node) stop() {
	n.kill()
	if n.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			n.t.Logf("%s:\n%s", l, b)
		}
	}
}

// ctl runs rabbitmqctl against the node.
func (n *node) ctl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rabbitCtl, append([]string{"-n", n.name}, args...)...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *node) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
