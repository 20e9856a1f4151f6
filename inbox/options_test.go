package inbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/inbox"
	"github.com/msgkit/messaging/internal/mwtest"
)

// unreachable is a connector that never connects: New must not use the
// database.
type unreachable struct{}

func (unreachable) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database in this test")
}
func (unreachable) Driver() driver.Driver { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming it, without I/O.
func TestOptionsRejectInvalidValues(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	d := inbox.PostgreSQL("app")
	for _, tc := range []struct {
		name string
		bad  []inbox.Option
	}{
		{"WithGroup", []inbox.Option{inbox.WithGroup(""), inbox.WithGroup("a b")}},
		{"WithTTL", []inbox.Option{inbox.WithTTL(0), inbox.WithTTL(-time.Hour)}},
		{"WithTxOptions", []inbox.Option{inbox.WithTxOptions(nil), inbox.WithTxOptions(&sql.TxOptions{ReadOnly: true})}},
		{"WithOnDuplicate", []inbox.Option{inbox.WithOnDuplicate(nil)}},
	} {
		for i, o := range tc.bad {
			in, err := inbox.New(db, d, o)
			if in != nil {
				t.Errorf("%s #%d: New returned an inbox with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "inbox", tc.name, err, tc.name)
		}
	}
	_, err := inbox.New(nil, d)
	mwtest.WantInvalid(t, "inbox", "New nil db", err, "New", "database")
	_, err = inbox.New(db, nil)
	mwtest.WantInvalid(t, "inbox", "New nil dialect", err, "New", "dialect")

	if _, err := inbox.New(db, d, inbox.WithGroup("g"), inbox.WithTTL(time.Nanosecond),
		inbox.WithTxOptions(&sql.TxOptions{Isolation: sql.LevelSerializable}),
		inbox.WithOnDuplicate(func(context.Context, *messaging.Message) {}), nil); err != nil {
		t.Error(err)
	}
}

// TestNilHandlerRejectedAtSubscribe: Handler(nil) and Middleware applied to
// nil return nil, so Subscribe rejects them with ErrInvalidOption (they
// returned a handler that panicked on every delivery, redelivered forever).
func TestNilHandlerRejectedAtSubscribe(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	in := mwtest.Must(inbox.New(db, inbox.PostgreSQL("app")))
	c := mwtest.Memory(t)
	for name, h := range map[string]messaging.Handler{"Handler(nil)": in.Handler(nil), "Middleware()(nil)": in.Middleware()(nil)} {
		sub, err := c.Subscribe(context.Background(), "t", h, messaging.Group("g"))
		if err == nil {
			_ = sub.Close()
		}
		if !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("Subscribe with %s: %v, want ErrInvalidOption", name, err)
		}
	}
}
