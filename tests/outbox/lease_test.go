package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/outbox"
)

// TestLostLeaseIsNotMarked: while the relay publishes, another relay takes
// every partition over (here: the lease rows are rewritten, as a takeover
// after an expiry does). The broker accepted the message, but the relay no
// longer owns its partition: the fence in the marking statement must leave
// the row for the new holder (a resend, counted as Unmarked), in both
// marking modes, never delete or mark it.
func TestLostLeaseIsNotMarked(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "delete"
		var opts []outbox.RelayOption
		if keep {
			name = "keep"
			opts = append(opts, outbox.WithKeepForwarded(time.Hour))
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			stolen := make(chan struct{})
			pub := messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
				select {
				case <-stolen:
					return nil
				default:
				}
				if _, err := e.db.ExecContext(ctx, `UPDATE `+e.schema+`.messaging_outbox_leases SET owner = 'thief', expires_at = now() + interval '1 hour'`); err != nil {
					t.Error(err)
				}
				close(stolen)
				return nil // accepted after the lease was lost
			})
			onBatch, first := firstBatch(t)
			r, stop := e.startRelay(t, pub, append(opts, onBatch)...)
			ids := e.enqueue(t, "fenced", true, &messaging.Message{})
			if b := first(); b.Forwarded != 0 || b.Unmarked != 1 {
				t.Errorf("batch after losing the lease: %+v; want 0 forwarded, 1 unmarked", b)
			}
			stop()
			if got := e.msgIDs(t, "WHERE forwarded_at IS NULL"); len(got) != 1 || got[0] != ids[0] {
				t.Fatalf("unforwarded rows %v after the relay lost its lease, want %v (left for the new holder)", got, ids)
			}
			// A wake-up (the enqueue's NOTIFY) may send it again before the
			// relay renews and sees the takeover: unmarked again.
			if s := r.Stats(); s.Forwarded != 0 || s.Unmarked == 0 {
				t.Errorf("stats %+v; want 0 forwarded, unmarked sends", s)
			}
		})
	}
}

// TestLeasesSharedAmongThreeRelays: 16 partitions among 3 relays is 6, 6
// and 4 (each takes up to ceil(16/3)); every partition is held, none by
// two, once each relay has renewed twice.
func TestLeasesSharedAmongThreeRelays(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.ob.Dialect()
	held := map[string][]int{}
	for range 3 {
		for _, id := range []string{"a", "b", "c"} {
			parts, err := d.Lease(ctx, e.db, id, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			held[id] = parts
		}
	}
	var all []int
	for id, parts := range held {
		if len(parts) > 6 {
			t.Errorf("relay %s holds %d partitions %v, more than ceil(16/3) = 6", id, len(parts), parts)
		}
		all = append(all, parts...)
	}
	slices.Sort(all)
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; !slices.Equal(all, want) {
		t.Errorf("partitions held by a, b, c: %v (together %v); want each of 0-15 once", held, all)
	}
}

// TestConcurrentLeasesAreExclusive: relays that claim free partitions at
// the same moment never both get one (at most one relay holds a
// partition's lease at a time).
func TestConcurrentLeasesAreExclusive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.ob.Dialect()
	for round := range 10 {
		if _, err := e.db.ExecContext(ctx, `UPDATE `+e.schema+`.messaging_outbox_leases SET owner = NULL, expires_at = '-infinity'`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.ExecContext(ctx, `DELETE FROM `+e.schema+`.messaging_outbox_relays`); err != nil {
			t.Fatal(err)
		}
		const relays = 4
		held := make([][]int, relays)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range relays {
			wg.Go(func() {
				<-start
				parts, err := d.Lease(ctx, e.db, fmt.Sprintf("r%d-%d", round, i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				held[i] = parts
			})
		}
		close(start)
		wg.Wait()
		owner := map[int]int{}
		for i, parts := range held {
			for _, p := range parts {
				if j, ok := owner[p]; ok {
					t.Fatalf("round %d: partition %d leased to relays %d and %d at once (held %v)", round, p, j, i, held)
				}
				owner[p] = i
			}
		}
	}
}

// TestRenewalExtendsLeases: a Lease call renews the relay's leases to
// now+ttl, so a relay that keeps renewing keeps its partitions however
// long it runs (here: a lease of an hour renewed for two).
func TestRenewalExtendsLeases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.ob.Dialect()
	if _, err := d.Lease(ctx, e.db, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	parts, err := d.Lease(ctx, e.db, "a", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 16 {
		t.Fatalf("renewed partitions %v, want all 16", parts)
	}
	st, err := e.ob.Status(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Partitions {
		if p.Owner != "a" || p.ExpiresIn <= time.Hour {
			t.Errorf("partition %d: owner %q, expires in %v; want a, about 2h after the renewal", p.Partition, p.Owner, p.ExpiresIn)
		}
	}
}

// TestStatusLeavesOutExpiredRelays: a relay that stopped renewing (dead,
// with no other relay to delete its heartbeat) is not listed among the
// live relays once its heartbeat expired.
func TestStatusLeavesOutExpiredRelays(t *testing.T) {
	e := newEnv(t)
	if _, err := e.ob.Dialect().Lease(context.Background(), e.db, "dead", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, 5*time.Second, "no live relay", func(s outbox.Status) bool { return len(s.Relays) == 0 })
}

// TestPublishEndsBeforeTheLease: Publish gets a context that ends while
// the lease still has TTL/5 left, so a Publisher that honours its context
// cannot publish after another relay may have taken the partition over.
func TestPublishEndsBeforeTheLease(t *testing.T) {
	e := newEnv(t)
	const ttl = time.Minute
	left := make(chan time.Duration, 1)
	pub := messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		d := time.Duration(-1) // no deadline
		if dl, ok := ctx.Deadline(); ok {
			d = time.Until(dl)
		}
		select {
		case left <- d:
		default:
		}
		return nil
	})
	e.startRelay(t, pub, outbox.WithLeaseTTL(ttl))
	e.enqueue(t, "deadline", true, &messaging.Message{})
	select {
	case d := <-left:
		if d < 0 || d > ttl-ttl/5 {
			t.Fatalf("Publish's context ends in %v (-1: never); want at most TTL - TTL/5 = %v", d, ttl-ttl/5)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Publish within 10s")
	}
}

// TestLeasesRenewedEveryThirdOfTTL: a running relay renews its leases
// every TTL/3, so they never come near their expiry while it runs. Over
// more than a TTL, its heartbeat is never older than 2/3 of the TTL (twice
// the renewal period: room for a slow machine).
func TestLeasesRenewedEveryThirdOfTTL(t *testing.T) {
	e := newEnv(t)
	const ttl = 3 * time.Second // a renewal late by up to a second still passes
	e.startRelay(t, openMemory(t), outbox.WithLeaseTTL(ttl), outbox.WithRelayID("renewing"))
	e.waitStatus(t, 10*time.Second, "the relay registered", func(s outbox.Status) bool { return len(s.Relays) == 1 })
	var oldest time.Duration
	tick := time.NewTicker(20 * time.Millisecond) // sampling the heartbeat's age
	defer tick.Stop()
	for end := time.Now().Add(ttl + ttl/10); time.Now().Before(end); <-tick.C {
		st := e.waitStatus(t, 10*time.Second, "the relay live", func(s outbox.Status) bool { return len(s.Relays) == 1 })
		oldest = max(oldest, st.Relays[0].LastHeartbeat)
	}
	if oldest > 2*ttl/3 {
		t.Fatalf("heartbeat %v old, want at most 2/3 of the TTL (%v): leases are renewed every TTL/3", oldest, 2*ttl/3)
	}
}
