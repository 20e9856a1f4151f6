package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/middleware/deadletter"
)

// bin is the msgctl binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msgctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "msgctl")
	build := exec.Command("go", "build", "-o", bin, ".")
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
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MESSAGING_URL=")
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
	msgctl(t, "", "--help").want(t, 0, "Commands:", "demo", "publish", "consume", "tail", "replay", "dlq", "bench", "advise")
	msgctl(t, "").want(t, 2, "Usage:")
	msgctl(t, "", "frobnicate").want(t, 2, `unknown command "frobnicate"`)
	for _, c := range []string{"demo", "publish", "consume", "tail", "replay", "dlq", "bench", "advise"} {
		msgctl(t, "", c, "--help").want(t, 0, "Usage: msgctl "+c)
		msgctl(t, "", "help", c).want(t, 0, "Usage: msgctl "+c)
	}
	msgctl(t, "", "publish").want(t, 2, "missing TOPIC")
	msgctl(t, "", "consume", "--no-such-flag", "t").want(t, 2, "flag provided but not defined")
	msgctl(t, "", "dlq", "purge", "t").want(t, 2, `unknown subcommand "purge"`)
	msgctl(t, "", "demo", "--only", "nothing").want(t, 2, `unknown scenario "nothing"`)
	// Broker errors are failures (1), and never show the password.
	r := msgctl(t, "", "publish", "--url", "nosuch://user:s3cret@host", "t", "x")
	r.want(t, 1, "unknown URL scheme")
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("password in error: %s", r.stderr)
	}
}

func TestAdvise(t *testing.T) {
	msgctl(t, "", "advise", "--every-system-reacts=yes", "--caller-waits=no", "--freshness=seconds", "--source-can-push=yes").
		want(t, 0, "Use: pubsub", "examples/fanout")
	msgctl(t, "", "advise", "--every-system-reacts=no", "--caller-waits=yes", "--freshness=realtime", "--source-can-push=yes").
		want(t, 0, "Use: reqreply", "examples/checkout")
	msgctl(t, "", "advise", "--every-system-reacts=no", "--caller-waits=no", "--freshness=hours", "--source-can-push=no").
		want(t, 0, "Use: poll + queue + batch", "cannot push")
	// Interactive, with a wrong answer corrected.
	msgctl(t, "maybe\nno\nno\n1\nyes\n", "advise").want(t, 0, "answer yes or no", "Use: queue + stream")
	msgctl(t, "yes\n", "advise").want(t, 1, "no answer")
	msgctl(t, "", "advise", "--caller-waits=perhaps").want(t, 2, "answer yes or no")
}

// broker returns the URL of a real broker for the end-to-end commands, and
// a client of it for setup and cleanup. RabbitMQ with streams can replay.
func broker(t *testing.T) (string, messaging.Client) {
	t.Helper()
	url := integration.RabbitMQ.Endpoint(t)
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
	cons := exec.CommandContext(ctx, bin, "consume", "--url", url, "--group", group, "--count", "3", "--format", "json", topic)
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
	msgctl(t, "", "dlq", "redrive", "--url", url, "--all", dlq).want(t, 0, "redrove 1")
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
	url := integration.NATS.Endpoint(t)
	msgctl(t, "", "demo", "--url", url).want(t, 0, "-- checkout ok", "-- fanout ok", "-- dashboard ok", "-- apisync ok", "4 of 4 scenarios passed")

	c, err := messaging.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := topicOn(t, c, "cli-nats")
	if err := messaging.Provision(t.Context(), c, topic); err != nil {
		t.Fatal(err)
	}
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
	url := integration.Redis.Endpoint(t)
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
