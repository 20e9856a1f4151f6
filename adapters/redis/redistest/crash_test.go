package redistest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestCrashChild is the consumer the crash test runs in a child process and
// kills; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	url := os.Getenv("REDIS_CRASH_CHILD_URL")
	if url == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	topic, group := os.Getenv("REDIS_CRASH_CHILD_TOPIC"), os.Getenv("REDIS_CRASH_CHILD_GROUP")
	handleFirst, _ := strconv.Atoi(os.Getenv("REDIS_CRASH_CHILD_HANDLE"))
	c, err := redisadapter.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	handled := 0
	stuck := make(chan struct{})
	_, err = c.Subscribe(context.Background(), topic, func(ctx context.Context, m *messaging.Message) error {
		if handled == handleFirst {
			fmt.Println("stuck")
			<-stuck // until SIGKILL
		}
		handled++
		fmt.Println("handled", m.ID)
		return nil
	}, messaging.Group(group), messaging.Prefetch(64))
	if err != nil {
		t.Fatal(err)
	}
	<-stuck
}

// TestCrashRecovery: confirmed messages survive a consumer killed mid-batch
// (its pending entries go to another consumer through XAUTOCLAIM) and a
// SIGKILL and restart of the server (AOF, fsync always); every confirmed
// message is delivered (counted by ID), duplicates are reported.
func TestCrashRecovery(t *testing.T) {
	const perPhase, childHandles = 1000, 100
	srv := redistest.StartServer(t)
	ctx := t.Context()
	pub, err := redisadapter.Open(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	topic, group := integration.UniqueName(t, "crash"), integration.UniqueName(t, "g")
	if err := pub.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	var published []string
	publish := func(n int, prefix string) {
		for i := 0; i < n; i += 50 {
			msgs := make([]*messaging.Message, 50)
			for j := range msgs {
				msgs[j] = &messaging.Message{ID: fmt.Sprintf("%s-%d", prefix, i+j), Payload: []byte("x")}
			}
			// The server may still be loading its AOF after a restart:
			// retry until the batch is confirmed.
			for attempt := 0; ; attempt++ {
				err := pub.Publish(ctx, topic, msgs...)
				if err == nil {
					break
				}
				if attempt == 100 || ctx.Err() != nil {
					t.Fatalf("publish: %v", err)
				}
				select {
				case <-time.After(100 * time.Millisecond): // waiting for the server to come back
				case <-ctx.Done():
				}
			}
			published = append(published, messageIDs(msgs)...)
		}
	}
	publish(perPhase, "before")

	// Consumer A, in a child process: handles childHandles messages, then
	// hangs holding the rest of its batch, and is killed.
	col := integration.NewCollector()
	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	child.Env = append(os.Environ(),
		"REDIS_CRASH_CHILD_URL="+srv.URL(), "REDIS_CRASH_CHILD_TOPIC="+topic,
		"REDIS_CRASH_CHILD_GROUP="+group, "REDIS_CRASH_CHILD_HANDLE="+strconv.Itoa(childHandles))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "handled "); ok {
			col.Add(&messaging.Message{ID: id})
		}
		if line == "stuck" {
			break
		}
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_, _ = io.Copy(io.Discard, out)
	_ = child.Wait()
	if col.Distinct() != childHandles {
		t.Fatalf("child handled %d messages before hanging, want %d", col.Distinct(), childHandles)
	}
	rc := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer rc.Close()
	pend, err := rc.XPending(ctx, pub.StreamKey(topic), group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pend.Count == 0 {
		t.Fatal("the killed consumer left nothing pending: the test did not kill it mid-batch")
	}
	t.Logf("killed consumer A mid-batch with %d entries pending", pend.Count)

	// Consumer B, here: it must get A's pending entries through XAUTOCLAIM.
	// Its handler stops at a gate so that the server crash happens while
	// it holds messages.
	cons, err := redisadapter.Open(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	gate := make(chan struct{})
	var reclaimed atomic.Int64
	sub, err := cons.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		if col.Distinct() >= perPhase/2 {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if m.Attempt >= 2 {
			reclaimed.Add(1)
		}
		col.Add(m)
		return nil
	}, messaging.Group(group), messaging.AckDeadline(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	col.WaitDistinct(t, perPhase/2, 30*time.Second)

	// Crash and restart the server while B holds a batch.
	srv.Kill()
	srv.Start()
	close(gate)
	publish(perPhase, "after")
	col.WaitDistinct(t, len(published), 60*time.Second)
	dups := col.Report(t, published)
	if reclaimed.Load() == 0 {
		t.Error("no message reached B with Attempt >= 2: the killed consumer's pending entries were not reclaimed")
	}
	t.Logf("%d deliveries to B had Attempt >= 2 (reclaimed from A)", reclaimed.Load())
	if dups > perPhase/4 {
		t.Errorf("%d duplicates: acknowledgements were lost in the restart", dups)
	}
	if err := pub.DeleteTopic(context.Background(), topic); err != nil {
		t.Logf("delete topic: %v", err)
	}
}

func messageIDs(msgs []*messaging.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestPublishWhileUnreachable: with the network to the server cut, Publish
// (without a deadline) retries for unavailable_timeout and then fails with
// messaging.ErrUnavailable; once the server is reachable again, publishing
// and a group resume within a second, and nothing confirmed is lost.
func TestPublishWhileUnreachable(t *testing.T) {
	c, p, topic, group := openProvisioned(t)
	fault.PublishWhileUnreachable(t, c, p, topic, group)
}
