package redistest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// blockedClients waits until admin's server has a client blocked in each
// of cmds (as CLIENT LIST names them: "xread", "xreadgroup") and returns
// their client IDs, by command.
func blockedClients(t *testing.T, admin *goredis.Client, cmds ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := admin.ClientList(t.Context()).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]string{}
		for line := range strings.Lines(list) {
			f := map[string]string{}
			for kv := range strings.FieldsSeq(line) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			if strings.Contains(f["flags"], "b") {
				ids[f["cmd"]] = f["id"]
			}
		}
		all := true
		for _, c := range cmds {
			all = all && ids[c] != ""
		}
		if all {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client blocked in each of %v after 30s:\n%s", cmds, list)
		}
		<-tick.C
	}
}

// unblockedCase runs a Read at Latest and a group subscription on a private
// server, waits until both are blocked in XREAD and XREADGROUP, lets
// unblock interrupt them, and checks that both go on and deliver a message
// published afterwards: Redis's UNBLOCKED errors other than "the stream
// key no longer exists" say nothing about the topic.
func unblockedCase(t *testing.T, unblock func(admin *goredis.Client, ids map[string]string)) {
	srv := redistest.StartServer(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer admin.Close()
	// Long blocks (and reclaims) so that the reads are still blocked when
	// unblock runs.
	c := mustNew(t, goredis.NewClient(&goredis.Options{Addr: srv.Addr()}), redisadapter.WithBlock(time.Minute), redisadapter.WithCloseClient(true))
	defer c.Close()
	ctx := t.Context()
	topic := integration.UniqueName(t, "unblocked")
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	read, grouped := make(chan string, 16), make(chan string, 16)
	handler := func(ch chan string) messaging.Handler {
		return func(_ context.Context, m *messaging.Message) error {
			ch <- m.ID
			return nil
		}
	}
	rsub, err := c.Read(ctx, topic, messaging.Latest, handler(read))
	if err != nil {
		t.Fatal(err)
	}
	defer rsub.Close()
	gsub := subscribe(t, c, ctx, topic, handler(grouped), messaging.Group("g"), messaging.StartAt(messaging.Latest), messaging.AckDeadline(10*time.Minute))

	unblock(admin, blockedClients(t, admin, "xread", "xreadgroup"))

	if err := c.Publish(ctx, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		what string
		sub  messaging.Subscription
		got  chan string
	}{{"Read", rsub, read}, {"group subscription", gsub, grouped}} {
		select {
		case id := <-s.got:
			if id != "after" {
				t.Errorf("%s delivered %q, want \"after\"", s.what, id)
			}
		case <-s.sub.Done():
			t.Errorf("%s ended: %v", s.what, s.sub.Err())
		case <-time.After(30 * time.Second):
			t.Errorf("%s delivered nothing in 30s", s.what)
		}
	}
}

// TestReadSurvivesDemotion: a master demoted to a replica (what a Sentinel
// failover does to the old master) unblocks XREAD and XREADGROUP with
// "UNBLOCKED force unblock from blocking operation, instance state changed
// (master -> replica?)"; the reads used to end as if the topic had been
// deleted. Here the server is made a replica of nothing and then a master
// again.
func TestReadSurvivesDemotion(t *testing.T) {
	unblockedCase(t, func(admin *goredis.Client, _ map[string]string) {
		ctx := t.Context()
		if err := admin.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(fault.FreePort(t))).Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReadSurvivesClientUnblock: CLIENT UNBLOCK ... ERROR fails a blocked
// read with "UNBLOCKED client unblocked via CLIENT UNBLOCK"; the reads go
// on.
func TestReadSurvivesClientUnblock(t *testing.T) {
	unblockedCase(t, func(admin *goredis.Client, ids map[string]string) {
		for _, cmd := range []string{"xread", "xreadgroup"} {
			id, _ := strconv.ParseInt(ids[cmd], 10, 64)
			n, err := admin.ClientUnblockWithError(t.Context(), id).Result()
			if err != nil || n != 1 {
				t.Fatalf("CLIENT UNBLOCK %d (%s) ERROR: %d, %v", id, cmd, n, err)
			}
		}
	})
}
