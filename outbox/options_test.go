package outbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// unreachable is a connector that never connects: NewRelay must not use the
// database.
type unreachable struct{}

func (unreachable) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database in this test")
}
func (unreachable) Driver() driver.Driver { return nil }

func noDB(t *testing.T) *sql.DB {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestRelayOptionsRejectInvalidValues: every option with an invalid value
// makes NewRelay fail with ErrInvalidOption naming it, without I/O.
func TestRelayOptionsRejectInvalidValues(t *testing.T) {
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	db, pub := noDB(t), mwtest.Memory(t)
	for _, tc := range []struct {
		name string
		bad  []outbox.RelayOption
	}{
		{"WithRelayID", []outbox.RelayOption{outbox.WithRelayID("")}},
		{"WithBatchSize", []outbox.RelayOption{outbox.WithBatchSize(0), outbox.WithBatchSize(-1), outbox.WithBatchSize(10001)}},
		{"WithPollInterval", []outbox.RelayOption{outbox.WithPollInterval(0), outbox.WithPollInterval(-time.Second)}},
		{"WithLeaseTTL", []outbox.RelayOption{outbox.WithLeaseTTL(499 * time.Millisecond), outbox.WithLeaseTTL(0), outbox.WithLeaseTTL(-time.Second)}},
		{"WithKeepForwarded", []outbox.RelayOption{outbox.WithKeepForwarded(-time.Second)}},
		{"WithCleanupInterval", []outbox.RelayOption{outbox.WithCleanupInterval(0), outbox.WithCleanupInterval(-time.Second)}},
		{"WithLogger", []outbox.RelayOption{outbox.WithLogger(nil)}},
		{"WithOnBatch", []outbox.RelayOption{outbox.WithOnBatch(nil)}},
	} {
		for i, o := range tc.bad {
			r, err := ob.NewRelay(db, pub, o)
			if r != nil {
				t.Errorf("%s #%d: NewRelay returned a relay with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "outbox", tc.name, err, tc.name)
		}
	}
}

// TestConstructorsRejectInvalidArguments: New rejects a nil dialect,
// NewRelay a nil database or publisher; valid options are accepted.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	ob, err := outbox.New(nil)
	if ob != nil {
		t.Error("New(nil) returned an outbox")
	}
	mwtest.WantInvalid(t, "outbox", "New(nil)", err, "New", "Dialect")
	ob = mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	_, err = ob.NewRelay(nil, mwtest.Memory(t))
	mwtest.WantInvalid(t, "outbox", "NewRelay nil db", err, "relay")
	_, err = ob.NewRelay(noDB(t), nil)
	mwtest.WantInvalid(t, "outbox", "NewRelay nil publisher", err, "relay")

	r, err := ob.NewRelay(noDB(t), mwtest.Memory(t),
		outbox.WithRelayID("r1"), outbox.WithBatchSize(1), outbox.WithBatchSize(10000),
		outbox.WithPollInterval(time.Nanosecond), outbox.WithLeaseTTL(500*time.Millisecond),
		outbox.WithKeepForwarded(0), outbox.WithKeepForwarded(time.Hour), outbox.WithCleanupInterval(time.Nanosecond),
		outbox.WithPolling(), outbox.WithOnBatch(func(outbox.BatchInfo) {}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != "r1" {
		t.Errorf("ID %q, want r1", r.ID())
	}
}

// TestNewRelayRejectsOneConnectionWithListen: with one open connection
// allowed, LISTEN would hold it and the relay's queries would wait for it
// forever; NewRelay says so, unless the relay only polls.
func TestNewRelayRejectsOneConnectionWithListen(t *testing.T) {
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	db := noDB(t)
	db.SetMaxOpenConns(1)
	r, err := ob.NewRelay(db, mwtest.Memory(t))
	if r != nil {
		t.Error("NewRelay returned a relay with the error")
	}
	mwtest.WantInvalid(t, "outbox", "NewRelay, one connection", err, "SetMaxOpenConns", "WithPolling")
	if _, err := ob.NewRelay(db, mwtest.Memory(t), outbox.WithPolling()); err != nil {
		t.Errorf("NewRelay with WithPolling, one connection: %v", err)
	}
}

// TestNilDatabaseRejected: Migrate and Status given a nil database return
// ErrInvalidOption (they panicked).
func TestNilDatabaseRejected(t *testing.T) {
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	mwtest.WantInvalid(t, "outbox", "Migrate(nil)", ob.Migrate(context.Background(), nil), "migrate", "nil database")
	_, err := ob.Status(context.Background(), nil)
	mwtest.WantInvalid(t, "outbox", "Status(nil)", err, "status", "nil database")
}
