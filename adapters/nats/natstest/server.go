package natstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
	natsgo "github.com/nats-io/nats.go"
)

// NATSServerBinary is the nats-server StartServer runs.
const NATSServerBinary = "/usr/sbin/nats-server"

// Server is a private nats-server process (JetStream on) with its own
// port and store directory, which a test kills with SIGKILL and restarts.
type Server struct {
	t    testing.TB
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
}

// StartServer starts a private nats-server; args are extra flags
// (authentication, for example). Without the binary the test is skipped
// (failed under MESSAGING_REQUIRE_BROKERS=1).
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	fault.NeedBinary(t, NATSServerBinary)
	s := &Server{t: t, Port: fault.FreePort(t), Dir: t.TempDir(), args: args}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's nats:// URL.
func (s *Server) URL() string { return "nats://" + s.Addr() }

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Start runs the server (again, on the same port and store) and returns
// once it accepts connections with JetStream ready.
func (s *Server) Start() {
	s.t.Helper()
	s.launch()
	s.waitReady(20 * time.Second)
}

// launch starts the process without waiting for it.
func (s *Server) launch() {
	s.t.Helper()
	logPath := filepath.Join(s.Dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"-js", "-sd", filepath.Join(s.Dir, "store"), "-p", strconv.Itoa(s.Port), "-a", "127.0.0.1"}, s.args...)
	s.cmd = exec.Command(NATSServerBinary, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// waitReady polls until the server accepts connections with JetStream
// ready (in a cluster: a meta leader elected), failing the test after
// timeout.
func (s *Server) waitReady(timeout time.Duration) {
	s.t.Helper()
	if err := s.ready(timeout); err != nil {
		s.t.Fatal(err)
	}
}

// errPortTaken: a port FreePort returned was taken before the server bound
// it (by any process on the machine).
var errPortTaken = errors.New("natstest: port taken meanwhile")

// ready polls until the server is ready; it fails after timeout, or at once
// with errPortTaken when the server could not bind a port.
func (s *Server) ready(timeout time.Duration) error {
	logPath := filepath.Join(s.Dir, "server.log")
	deadline := time.Now().Add(timeout)
	for {
		// Readiness is a condition to poll: connect and ask JetStream for
		// the account's info.
		nc, err := natsgo.Connect(s.URL(), natsgo.Timeout(time.Second), s.auth())
		if err == nil {
			js, _ := nc.JetStream()
			_, err = js.AccountInfo()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("address already in use")) {
			return fmt.Errorf("natstest: private nats-server on port %d: %w\n%s", s.Port, errPortTaken, log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: private nats-server on port %d not ready: %v\n%s", s.Port, err, log)
		}
		time.Sleep(50 * time.Millisecond) // polling interval of the readiness check
	}
}

// auth returns the credentials the server was started with.
func (s *Server) auth() natsgo.Option {
	var user, pass, token string
	for i := 0; i+1 < len(s.args); i++ {
		switch s.args[i] {
		case "--user":
			user = s.args[i+1]
		case "--pass":
			pass = s.args[i+1]
		case "--auth":
			token = s.args[i+1]
		}
	}
	if token != "" {
		return natsgo.Token(token)
	}
	return natsgo.UserInfo(user, pass)
}

// Stop suspends the server with SIGSTOP: it still accepts connections
// (the kernel completes them) and takes in requests, but answers none
// until Continue, as a hung or black-holed server would. It returns once
// every thread of the process has stopped (the signal stops them
// asynchronously: a thread running meanwhile could still answer).
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	deadline := time.Now().Add(10 * time.Second)
	for !s.stopped() {
		if time.Now().After(deadline) {
			s.t.Fatal("private nats-server: not stopped 10s after SIGSTOP")
		}
		time.Sleep(time.Millisecond) // polling interval of the condition
	}
}

// stopped reports whether every thread of the process is stopped (state T
// in /proc).
func (s *Server) stopped() bool {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", s.cmd.Process.Pid))
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return len(stats) > 0
}

// Continue resumes a server Stop suspended; a no-op when it is not
// running.
func (s *Server) Continue() {
	if s.cmd != nil {
		s.signal(syscall.SIGCONT)
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatal("private nats-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("private nats-server: %v: %v", sig, err)
	}
}

// Kill crashes the server (SIGKILL) and reaps it; a no-op when it is not
// running.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}
