package outbox_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// Environment of the relay helper process (TestHelperRelay).
const (
	helperEnv       = "OUTBOX_TEST_HELPER_RELAY"
	helperSchemaEnv = "OUTBOX_TEST_HELPER_SCHEMA"
	helperBrokerEnv = "OUTBOX_TEST_HELPER_BROKER"
	helperBatch     = 50
	helperTTL       = time.Second
)

// TestHelperRelay is not a test: TestRelayKilledMidBatch runs the test
// binary again with only this function, as the relay process it kills. Its
// publisher publishes the third batch's first half, prints "MIDBATCH <n>"
// and hangs until the SIGKILL.
func TestHelperRelay(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("the relay process of TestRelayKilledMidBatch")
	}
	var c messaging.Client
	for _, b := range realBrokers {
		if b.name == os.Getenv(helperBrokerEnv) {
			c = b.open(t)
		}
	}
	if c == nil {
		t.Fatalf("unknown broker %q", os.Getenv(helperBrokerEnv))
	}
	db := brokertest.OpenPostgres(t)
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(os.Getenv(helperSchemaEnv))))
	var mu sync.Mutex
	calls := 0
	pub := messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n < 3 {
			return c.Publish(ctx, topic, msgs...)
		}
		half := len(msgs) / 2
		if err := c.Publish(ctx, topic, msgs[:half]...); err != nil {
			return err
		}
		fmt.Printf("MIDBATCH %d\n", half)
		select {} // until killed
	})
	r, err := ob.NewRelay(db, pub, outbox.WithBatchSize(helperBatch), outbox.WithLeaseTTL(helperTTL), outbox.WithRelayID("doomed"))
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background())
}

// TestRelayKilledMidBatch: a relay process is killed with SIGKILL after the
// broker accepted half of a batch and before the rows were marked. Another
// relay takes the partitions over once the dead one's leases expire and
// forwards everything: no message is lost, the half batch arrives twice
// (counted and reported) on Redis, while JetStream drops the resends by
// their preserved IDs; every key's first deliveries stay in order.
func TestRelayKilledMidBatch(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b backend, topic string) {
		e := newEnv(t)
		c := b.open(t)
		var mu sync.Mutex
		var delivered []*messaging.Message
		col := integration.NewCollector()
		subscribe(t, c, topic, func(_ context.Context, m *messaging.Message) error {
			mu.Lock()
			delivered = append(delivered, m.Clone())
			mu.Unlock()
			col.Add(m)
			return nil
		})
		var ids []string
		seq := map[string]int{}
		for range 10 {
			msgs := make([]*messaging.Message, helperBatch)
			for j := range msgs {
				k := fmt.Sprintf("k%d", (len(ids)+j)%20)
				msgs[j] = &messaging.Message{Key: k, Header: messaging.Header{"seq": strconv.Itoa(seq[k])}}
				seq[k]++
			}
			ids = append(ids, e.enqueue(t, topic, true, msgs...)...)
		}

		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRelay$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", helperSchemaEnv+"="+e.schema, helperBrokerEnv+"="+b.name, "MESSAGING_POSTGRES_URL="+brokertest.Postgres.Endpoint(t))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mid := make(chan int, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, ok := strings.CutPrefix(sc.Text(), "MIDBATCH "); ok {
					half, _ := strconv.Atoi(n)
					mid <- half
				}
			}
			close(mid)
		}()
		var half int
		select {
		case h, ok := <-mid:
			if !ok {
				_ = cmd.Wait()
				t.Fatal("the relay process exited before its third batch")
			}
			half = h
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("the relay process did not reach its third batch in 60s")
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		sent := 2*helperBatch + half
		col.WaitDistinct(t, sent, 20*time.Second) // what the dead relay got accepted
		killed := time.Now()

		st, err := e.ob.Status(context.Background(), e.db)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(ids) - 2*helperBatch); st.Backlog != want || st.Partitions[0].Owner != "doomed" {
			t.Fatalf("after the kill: backlog %d (want %d), partition 0 owned by %q (want doomed)", st.Backlog, want, st.Partitions[0].Owner)
		}
		r, _ := e.startRelay(t, c, outbox.WithLeaseTTL(helperTTL), outbox.WithBatchSize(helperBatch), outbox.WithRelayID("survivor"))
		col.WaitDistinct(t, len(ids), 30*time.Second)
		took := time.Since(killed)
		dups := col.Report(t, ids)
		t.Logf("%s: killed after %d of %d messages were accepted (batch of %d cut at %d); survivor forwarded %d, all delivered %v after the kill (lease TTL %v); duplicates %d",
			b.name, sent, len(ids), helperBatch, half, r.Stats().Forwarded, took.Round(time.Millisecond), helperTTL, dups)
		switch {
		case b.dedupesByID && dups != 0:
			// The resent half batch kept its IDs, which the broker drops.
			t.Errorf("%d duplicates; %s drops resent IDs, want 0", dups, b.name)
		case !b.dedupesByID && dups < half:
			t.Errorf("%d duplicates; the half batch the dead relay published (%d) must come again", dups, half)
		}
		mu.Lock()
		checkKeyOrder(t, delivered)
		mu.Unlock()
	})
}
