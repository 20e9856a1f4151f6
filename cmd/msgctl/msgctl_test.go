package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sys/unix"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/middleware/deadletter"
)

// bin is the msgctl binary built once for all tests.
var bin string

// buildFlags are go build's flags for bin: -race when this test binary has
// the race detector (race_test.go), so that msgctl runs with it too and its
// packages come from the build cache the test's own build filled, instead
// of all being compiled once more without it.
var buildFlags []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msgctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "msgctl")
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", bin, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building msgctl:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// msgctl runs the binary with args, stdin and no MESSAGING_URL, bounded by a
// minute.
func msgctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return msgctlEnv(t, nil, stdin, args...)
}

// msgctlEnv is msgctl with extra environment variables.
func msgctlEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "MESSAGING_URL="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("msgctl %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("msgctl %v did not finish within a minute; stderr:\n%s", args, errb.String())
	}
	return result{out.String(), errb.String(), code}
}

func (r result) want(t *testing.T, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	for _, c := range contains {
		if !strings.Contains(all, c) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", c, r.stdout, r.stderr)
		}
	}
}

func TestDemoRunsOnTheEmbeddedBroker(t *testing.T) {
	start := time.Now()
	r := msgctl(t, "", "demo")
	r.want(t, 0, "msgctl demo on mem://", "-- checkout ok", "-- fanout ok", "-- dashboard ok", "-- apisync ok", "4 of 4 scenarios passed")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("demo took %v; it must finish within a few seconds", d)
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	t.Parallel() // runs msgctl on arguments alone: no broker, no timing
	commands := []string{"demo", "publish", "consume", "tail", "replay", "provision", "dlq", "stats", "top", "bench", "advise"}
	msgctl(t, "", "--help").want(t, 0, append([]string{"Commands:", "--connect-timeout", "--version"}, commands...)...)
	msgctl(t, "").want(t, 2, "Usage: msgctl <command>")
	msgctl(t, "", "frobnicate").want(t, 2, "unexpected argument frobnicate")
	for _, c := range commands {
		r := msgctl(t, "", c, "--help")
		r.want(t, 0, "Usage: msgctl "+c, "--connect-timeout", "--url")
		msgctl(t, "", "help", c).want(t, 0, "Usage: msgctl "+c)
	}
	for _, c := range []string{"list", "show", "redrive"} {
		msgctl(t, "", "dlq", c, "--help").want(t, 0, "Usage: msgctl dlq "+c, "--connect-timeout")
	}
	msgctl(t, "", "publish").want(t, 2, "expected \"<topic>\"")
	msgctl(t, "", "consume", "--no-such-flag", "t").want(t, 2, "unknown flag --no-such-flag")
	msgctl(t, "", "consume", "t", "--format", "xml").want(t, 2, "--format")
	msgctl(t, "", "dlq", "purge", "t").want(t, 2, "unexpected argument purge")
	msgctl(t, "", "dlq", "redrive", "t").want(t, 2, "redrive takes IDs or --all")
	msgctl(t, "", "publish", "t", "x", "--file", "-", "--url", "redis://127.0.0.1:1").want(t, 2, "give PAYLOAD arguments or --file, not both")
	msgctl(t, "", "replay", "t", "--from", "after:", "--url", "redis://127.0.0.1:1").want(t, 2, "--from: ", "empty offset")
	msgctl(t, "", "dlq", "list", "t", "--timeout=0s", "--url", "redis://127.0.0.1:1").want(t, 2, "--timeout must be positive")
	msgctl(t, "", "dlq", "show", "t", "id", "--quiet=0s", "--url", "redis://127.0.0.1:1").want(t, 2, "--quiet must be positive")
	msgctl(t, "", "dlq", "list", "t", "--timeout=1s", "--quiet=1s", "--url", "redis://127.0.0.1:1").want(t, 2, "--quiet (1s) must be shorter than --timeout (1s)")
	msgctl(t, "", "dlq", "show", "t", "id", "--quiet=30s", "--url", "redis://127.0.0.1:1").want(t, 2, "--quiet (30s) must be shorter than --timeout (30s)")
	msgctl(t, "", "dlq", "redrive", "t", "id1", "--all", "--url", "redis://127.0.0.1:1").want(t, 2, "redrive takes IDs or --all (not both)")
	msgctl(t, "", "bench", "--timeout=0s", "--url", "redis://127.0.0.1:1").want(t, 2, "--timeout > 0")
	msgctl(t, "", "provision", "orders", "bad:group", "--url", "redis://127.0.0.1:1").want(t, 2, `"bad:group"`)
	msgctl(t, "", "stats", "--timeout=0s", "--url", "redis://127.0.0.1:1").want(t, 2, "--timeout must be positive")
	msgctl(t, "", "top", "--interval=0s", "--url", "redis://127.0.0.1:1").want(t, 2, "--interval must be positive")
	// Checked before connecting: the refused broker is never reached.
	for _, args := range [][]string{{"consume", "t", "--idle=-1s"}, {"tail", "t", "--count=-1"}, {"replay", "t", "--idle=-1s"}} {
		msgctl(t, "", append(args, "--url", "redis://127.0.0.1:1")...).want(t, 2, "--count and --idle must not be negative")
	}
	msgctl(t, "", "demo", "--only", "nothing").want(t, 2, `unknown scenario "nothing"`)
	msgctl(t, "", "stats", "--format", "xml").want(t, 2, "--format")
	msgctl(t, "", "top", "--sort", "size").want(t, 2, "--sort")
	msgctl(t, "", "top", "--url", "mem://").want(t, 2, "top needs a terminal")
	// Broker errors are failures (1), and never show the password.
	r := msgctl(t, "", "publish", "--url", "nosuch://user:s3cret@host", "t", "x")
	r.want(t, 1, "unknown URL scheme")
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("password in error: %s", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel() // runs msgctl on arguments alone: no broker, no timing
	r := msgctl(t, "", "--version")
	r.want(t, 0, "msgctl ")
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("--version printed %q, want one line", r.stdout)
	}
}

// TestNoBrokerNoDefault: outside demo, a command that talks to a broker
// fails without --url or MESSAGING_URL (usage error) and says how to name
// one; it never falls back to the in-process broker silently.
func TestNoBrokerNoDefault(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "orders", "hello"},
		{"consume", "orders", "--count", "1"},
		{"tail", "orders", "--count", "1"},
		{"replay", "orders"},
		{"provision", "orders", "billing"},
		{"dlq", "list", "orders.dlq"},
		{"dlq", "show", "orders.dlq", "id"},
		{"dlq", "redrive", "orders.dlq", "--all"},
		{"bench", "--count", "1"},
		{"stats"},
		{"top", "orders"},
	} {
		r := msgctl(t, "", args...)
		r.want(t, 2, "no broker: pass --url URL or set MESSAGING_URL", "--url nats://127.0.0.1:4222", "mem://")
		if r.stdout != "" {
			t.Errorf("%v printed %q", args, r.stdout)
		}
	}
	// MESSAGING_URL names one.
	r := msgctlEnv(t, []string{"MESSAGING_URL=mem://"}, "", "publish", "orders", "hello")
	r.want(t, 0)
	if len(strings.Fields(r.stdout)) != 1 {
		t.Errorf("publish printed %q, want one ID", r.stdout)
	}
	// The demo alone needs none, and ignores MESSAGING_URL.
	msgctlEnv(t, []string{"MESSAGING_URL=nosuch://x"}, "", "demo", "--only", "fanout").want(t, 0, "msgctl demo on mem://", "-- fanout ok")
}

// silentServer listens on a free loopback port, accepts every connection
// and never answers, until the test ends.
func silentServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() { // accept and hold every connection, silently
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln
}

// TestConnectTimeout: every command that connects honours --connect-timeout
// against a server that accepts connections and never answers.
func TestConnectTimeout(t *testing.T) {
	ln := silentServer(t)
	for _, scheme := range []string{"redis", "amqp"} {
		url := scheme + "://" + ln.Addr().String() + "/"
		for _, args := range [][]string{
			{"publish", "t", "x"},
			{"consume", "t"},
			{"tail", "t"},
			{"replay", "t"},
			{"provision", "t", "g"},
			{"dlq", "list", "t"},
			{"dlq", "redrive", "t", "--all"},
			{"bench", "--count", "1"},
			{"stats", "t"},
			{"demo"},
		} {
			start := time.Now()
			r := msgctl(t, "", append(args, "--url", url, "--connect-timeout", "300ms")...)
			took := time.Since(start)
			r.want(t, 1, "no connection within 300ms (--connect-timeout)")
			if took > 10*time.Second {
				t.Errorf("%v against a silent server took %v", args, took)
			}
		}
	}
	msgctl(t, "", "publish", "t", "x", "--url", "mem://", "--connect-timeout", "0s").want(t, 2, "--connect-timeout must be positive")
}

func TestAdvise(t *testing.T) {
	msgctl(t, "", "advise", "--every-system-reacts=yes", "--caller-waits=no", "--freshness=seconds", "--source-can-push=yes").
		want(t, 0, "Use: pubsub", "examples/fanout", "consumers needed ≈ arrival rate / one consumer's rate", "msgctl top", "msgctl stats")
	msgctl(t, "", "advise", "--every-system-reacts=no", "--caller-waits=yes", "--freshness=realtime", "--source-can-push=yes").
		want(t, 0, "Use: reqreply", "examples/checkout")
	msgctl(t, "", "advise", "--every-system-reacts=no", "--caller-waits=no", "--freshness=hours", "--source-can-push=no").
		want(t, 0, "Use: poll + queue + batch", "cannot push", "How many consumers?", "(backlog / target)")
	// Request/reply alone runs no consumer group to size.
	if r := msgctl(t, "", "advise", "--every-system-reacts=no", "--caller-waits=yes", "--freshness=seconds", "--source-can-push=yes"); strings.Contains(r.stdout, "How many consumers?") {
		t.Errorf("reqreply advice sizes consumers:\n%s", r.stdout)
	}
	// Interactive, with a wrong answer corrected.
	msgctl(t, "maybe\nno\nno\n1\nyes\n", "advise").want(t, 0, "answer yes or no", "Use: queue + stream")
	msgctl(t, "yes\n", "advise").want(t, 1, "no answer")
	msgctl(t, "", "advise", "--caller-waits=perhaps").want(t, 2, "answer yes or no")
}

// broker returns the URL of a real broker for the end-to-end commands, and
// a client of it for setup and cleanup. RabbitMQ with streams can replay.
func broker(t *testing.T) (string, messaging.Client) {
	t.Helper()
	url := rabbitmqtest.Broker.Endpoint(t)
	if strings.Contains(url, "?") {
		url += "&streams=true"
	} else {
		url += "?streams=true"
	}
	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return url, c
}

func topicOn(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
		}
	})
	return name
}

func TestPublishConsumeReplayOnBroker(t *testing.T) {
	url, c := broker(t)
	topic := topicOn(t, c, "cli")
	group := integration.UniqueName(t, "cli-g")

	// A consumer in its own process; it says when it is subscribed.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Flags after the topic, as a user types them.
	cons := exec.CommandContext(ctx, bin, "consume", topic, "--url", url, "--group", group, "--count", "3", "--format", "json")
	var consOut bytes.Buffer
	cons.Stdout = &consOut
	stderr, err := cons.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	ready := bufio.NewReader(stderr)
	line, err := ready.ReadString('\n')
	if err != nil || !strings.Contains(line, "consuming "+topic) {
		t.Fatalf("consumer did not start: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, ready) }()

	pub := msgctl(t, "", "publish", "--url", url, "--key", "k1", "--header", "source=cli", topic, "one", "two", "three")
	pub.want(t, 0)
	ids := strings.Fields(pub.stdout)
	if len(ids) != 3 {
		t.Fatalf("publish printed %q, want 3 IDs", pub.stdout)
	}
	if err := cons.Wait(); err != nil {
		t.Fatalf("consumer: %v\n%s", err, consOut.String())
	}
	var got []string
	sc := bufio.NewScanner(&consOut)
	for sc.Scan() {
		var m struct {
			ID, Payload, Key string
			Header           map[string]string
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("consume output %q: %v", sc.Text(), err)
		}
		if m.Key != "k1" || m.Header["source"] != "cli" {
			t.Errorf("message %s: key %q header %v", m.ID, m.Key, m.Header)
		}
		got = append(got, m.ID+"="+m.Payload)
	}
	want := []string{ids[0] + "=one", ids[1] + "=two", ids[2] + "=three"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("consumed %v, want %v", got, want)
	}

	// Replay reads the log without a group, from a position.
	r := msgctl(t, "", "replay", "--url", url, "--from", "earliest", "--count", "3", "--format", "json", topic)
	r.want(t, 0, `"payload":"one"`, `"payload":"three"`)
	var first struct{ Offset string }
	_ = json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &first)
	if first.Offset == "" {
		t.Fatalf("replay output has no offset: %s", r.stdout)
	}
	r = msgctl(t, "", "replay", "--url", url, "--from", "after:"+first.Offset, "--count", "2", topic)
	r.want(t, 0, "two", "three")
	if strings.Contains(r.stdout, "\tone") {
		t.Errorf("replay after the first offset printed the first message:\n%s", r.stdout)
	}
}

func TestDLQListShowRedrive(t *testing.T) {
	url, c := broker(t)
	orig := topicOn(t, c, "cli-orig")
	dlq := topicOn(t, c, "cli-dlq")
	// Two dead letters, as the deadletter middleware writes them.
	for i, p := range []string{"bad order", "worse order"} {
		m := &messaging.Message{ID: fmt.Sprintf("orig-%d", i), Key: "k", Payload: []byte(p), Topic: orig, Attempt: 5, Header: messaging.Header{"h": "v"}}
		if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("payment service down"), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	msgctl(t, "", "dlq", "list", "--url", url, dlq).want(t, 0, "2 dead letter(s)", orig, "payment service down")
	msgctl(t, "", "dlq", "show", "--url", url, dlq, "orig-1").want(t, 0, "original id: orig-1", "worse order", "attempts:    5", "header:      h=v")
	msgctl(t, "", "dlq", "show", "--url", url, dlq, "nope").want(t, 1, "not found")

	// Redrive one: it comes back on the original topic, without the
	// dead-letter headers, and leaves the list.
	tail := make(chan *messaging.Message, 4)
	s, ok := c.(messaging.Stream)
	if !ok {
		t.Fatal("broker client cannot replay")
	}
	sub, err := s.Read(t.Context(), orig, messaging.Earliest, func(_ context.Context, m *messaging.Message) error { tail <- m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgctl(t, "", "dlq", "redrive", "--url", url, dlq, "orig-0").want(t, 0, "redrove 1")
	select {
	case m := <-tail:
		if string(m.Payload) != "bad order" || m.Header["h"] != "v" || m.Header[deadletter.HeaderReason] != "" {
			t.Errorf("redriven message: %q %v", m.Payload, m.Header)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("redriven message not on the original topic")
	}
	r := msgctl(t, "", "dlq", "list", "--url", url, dlq)
	r.want(t, 0, "1 dead letter(s)", "orig-1")
	// The form the help shows: --all after the topic.
	msgctl(t, "", "dlq", "redrive", dlq, "--all", "--url", url).want(t, 0, "redrove 1")
	msgctl(t, "", "dlq", "list", "--url", url, dlq).want(t, 0, "no dead letters")
}

func TestBenchOnBroker(t *testing.T) {
	url, _ := broker(t)
	r := msgctl(t, "", "bench", "--url", url, "--count", "300", "--publishers", "2")
	r.want(t, 0, "publish rate", "consume rate", "latency p50", "latency p99", "messages", "300", "consumed 300/300")
}

func TestDemoOnBroker(t *testing.T) {
	url, _ := broker(t)
	msgctl(t, "", "demo", "--url", url).want(t, 0, "-- checkout ok", "-- fanout ok", "-- dashboard ok", "-- apisync ok", "4 of 4 scenarios passed")
}

// TestCommandsOnNATS runs the demo and a publish / replay round trip against
// NATS (JetStream mode, the adapter's default).
func TestCommandsOnNATS(t *testing.T) {
	url := natstest.Broker.Endpoint(t)
	msgctl(t, "", "demo", "--url", url).want(t, 0, "-- checkout ok", "-- fanout ok", "-- dashboard ok", "-- apisync ok", "4 of 4 scenarios passed")

	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := topicOn(t, c, "cli-nats")
	msgctl(t, "", "provision", topic, "--url", url).want(t, 0, "provisioned topic "+topic)
	pub := msgctl(t, "alpha\nbeta\n", "publish", "--url", url, topic)
	pub.want(t, 0)
	if ids := strings.Fields(pub.stdout); len(ids) != 2 {
		t.Fatalf("publish from stdin printed %q, want 2 IDs", pub.stdout)
	}
	msgctl(t, "", "replay", "--url", url, "--count", "2", topic).want(t, 0, "\talpha", "\tbeta")
}

// TestCommandsOnRedis runs the demo and the dead-letter commands against
// Redis Streams.
func TestCommandsOnRedis(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	msgctl(t, "", "demo", "--url", url).want(t, 0, "-- checkout ok", "-- fanout ok", "-- dashboard ok", "-- apisync ok", "4 of 4 scenarios passed")

	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	orig, dlq := topicOn(t, c, "cli-redis-orig"), topicOn(t, c, "cli-redis-dlq")
	m := &messaging.Message{ID: "redis-orig-1", Payload: []byte("stuck"), Topic: orig, Attempt: 3}
	if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil {
		t.Fatal(err)
	}
	msgctl(t, "", "dlq", "list", "--url", url, dlq).want(t, 0, "1 dead letter(s)", "redis-orig-1", "boom")
	msgctl(t, "", "dlq", "redrive", "--url", url, dlq, "redis-orig-1").want(t, 0, "redrove 1")
	msgctl(t, "", "dlq", "list", "--url", url, dlq).want(t, 0, "no dead letters")
	msgctl(t, "", "replay", "--url", url, "--count", "1", orig).want(t, 0, "\tstuck")
}

// TestFlagsAfterArguments is the invocation of the issue: flags after the
// payload used to be published as two more messages to the in-process
// broker. Checked with the raw Redis client: exactly one entry, "hello".
func TestFlagsAfterArguments(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-flags")
	r := msgctl(t, "", "publish", topic, "hello", "--url", url, "--key", "k", "-H", "a=b=c")
	r.want(t, 0)
	if ids := strings.Fields(r.stdout); len(ids) != 1 {
		t.Fatalf("publish printed %q, want one ID", r.stdout)
	}
	rc := c.(*redisadapter.Client)
	entries, err := rc.Redis().XRange(t.Context(), rc.StreamKey(topic), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("stream holds %d entries, want 1: %v", len(entries), entries)
	}
	msgctl(t, "", "replay", topic, "--url", url, "--count", "1", "--format", "json").
		want(t, 0, `"payload":"hello"`, `"key":"k"`, `"a":"b=c"`)
}

// TestTopicAsWritten: a topic or group outside the alphabet is a usage
// error that quotes it as the user wrote it.
func TestTopicAsWritten(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	for _, args := range [][]string{
		{"publish", "Ärger", "x"},
		{"consume", "Ärger"},
		{"replay", "Ärger"},
		{"provision", "Ärger"},
		{"dlq", "list", "Ärger"},
		{"consume", "orders", "--group", "Ärger"},
		{"provision", "orders", "Ärger"},
	} {
		r := msgctl(t, "", append(args, "--url", url)...)
		r.want(t, 2, `"Ärger": character 'Ä' at position 0`)
		if strings.Contains(r.stderr, "Ã") {
			t.Errorf("%v: error shows a byte of the UTF-8 encoding: %s", args, r.stderr)
		}
	}
}

// TestBinaryPayloads: --file and --file - publish raw bytes; JSON output
// carries a non-UTF-8 payload as base64, text output marks it, so nothing is
// corrupted on the way.
func TestBinaryPayloads(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-bin")
	payload := make([]byte, 256)
	for i := range payload {
		payload[i] = byte(i)
	}
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	msgctl(t, "", "publish", topic, "--file", file, "--url", url).want(t, 0)
	msgctl(t, string(payload[:10])+"\n"+string(payload[200:]), "publish", topic, "--file", "-", "--url", url).want(t, 0)
	msgctl(t, "héllo", "publish", topic, "--file", "-", "--url", url).want(t, 0)
	r := msgctl(t, "", "replay", topic, "--url", url, "--count", "3", "--format", "json")
	r.want(t, 0)
	var got [][]byte
	for line := range strings.Lines(r.stdout) {
		var m struct {
			Payload       *string `json:"payload"`
			PayloadBase64 *string `json:"payload_base64"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch {
		case m.Payload != nil && m.PayloadBase64 == nil:
			got = append(got, []byte(*m.Payload))
		case m.PayloadBase64 != nil && m.Payload == nil:
			b, err := base64.StdEncoding.DecodeString(*m.PayloadBase64)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b)
		default:
			t.Fatalf("want exactly one of payload and payload_base64: %s", line)
		}
	}
	want := [][]byte{payload, append(append(append([]byte(nil), payload[:10]...), '\n'), payload[200:]...), []byte("héllo")}
	if len(got) != len(want) {
		t.Fatalf("replayed %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d: %x, want %x", i, got[i], want[i])
		}
	}
	r = msgctl(t, "", "replay", topic, "--url", url, "--count", "3")
	r.want(t, 0, "\tbase64:"+base64.StdEncoding.EncodeToString(payload)+"\n", "\théllo\n")
}

// TestDLQListIsReadOnlyOnRedis: list and show write nothing (no marker
// entry), checked with the raw Redis client, for a missing and for an
// existing dead-letter topic.
func TestDLQListIsReadOnlyOnRedis(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	rc := c.(*redisadapter.Client)
	missing := topicOn(t, c, "cli-dlq-missing")
	msgctl(t, "", "dlq", "list", missing, "--url", url).want(t, 0, "no dead letters in "+missing)
	msgctl(t, "", "dlq", "show", missing, "x", "--url", url).want(t, 1, "not found")
	if n, err := rc.Redis().Exists(t.Context(), rc.StreamKey(missing)).Result(); err != nil || n != 0 {
		t.Fatalf("dlq list created %s: exists=%d %v", rc.StreamKey(missing), n, err)
	}

	dlq := topicOn(t, c, "cli-dlq-ro")
	m := &messaging.Message{ID: "ro-1", Payload: []byte("stuck"), Topic: "orders", Attempt: 3}
	if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil {
		t.Fatal(err)
	}
	before, err := rc.Redis().XRange(t.Context(), rc.StreamKey(dlq), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	msgctl(t, "", "dlq", "list", dlq, "--url", url).want(t, 0, "1 dead letter(s)", "ro-1", "boom")
	msgctl(t, "", "dlq", "show", dlq, "ro-1", "--url", url).want(t, 0, "original id: ro-1", "stuck")
	after, err := rc.Redis().XRange(t.Context(), rc.StreamKey(dlq), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("dlq list/show wrote to the stream: %d entries before, %d after", len(before), len(after))
	}
}

// TestDLQListIsReadOnlyOnNATS: listing a dead-letter topic that does not
// exist creates no stream, checked with the raw JetStream client.
func TestDLQListIsReadOnlyOnNATS(t *testing.T) {
	url := natstest.Broker.Endpoint(t)
	c := openClient(t, url)
	nc := c.(*natsadapter.Client)
	missing := topicOn(t, c, "cli-dlq-missing")
	msgctl(t, "", "dlq", "list", missing, "--url", url).want(t, 0, "no dead letters in "+missing)
	msgctl(t, "", "dlq", "show", missing, "x", "--url", url).want(t, 1, "not found")
	raw, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	js, err := jetstream.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), nc.StreamName(missing)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after dlq list, stream %s: %v, want not found", nc.StreamName(missing), err)
	}
	// An existing one is listed, and its message count is unchanged.
	dlq := topicOn(t, c, "cli-dlq-ro")
	m := &messaging.Message{ID: "nats-ro-1", Payload: []byte("stuck"), Topic: "orders", Attempt: 2}
	if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil {
		t.Fatal(err)
	}
	msgctl(t, "", "dlq", "list", dlq, "--url", url).want(t, 0, "1 dead letter(s)", "nats-ro-1")
	s, err := js.Stream(t.Context(), nc.StreamName(dlq))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("dlq list wrote to the stream: %d messages, want 1", n)
	}
}

// TestProvisionOnRabbitMQ: publishing before any group exists fails on
// RabbitMQ; after `msgctl provision`, the message waits for the group.
func TestProvisionOnRabbitMQ(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-prov")
	group := integration.UniqueName(t, "cli-prov-g")
	msgctl(t, "", "publish", topic, "early", "--url", url).want(t, 1, "Provision its groups first")
	msgctl(t, "", "provision", topic, group, "--url", url).want(t, 0, "provisioned topic "+topic+" with group(s) "+group)
	msgctl(t, "", "provision", topic, group, "--url", url).want(t, 0) // idempotent
	msgctl(t, "", "publish", topic, "kept", "--url", url).want(t, 0)
	msgctl(t, "", "consume", topic, "--group", group, "--count", "1", "--url", url).want(t, 0, "\tkept")
}

func openClient(t *testing.T, url string) messaging.Client {
	t.Helper()
	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestDLQListIsReadOnlyOnRabbitMQ: listing a dead-letter topic that does
// not exist declares nothing, checked with the raw AMQP client.
func TestDLQListIsReadOnlyOnRabbitMQ(t *testing.T) {
	url, c := broker(t) // with streams=true: the stream queue would be declared by a Read
	missing := topicOn(t, c, "cli-dlq-missing")
	msgctl(t, "", "dlq", "list", missing, "--url", url).want(t, 0, "no dead letters in "+missing)
	msgctl(t, "", "dlq", "show", missing, "x", "--url", url).want(t, 1, "not found")
	conn, err := amqp.Dial(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	err = ch.ExchangeDeclarePassive(missing, amqp.ExchangeTopic, true, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("after dlq list, exchange %s: %v, want not found", missing, err)
	}
}

// TestNoSecretInOutput: a failing connect names the URL with its token and
// password hidden, short ones included.
func TestNoSecretInOutput(t *testing.T) {
	for _, u := range []string{"nats://127.0.0.1:1?token=tok3nSecret", "amqp://guest:a@127.0.0.1:1/", "redis://:pw9@127.0.0.1:1"} {
		r := msgctl(t, "", "publish", "t", "x", "--url", u, "--connect-timeout", "2s")
		if r.code != 1 {
			t.Fatalf("%s: exit %d, want 1\n%s%s", u, r.code, r.stdout, r.stderr)
		}
		for _, secret := range []string{"tok3nSecret", ":a@", "pw9"} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("%s: output reveals %q:\n%s%s", u, secret, r.stdout, r.stderr)
			}
		}
	}
}

// TestTopBinaryQuitsAndRestoresTheTerminal runs the built binary in a
// pseudo-terminal (the in-process tests of top_test.go check its figures):
// on an empty in-process broker it draws a frame, and q or Ctrl-C ends it
// with exit status 0, the terminal's modes as they were and the cursor and
// main screen back.
func TestTopBinaryQuitsAndRestoresTheTerminal(t *testing.T) {
	for _, key := range []string{"q", "\x03"} {
		master, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		if err := pty.Setsize(master, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
			t.Fatal(err)
		}
		before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "top", "--url", "mem://", "--interval", "50ms")
		cmd.Env = append(os.Environ(), "MESSAGING_URL=")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() { // read until the first frame, send the key, read to the end
			buf := make([]byte, 4096)
			sent := false
			for {
				n, err := master.Read(buf)
				out.Write(buf[:n])
				if !sent && strings.Contains(out.String(), "(no topics)") {
					sent = true
					if _, err := master.Write([]byte(key)); err != nil {
						done <- err
						return
					}
				}
				if err != nil || strings.HasSuffix(out.String(), "\x1b[?25h\x1b[?1049l") {
					done <- nil
					return
				}
			}
		}()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("top ended with %v after %q", err, key)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("top did not quit on %q", key) // (the screen is still being read: not printed)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if *after != *before {
			t.Errorf("after %q the terminal's modes changed:\nbefore %+v\nafter  %+v", key, *before, *after)
		}
		if s := out.String(); !strings.HasPrefix(s, "\x1b[?1049h\x1b[?25l") || !strings.HasSuffix(s, "\x1b[?25h\x1b[?1049l") {
			t.Errorf("after %q the screen was not entered and left as it should be:\n%q", key, s)
		}
		_ = master.Close()
		_ = tty.Close()
	}
}

// TestReadmeCommands: every msgctl command line of the README names a
// command whose help lists each flag the line uses, and the help shows
// the defaults the README states.
func TestReadmeCommands(t *testing.T) {
	t.Parallel() // runs msgctl on arguments alone: no broker, no timing
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		line, _, _ = strings.Cut(strings.TrimPrefix(line, "$ "), "#")
		words := strings.Fields(line)
		if len(words) < 2 || words[0] != "msgctl" || strings.HasPrefix(words[1], "-") || strings.HasPrefix(words[1], "<") {
			continue
		}
		cmd := words[1:2]
		if (cmd[0] == "dlq" || cmd[0] == "outbox") && len(words) > 2 {
			cmd = words[1:3]
		}
		help := msgctl(t, "", append(cmd, "--help")...)
		help.want(t, 0, "Usage: msgctl "+strings.Join(cmd, " "))
		for _, w := range words {
			if name, _, _ := strings.Cut(w, "="); strings.HasPrefix(name, "--") && !strings.Contains(help.stdout, name) {
				t.Errorf("README: %q: msgctl %s --help has no %s", strings.TrimSpace(line), strings.Join(cmd, " "), name)
			}
		}
		lines++
	}
	if lines < 10 {
		t.Fatalf("found %d msgctl command lines in the README, want the msgctl section's", lines)
	}
	// "Every command but `demo`, ... needs a broker": the commands whose
	// help says they need none.
	m := regexp.MustCompile("(?s)Every command but (.*?) needs a broker").FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatal("README: no sentence \"Every command but ... needs a broker\"")
	}
	var readmeNone []string
	for _, q := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(m[1], -1) {
		if regexp.MustCompile(`^[a-z]+( [a-z]+)?$`).MatchString(q[1]) {
			readmeNone = append(readmeNone, q[1])
		}
	}
	var helpNone []string
	for _, c := range helpCommands(t, nil) {
		if regexp.MustCompile(`(?i)needs\s+no\s+broker|no\s+setup`).MatchString(msgctl(t, "", append(strings.Fields(c), "--help")...).stdout) {
			helpNone = append(helpNone, c)
		}
	}
	slices.Sort(readmeNone)
	slices.Sort(helpNone)
	if !slices.Equal(readmeNone, helpNone) {
		t.Errorf("README: the commands that need no broker are %q; their help says %q", readmeNone, helpNone)
	}
	// msgctl --help says which commands need no broker too.
	top, _, _ := strings.Cut(msgctl(t, "", "--help").stdout, "\nFlags:")
	top = strings.Join(strings.Fields(top), " ")
	for _, c := range helpNone {
		if !strings.Contains(top, c) {
			t.Errorf("msgctl --help does not say that %s needs no broker:\n%s", c, top)
		}
	}
	// "msgctl top  # every topic, refreshed every 2s"; "--connect-timeout
	// bounds connecting (default 10s)".
	msgctl(t, "", "top", "--help").want(t, 0, "--interval=2s")
	msgctl(t, "", "stats", "--help").want(t, 0, "--connect-timeout=10s")
}

// TestReplayIdle: replay stops at the end of the log after --idle, 1s by
// default, and --idle 0 means never, as the flag's help says (it used to
// mean the 1s default). Time is the subject: the idle period must pass.
func TestReplayIdle(t *testing.T) {
	msgctl(t, "", "replay", "--help").want(t, 0, "--idle=1s", "(0: never)")
	start := time.Now()
	msgctl(t, "", "replay", "--url", "mem://", "t").want(t, 0)
	if d := time.Since(start); d < time.Second {
		t.Errorf("replay of an empty log returned after %v, before the 1s default idle", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	start = time.Now()
	cmd := exec.CommandContext(ctx, bin, "replay", "--url", "mem://", "--idle", "0", "t")
	cmd.Env = append(os.Environ(), "MESSAGING_URL=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() == nil {
		t.Errorf("replay --idle 0 exited after %v (%v, output %q); want it to wait for messages until stopped", time.Since(start), err, out)
	}
}

// helpCommands returns the commands msgctl's help lists under parent (nil:
// the top level), subcommands included ("dlq list", "outbox status"), in
// the help's order.
func helpCommands(t *testing.T, parent []string) []string {
	t.Helper()
	help := msgctl(t, "", append(parent, "--help")...).stdout
	_, list, ok := strings.Cut(help, "\nCommands:\n")
	if !ok {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(list, "\n") {
		if line == "" {
			break
		}
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // a description's continuation
		}
		name, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
		var sub []string
		if len(parent) == 0 {
			sub = helpCommands(t, strings.Fields(name))
		}
		if len(sub) == 0 {
			sub = []string{name}
		}
		out = append(out, sub...)
	}
	return out
}

// TestConsumeAcksOnlyWhatItPrinted: a message whose line cannot be written
// (here: stdout is /dev/full) is not acknowledged, and consume fails; the
// messages stay pending for the group. It used to acknowledge them, exit 0
// and lose them.
func TestConsumeAcksOnlyWhatItPrinted(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-full")
	group := integration.UniqueName(t, "cli-full-g")
	msgctl(t, "", "provision", topic, group, "--url", url).want(t, 0)
	msgctl(t, "", "publish", topic, "one", "two", "--url", url).want(t, 0)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "consume", topic, "--group", group, "--count", "2", "--url", url)
	cmd.Env = append(os.Environ(), "MESSAGING_URL=")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("consume with a full stdout did not end; stderr:\n%s", errb.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "no space left on device") {
		t.Errorf("consume to a full stdout: %v, want exit status 1 naming the write error; stderr:\n%s", err, errb.String())
	}
	// Both are still there for the group.
	msgctl(t, "", "consume", topic, "--group", group, "--count", "2", "--idle", "10s", "--url", url).want(t, 0, "\tone\n", "\ttwo\n")
}

// TestDLQRedriveNamedTwice: a letter named more than once in one redrive
// (twice, or by its dead-letter ID and its original ID) is republished
// once. It used to be republished once per mention: a duplicate.
func TestDLQRedriveNamedTwice(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	orig, dlq := topicOn(t, c, "cli-twice-orig"), topicOn(t, c, "cli-twice-dlq")
	m := &messaging.Message{ID: "twice-1", Payload: []byte("stuck"), Topic: orig, Attempt: 3}
	letter := deadletter.Letter(m, errors.New("boom"), time.Now())
	if err := c.Publish(t.Context(), dlq, letter); err != nil {
		t.Fatal(err)
	}
	msgctl(t, "", "dlq", "redrive", dlq, "twice-1", letter.ID, "twice-1", "--url", url).want(t, 0, "redrove 1 dead letter(s)")
	rc := c.(*redisadapter.Client)
	entries, err := rc.Redis().XRange(t.Context(), rc.StreamKey(orig), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("the original topic holds %d messages after redriving one letter, want 1", len(entries))
	}
	msgctl(t, "", "dlq", "list", dlq, "--url", url).want(t, 0, "no dead letters")
}

// TestTextOutputHeadersInOrder: text output lists a message's headers in
// key order, so the same message prints the same line every time (consume,
// tail, replay and dlq show). They used to come in map order, which
// changes from one message to the next.
func TestTextOutputHeadersInOrder(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic, dlq := topicOn(t, c, "cli-hdr"), topicOn(t, c, "cli-hdr-dlq")
	args := []string{"publish", topic, "p", "p", "p", "p", "p", "--url", url}
	var want []string
	for i := range 6 {
		args = append(args, "-H", fmt.Sprintf("h%d=v%d", i, i))
		want = append(want, fmt.Sprintf("h%d=v%d", i, i))
	}
	msgctl(t, "", args...).want(t, 0)
	r := msgctl(t, "", "replay", topic, "--count", "5", "--url", url)
	r.want(t, 0)
	for line := range strings.Lines(r.stdout) {
		if !strings.Contains(line, strings.Join(want, " ")+"\tp") {
			t.Errorf("replay printed %q, want the headers in key order: %s", line, strings.Join(want, " "))
		}
	}

	h := messaging.Header{}
	for i := range 6 {
		h[fmt.Sprintf("h%d", i)] = fmt.Sprintf("v%d", i)
	}
	m := &messaging.Message{ID: "hdr-1", Payload: []byte("stuck"), Topic: topic, Header: h}
	if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil {
		t.Fatal(err)
	}
	var wantShow string
	for _, w := range want {
		wantShow += "header:      " + w + "\n"
	}
	for range 3 {
		msgctl(t, "", "dlq", "show", dlq, "hdr-1", "--url", url).want(t, 0, wantShow)
	}
}

// TestPublishStdinLineTooLong: a line of stdin above the 16 MiB limit fails
// with an error that says which line and what to do (--file), after
// publishing the lines before it. It used to say only "bufio.Scanner:
// token too long".
func TestPublishStdinLineTooLong(t *testing.T) {
	stdin := "first\n" + strings.Repeat("x", 17<<20) + "\nlast\n"
	r := msgctl(t, stdin, "publish", "t", "--url", "mem://")
	r.want(t, 1, "stdin line 2 is longer than 16 MiB", "--file")
	if ids := strings.Fields(r.stdout); len(ids) != 1 {
		t.Errorf("publish printed %q, want the first line's ID", r.stdout)
	}
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Errorf("error is %d lines, want one:\n%s", n+1, r.stderr)
	}
}

// TestReplayUnsupportedSaysWhatCan: replay on a broker URL that cannot
// replay (RabbitMQ without streams=true) fails naming what can. It used to
// say only "this broker cannot replay".
func TestReplayUnsupportedSaysWhatCan(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	msgctl(t, "", "replay", "t", "--url", url).want(t, 1, "cannot replay", "streams=true")
}

// TestPublishFailsWhenItCannotPrintTheIDs: publish prints each message's
// ID once the broker has accepted it; when the IDs cannot be written
// (stdout is /dev/full) it fails saying so, instead of exiting 0 with the
// IDs lost.
func TestPublishFailsWhenItCannotPrintTheIDs(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	cmd := exec.Command(bin, "publish", "t", "one", "--url", "mem://")
	cmd.Env = append(os.Environ(), "MESSAGING_URL=")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "no space left on device") {
		t.Errorf("publish with a full stdout: %v, want exit status 1 naming the write error; stderr:\n%s", err, errb.String())
	}
}

// TestDLQRedriveOfAMissingTopicCreatesNothing: redrive on a dead-letter
// topic that does not exist (a typo) has nothing to redrive, and creates
// no stream, checked with the raw JetStream client. It used to append its
// marker, creating the stream, and say "redrove 0".
func TestDLQRedriveOfAMissingTopicCreatesNothing(t *testing.T) {
	url := natstest.Broker.Endpoint(t)
	c := openClient(t, url)
	nc := c.(*natsadapter.Client)
	missing := topicOn(t, c, "cli-dlq-typo")
	msgctl(t, "", "dlq", "redrive", missing, "--all", "--url", url).want(t, 0, "no dead letters in "+missing)
	r := msgctl(t, "", "dlq", "redrive", missing, "x", "--url", url)
	r.want(t, 1, "not found: x in "+missing)
	if strings.Contains(r.stderr, "redrove 0") {
		t.Errorf("redrive of nothing says it redrove 0, then failed: %s", r.stderr)
	}
	wantNoStream(t, url, nc.StreamName(missing), "dlq redrive")
}

// TestNoSecretInUsageErrors: a broker URL given where a topic or another
// argument belongs (--url forgotten) is a usage error that does not repeat
// its password or token. The error used to quote the argument whole.
func TestNoSecretInUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"stats", "redis://:pw9Secret@127.0.0.1:6379"},
		{"publish", "nats://tok3nSecret@127.0.0.1:4222", "x"},
		{"consume", "orders", "amqp://guest:pw9Secret@127.0.0.1:5672/"},
		{"dlq", "list", "amqp://guest:pw9Secret@127.0.0.1:5672/"},
		// A URL that does not parse is hidden whole.
		{"stats", "redis://:pw9Secret@127.0.0.1:6379/%zz"},
	} {
		r := msgctl(t, "", args...)
		r.want(t, 2)
		for _, secret := range []string{"pw9Secret", "tok3nSecret"} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("%v: output reveals %q:\n%s%s", args, secret, r.stdout, r.stderr)
			}
		}
	}
}

// TestDLQTimeout: --timeout gives up a dlq command that has not finished,
// as a failure: here a list of a dead-letter topic that never stays quiet
// for --quiet, as a letter arrives every 50ms.
func TestDLQTimeout(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	dlq := topicOn(t, c, "cli-timeout-dlq")
	ctx, cancel := context.WithCancel(t.Context())
	trickled := make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			m := &messaging.Message{ID: fmt.Sprintf("trickle-%d", i), Payload: []byte("stuck"), Topic: "orders", Attempt: 3}
			if err := c.Publish(ctx, dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil && ctx.Err() == nil {
				trickled <- err
				return
			}
			select {
			case <-ctx.Done():
				trickled <- nil
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	r := msgctl(t, "", "dlq", "list", dlq, "--timeout", "2s", "--quiet", "1s", "--url", url)
	took := time.Since(start)
	cancel()
	if err := <-trickled; err != nil {
		t.Fatalf("publishing the letters: %v", err)
	}
	r.want(t, 1, "deadline exceeded")
	if took > 15*time.Second {
		t.Errorf("dlq list --timeout 2s took %v", took)
	}
}

// TestNoSecretInFailures: a failure (exit status 1) whose error names an
// argument that is a URL with a credential (a broker URL typed where an ID
// or offset belongs) shows it redacted.
func TestNoSecretInFailures(t *testing.T) {
	const u = "amqp://guest:pw9Secret@127.0.0.1:5672/"
	for _, args := range [][]string{
		{"dlq", "show", "orders.dlq", u, "--url", "mem://"},
		{"replay", "orders", "--from", u, "--url", "mem://"},
	} {
		r := msgctl(t, "", args...)
		r.want(t, 1, "amqp://guest:xxxxx@127.0.0.1:5672/")
		if strings.Contains(r.stdout+r.stderr, "pw9Secret") {
			t.Errorf("%v: output reveals the password:\n%s%s", args, r.stdout, r.stderr)
		}
	}
}

// TestInterruptWhileReadingStdin: Ctrl-C (SIGINT) ends a command that waits
// for input on stdin (publish line by line, advise)
// promptly, with exit status 130 saying "interrupted", instead of going on
// waiting for the input to end: the signal is caught, so the command used
// to ignore it until stdin was closed. The lines read before it were
// published.
func TestInterruptWhileReadingStdin(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "t", "--url", "mem://"},
		{"advise"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "MESSAGING_URL=")
		stdin, err := cmd.StdinPipe() // held open: the input never ends
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewReader(stdout)
		if args[0] == "publish" {
			// One line goes through first: the command is reading stdin.
			if _, err := io.WriteString(stdin, "first\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := out.ReadString('\n'); err != nil {
				t.Fatalf("%v: no ID for the first line: %q %v", args, line, err)
			}
		} else if line, err := out.ReadString('?'); err != nil { // advise's first question
			t.Fatalf("%v: no question: %q %v", args, line, err)
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
		start := time.Now()
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(errb.String(), "msgctl "+args[0]+": interrupted") {
				t.Errorf("%v interrupted: %v, want exit status 130 saying interrupted; stderr:\n%s", args, err, errb.String())
			}
		case <-time.After(10 * time.Second):
			_ = stdin.Close()
			<-exited
			t.Errorf("%v did not end within 10s of SIGINT (ended when stdin closed, after %v); stderr:\n%s", args, time.Since(start), errb.String())
		}
		_ = stdin.Close()
		cancel()
	}
}

// TestReplayIdleCountsFromTheLastMessage: --idle is the time "without a
// message": replay of a log whose messages all come at once ends about
// --idle after them. Time is the subject: the idle period must pass. The
// idle check used to sample at every --idle, so it ended only after two
// periods (6s for --idle 3s).
func TestReplayIdleCountsFromTheLastMessage(t *testing.T) {
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-idle")
	msgctl(t, "", "publish", topic, "one", "two", "--url", url).want(t, 0)
	start := time.Now()
	msgctl(t, "", "replay", topic, "--idle", "3s", "--url", url).want(t, 0, "\tone", "\ttwo")
	if d := time.Since(start); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("replay --idle 3s of a two-message log took %v, want about 3s", d)
	}
}

// TestPublishBadHeaderIsAUsageError: a --header the library refuses (empty
// or reserved name) is a usage error, found before connecting, as a bad
// topic is. It used to be a publish failure (exit status 1).
func TestPublishBadHeaderIsAUsageError(t *testing.T) {
	msgctl(t, "", "publish", "t", "x", "-H", "=v", "--url", "mem://").want(t, 2, "--header", "invalid header: empty name")
	msgctl(t, "", "publish", "t", "x", "-H", "msgkit-id=1", "--url", "mem://").want(t, 2, "--header", "reserved")
}

// TestConsumeCountLeavesTheRestUntouched: consume --count 1 on a group
// with a backlog takes one message and leaves the others as they were: it
// fetches no more than it is to print, so it does not hand the rest back
// with a delivery counted against them (Attempt 2 at the next consumer,
// and, for a group whose workers use MaxAttempts, a step nearer to being
// given up without any handler failing). It used to fetch the adapter's
// whole prefetch (256 on NATS) and return them all.
func TestConsumeCountLeavesTheRestUntouched(t *testing.T) {
	url := natstest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic := topicOn(t, c, "cli-count")
	group := integration.UniqueName(t, "cli-count-g")
	msgctl(t, "", "provision", topic, group, "--url", url).want(t, 0)
	var lines []string
	for i := range 20 {
		lines = append(lines, strconv.Itoa(i))
	}
	msgctl(t, strings.Join(lines, "\n")+"\n", "publish", topic, "--url", url).want(t, 0)
	msgctl(t, "", "consume", topic, "--group", group, "--count", "1", "--url", url).want(t, 0, "\t0\n")
	r := msgctl(t, "", "consume", topic, "--group", group, "--count", "19", "--idle", "10s", "--format", "json", "--url", url)
	r.want(t, 0)
	var n, bumped int
	for line := range strings.Lines(r.stdout) {
		var m struct{ Attempt int }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		n++
		if m.Attempt > 1 {
			bumped++
		}
	}
	if n != 19 {
		t.Fatalf("the second consume got %d messages, want the 19 left", n)
	}
	if bumped > 2 {
		t.Errorf("%d of the 19 messages the first consume did not print come with Attempt > 1, want at most 2", bumped)
	}
}

// TestReplayOfAMissingTopicCreatesNothing: replay reads; of a topic that
// does not exist (a typo) it fails saying so, and creates no stream,
// checked with the raw JetStream client. It used to create the stream
// (a JetStream Read does) and exit 0 having printed nothing.
func TestReplayOfAMissingTopicCreatesNothing(t *testing.T) {
	url := natstest.Broker.Endpoint(t)
	c := openClient(t, url)
	nc := c.(*natsadapter.Client)
	missing := topicOn(t, c, "cli-replay-typo")
	msgctl(t, "", "replay", missing, "--url", url).want(t, 1, "topic not found")
	wantNoStream(t, url, nc.StreamName(missing), "replay")
}

// TestOutputWriteErrorsFail: a command that did its work but cannot write
// its result (stdout is /dev/full) exits 1 naming the write error. The stats
// table, stats' "no topics", dlq show and provision used to ignore the error
// and exit 0 with nothing printed (dlq list and bench already failed).
func TestOutputWriteErrorsFail(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	url := redistest.Broker.Endpoint(t)
	c := openClient(t, url)
	topic, dlq := topicOn(t, c, "cli-full-stats"), topicOn(t, c, "cli-full-dlq")
	group := integration.UniqueName(t, "cli-full-stats-g")
	if err := messaging.Provision(t.Context(), c, topic, group); err != nil {
		t.Fatal(err)
	}
	m := &messaging.Message{ID: "full-1", Payload: []byte("stuck"), Topic: topic}
	if err := c.Publish(t.Context(), dlq, deadletter.Letter(m, errors.New("boom"), time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"stats", topic, "--url", url},
		{"stats", "--url", "mem://"}, // "no topics"
		{"dlq", "show", dlq, "full-1", "--url", url},
		{"dlq", "list", dlq, "--url", url},
		{"provision", integration.UniqueName(t, "cli-full-prov"), "--url", "mem://"},
		{"bench", "--count", "10", "--quiet", "--url", "mem://"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "MESSAGING_URL=")
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = full, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("%v with a full stdout did not end; stderr:\n%s", args, errb.String())
		}
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "no space left on device") {
			t.Errorf("%v to a full stdout: %v, want exit status 1 naming the write error; stderr:\n%s", args, err, errb.String())
		}
	}
}

// TestInterruptExitStatus: a command that runs until stopped (consume,
// tail) exits 0 when interrupted, as it is meant to end; one interrupted
// before it finished (bench) exits 128 + the signal's number (130 for
// SIGINT, 143 for SIGTERM) saying "interrupted". bench used to exit 1 with
// "context canceled", the same status as a failure.
func TestInterruptExitStatus(t *testing.T) {
	for _, c := range []struct {
		args  []string
		ready string // on stderr once the command is running
		sig   os.Signal
		code  int
	}{
		{[]string{"consume", "t", "--group", "g", "--url", "mem://"}, "Ctrl-C to stop", os.Interrupt, 0},
		{[]string{"tail", "t", "--url", "mem://"}, "Ctrl-C to stop", syscall.SIGTERM, 0},
		// A million messages take seconds: the signal comes long before.
		{[]string{"bench", "--count", "1000000", "--quiet", "--url", "mem://"}, "bench: ", os.Interrupt, 130},
		{[]string{"bench", "--count", "1000000", "--quiet", "--url", "mem://"}, "bench: ", syscall.SIGTERM, 143},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, c.args...)
		cmd.Env = append(os.Environ(), "MESSAGING_URL=")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var errb strings.Builder
		sc := bufio.NewScanner(stderr)
		for !strings.Contains(errb.String(), c.ready) && sc.Scan() {
			errb.WriteString(sc.Text() + "\n")
		}
		if err := cmd.Process.Signal(c.sig); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() {
			errb.WriteString(sc.Text() + "\n")
		}
		err = cmd.Wait()
		if ctx.Err() != nil {
			t.Fatalf("%v did not end on %v; stderr:\n%s", c.args, c.sig, errb.String())
		}
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != c.code || (code != 0) != strings.Contains(errb.String(), "msgctl "+c.args[0]+": interrupted") {
			t.Errorf("%v on %v: exit status %d, want %d (saying \"interrupted\" unless 0); stderr:\n%s", c.args, c.sig, code, c.code, errb.String())
		}
	}
}

// TestReplayFromAMalformedTime: a --from that starts with a date but is not
// an RFC 3339 time is a usage error naming the time's parse error. It used
// to be taken for an offset, and the broker then refused the offset
// ("memory offsets are decimal integers"), exit status 1.
func TestReplayFromAMalformedTime(t *testing.T) {
	for from, want := range map[string]string{
		"2026-13-01T00:00:00Z": "month out of range",
		"2026-01-02":           `cannot parse "" as "T"`,
		"2026-01-02T15:04:05":  `cannot parse "" as "Z07:00"`,
	} {
		r := msgctl(t, "", "replay", "t", "--from", from, "--url", "mem://")
		r.want(t, 2, "--from: not an RFC 3339 time", want)
	}
	msgctl(t, "", "replay", "t", "--from", "2026-01-02T15:04:05Z", "--idle", "10ms", "--url", "mem://").want(t, 0)
}

// TestUnreachableRedisOneErrorLine: against a Redis that refuses
// connections, msgctl's own error is the only line on stderr. go-redis's
// process-wide logger used to print "redis: ... pool.go:770: redis:
// connection pool: failed to dial after 5 attempts" 2-4 times before it,
// saying what msgctl's error says.
func TestUnreachableRedisOneErrorLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "redis://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connections are refused
	for _, args := range [][]string{
		{"stats", "t"},
		{"publish", "t", "x"},
	} {
		r := msgctl(t, "", append(args, "--url", url)...)
		r.want(t, 1, "connection refused")
		if lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "msgctl "+args[0]+": ") {
			t.Errorf("%v: stderr has %d lines, want msgctl's one error line:\n%s", args, len(lines), r.stderr)
		}
	}
}

// wantNoStream fails t unless the NATS server at url has no stream named
// stream: after, the command that should have created none.
func wantNoStream(t *testing.T, url, stream, after string) {
	t.Helper()
	raw, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	js, err := jetstream.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after %s, stream %s: %v, want not found", after, stream, err)
	}
}
