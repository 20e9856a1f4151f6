package redistest

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
	goredis "github.com/redis/go-redis/v9"
)

// ServerBinary is the redis-server StartServer runs.
const ServerBinary = "/usr/bin/redis-server"

// Server is a private redis-server process on a free port, with AOF
// and fsync on every write, which a test kills with SIGKILL and restarts.
type Server struct {
	t    testing.TB
	Dir  string
	Port int
	// Args are extra server arguments, appended to the defaults (a later
	// one wins); set them in StartServerWith's configure.
	Args []string
	// Ping is how the readiness check reaches the server.
	Ping *goredis.Options
	cmd  *exec.Cmd
}

// StartServer starts a private server with extra arguments args.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	return StartServerWith(t, nil, args...)
}

// StartServerWith starts a private server; configure, when not nil, adjusts
// Args and Ping once the port is known (TLS, ACL users).
func StartServerWith(t testing.TB, configure func(r *Server), args ...string) *Server {
	t.Helper()
	fault.NeedBinary(t, ServerBinary)
	port := fault.FreePort(t)
	r := &Server{t: t, Dir: t.TempDir(), Port: port, Args: args,
		Ping: &goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)}}
	if configure != nil {
		configure(r)
	}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// URL is the server's redis:// URL.
func (r *Server) URL() string { return "redis://" + r.Addr() }

// Addr is the server's "127.0.0.1:port".
func (r *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Start runs redis-server (again, on the same port and directory) and
// returns once it answers PING.
func (r *Server) Start() {
	r.t.Helper()
	args := []string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.Dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--logfile", "", "--daemonize", "no"}
	cmd := exec.Command(ServerBinary, append(args, r.Args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		if !signalled {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		r.t.Fatal("private redis-server not ready after 30s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := goredis.NewClient(r.Ping)
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		r.t.Fatalf("private redis-server on port %d: %v", r.Port, err)
	}
}

// Stop suspends the server with SIGSTOP: it still accepts connections
// (the kernel completes them) and takes in requests, but answers none
// until Continue, as a hung or black-holed server would.
func (r *Server) Stop() { r.signal(syscall.SIGSTOP) }

// Continue resumes a server Stop suspended.
func (r *Server) Continue() { r.signal(syscall.SIGCONT) }

func (r *Server) signal(sig syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Fatal("private redis-server is not running")
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("private redis-server: %v: %v", sig, err)
	}
}

// Kill stops the server with SIGKILL (no shutdown, no final fsync) and
// reaps it; a no-op when it is not running.
func (r *Server) Kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_ = r.cmd.Wait()
	r.cmd = nil
}
