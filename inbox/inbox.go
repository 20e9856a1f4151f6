package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgkit/messaging"
)

// Dialect is the seam between the inbox and one SQL database. PostgreSQL
// is the implementation shipped (postgres.go); another database adds its
// own.
//
// Record must insert the (group, id) row within tx and report whether it
// was new; while another transaction holds an uncommitted row with the same
// (group, id), Record must wait for it to finish (a unique index does this)
// and then report new only if that transaction rolled back.
type Dialect interface {
	// Migrate creates or upgrades the schema; idempotent.
	Migrate(ctx context.Context, db *sql.DB) error
	// Record inserts the (group, id) row in tx and reports whether it was
	// not there before.
	Record(ctx context.Context, tx *sql.Tx, group, id, topic string) (bool, error)
	// Cleanup deletes up to limit rows recorded more than olderThan ago.
	Cleanup(ctx context.Context, db *sql.DB, olderThan time.Duration, limit int) (int64, error)
}

// TxHandler handles a message within tx. Its writes commit together with
// the inbox record, or not at all. It must not commit or roll back tx.
type TxHandler func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error

// Inbox runs handlers in a transaction together with a record of the
// message's ID per consumer group, so that a message's database effects
// commit exactly once however often it is delivered. It is safe for
// concurrent use.
type Inbox struct {
	db        *sql.DB
	d         Dialect
	group     string
	retention time.Duration
	txOpts    *sql.TxOptions
	onDup     func(ctx context.Context, m *messaging.Message)
	logger    *slog.Logger
}

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*Inbox) error

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("inbox: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithGroup sets the consumer group the records are kept for, instead of
// the delivered message's Group (g must be a valid name). Set it for
// group-less subscriptions (whose Message.Group is empty) and to share
// records between groups.
func WithGroup(g string) Option {
	return func(in *Inbox) error {
		if err := messaging.ValidateName(g); err != nil {
			return invalid("WithGroup", fmt.Sprintf("%q", g), err.Error())
		}
		in.group = g
		return nil
	}
}

// WithTTL is how long records are kept by Cleanup (default 7 days; must be
// positive). A duplicate delivered after its record was deleted is handled
// again: keep records longer than the broker may redeliver or a publisher
// may retry.
func WithTTL(d time.Duration) Option {
	return func(in *Inbox) error {
		if d <= 0 {
			return invalid("WithTTL", d, "must be positive")
		}
		in.retention = d
		return nil
	}
}

// WithTxOptions sets the options of the handler's transaction (default: the
// database's default isolation level, read-write). A nil o, or a read-only
// one (which cannot record messages), is invalid.
func WithTxOptions(o *sql.TxOptions) Option {
	return func(in *Inbox) error {
		switch {
		case o == nil:
			return invalid("WithTxOptions", "nil", "needs options")
		case o.ReadOnly:
			return invalid("WithTxOptions", fmt.Sprintf("%+v", *o), "a read-only transaction cannot record messages")
		}
		in.txOpts = o
		return nil
	}
}

// WithOnDuplicate calls f for each delivery the inbox acknowledged without
// running the handler because the message was already recorded (for
// metrics and logs); f runs in the delivering goroutine and must not block.
// A nil f is invalid.
func WithOnDuplicate(f func(ctx context.Context, m *messaging.Message)) Option {
	return func(in *Inbox) error {
		if f == nil {
			return invalid("WithOnDuplicate", "nil", "needs a function")
		}
		in.onDup = f
		return nil
	}
}

// WithLogger sets where RunCleanup logs its failures (default
// slog.Default()). A nil l is invalid.
func WithLogger(l *slog.Logger) Option {
	return func(in *Inbox) error {
		if l == nil {
			return invalid("WithLogger", "nil", "needs a logger")
		}
		in.logger = l
		return nil
	}
}

// New returns an inbox over db with the given dialect, such as
// PostgreSQL("app"). A nil db or d, or an invalid option, is rejected with
// an error wrapping messaging.ErrInvalidOption; opts are applied in order
// and the first error is returned.
func New(db *sql.DB, d Dialect, opts ...Option) (*Inbox, error) {
	if db == nil || d == nil {
		return nil, fmt.Errorf("inbox: New needs a database and a dialect: %w", messaging.ErrInvalidOption)
	}
	in := &Inbox{db: db, d: d, retention: 7 * 24 * time.Hour, logger: slog.Default()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(in); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Migrate creates the inbox's schema or brings it up to date; idempotent.
// Operators may run the dialect's SQL file instead (PostgresSchema).
func (in *Inbox) Migrate(ctx context.Context) error {
	if err := in.d.Migrate(ctx, in.db); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

// ErrNoGroup is returned (permanent) for a message without a group when
// the inbox has no WithGroup option: there is nothing to record it under.
var ErrNoGroup = errors.New("inbox: message has no group; set inbox.WithGroup")

// Handler returns a messaging.Handler that, for each delivery, begins a
// transaction, records (group, message ID) in the inbox and, when the
// record is new, runs h with the transaction and commits. A message already
// recorded (a duplicate) is acknowledged without running h. If h returns an
// error or panics, or the commit fails, the transaction rolls back (the
// record with it) and the error is returned, so the message is redelivered
// and handled again from scratch. Two deliveries of one message running at
// once are serialised by the database: the second waits for the first's
// transaction and is then a duplicate (or new, if the first rolled back).
//
// Only database work done through tx is exactly-once; other effects of h
// (HTTP calls, publishing) happen once per attempt. Handler(nil) returns
// nil, which Subscribe rejects with messaging.ErrInvalidOption.
func (in *Inbox) Handler(h TxHandler) messaging.Handler {
	if h == nil {
		return nil
	}
	return func(ctx context.Context, m *messaging.Message) (err error) {
		group := in.group
		if group == "" {
			group = m.Group
		}
		if group == "" {
			return messaging.Permanent(ErrNoGroup)
		}
		if m.ID == "" {
			return messaging.Permanent(fmt.Errorf("inbox: message on %s has no ID", m.Topic))
		}
		tx, err := in.db.BeginTx(ctx, in.txOpts)
		if err != nil {
			return fmt.Errorf("inbox: begin: %w", err)
		}
		done := false
		defer func() {
			if !done {
				_ = tx.Rollback() // on error and on panic (re-raised)
			}
		}()
		isNew, err := in.d.Record(ctx, tx, group, m.ID, m.Topic)
		if err != nil {
			return fmt.Errorf("inbox: record %s: %w", m.ID, err)
		}
		if !isNew {
			if in.onDup != nil {
				in.onDup(ctx, m)
			}
			return nil // a duplicate: acknowledge, no effect
		}
		if err := h(ctx, tx, m); err != nil {
			return err
		}
		done = true
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("inbox: commit %s: %w", m.ID, err)
		}
		return nil
	}
}

type txKey struct{}

// Middleware is Handler for handlers written as messaging.Handler: the
// transaction travels in the context, and the handler reads it with Tx.
// Applied to a nil handler it returns nil (see Handler).
func (in *Inbox) Middleware() messaging.Middleware {
	return func(next messaging.Handler) messaging.Handler {
		if next == nil {
			return nil
		}
		return in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
			return next(context.WithValue(ctx, txKey{}, tx), m)
		})
	}
}

// Tx returns the inbox transaction of a handler run by Middleware, or nil
// outside one.
func Tx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{}).(*sql.Tx)
	return tx
}

// Cleanup deletes records older than the retention and returns how many.
// Call it periodically (RunCleanup does).
func (in *Inbox) Cleanup(ctx context.Context) (int64, error) {
	const chunk = 1000
	var total int64
	for {
		n, err := in.d.Cleanup(ctx, in.db, in.retention, chunk)
		total += n
		if err != nil {
			return total, fmt.Errorf("inbox: cleanup: %w", err)
		}
		if n < chunk {
			return total, nil
		}
	}
}

// RunCleanup calls Cleanup every interval until ctx is done; a failure is
// logged (at Warn, see WithLogger) and retried at the next interval. It
// returns ctx's error.
func (in *Inbox) RunCleanup(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("inbox: cleanup interval %v, want > 0: %w", every, messaging.ErrInvalidOption)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := in.Cleanup(ctx); err != nil && ctx.Err() == nil {
			in.logger.Warn("inbox: cleanup failed; retrying at the next interval", "interval", every, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
