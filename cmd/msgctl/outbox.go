package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/msgkit/messaging/outbox"
)

func init() {
	register(command{name: "outbox", order: 80, cmd: &outboxCmd{},
		help: "Inspect a transactional outbox on PostgreSQL (package outbox)."})
}

type outboxCmd struct {
	Status outboxStatusCmd `cmd:"" help:"Print the outbox's backlog, oldest unforwarded age, leases and live relays (read-only)."`
}

type outboxStatusCmd struct {
	DB     string `help:"PostgreSQL connection string of the outbox's database, e.g. postgres://user@host:5432/db." env:"DATABASE_URL" placeholder:"DSN"`
	Schema string `help:"Schema holding the outbox's tables, as given to outbox.PostgreSQL." default:"public"`
	Format string `help:"Output format: text, or json (one object)." enum:"text,json" default:"text"`
}

func (c *outboxStatusCmd) Help() string {
	return "Reads the outbox tables only; it needs no broker (--url is ignored).\n" +
		"The connect timeout bounds the whole command."
}

func (c *outboxStatusCmd) Run(e *env) error {
	if c.DB == "" {
		return usagef("no database: pass --db DSN or set DATABASE_URL, e.g. --db postgres://postgres@127.0.0.1:5432/app")
	}
	if e.globals.ConnectTimeout <= 0 {
		return usagef("--connect-timeout must be positive, not %v", e.globals.ConnectTimeout)
	}
	db, err := sql.Open("pgx", c.DB)
	if err != nil {
		return fmt.Errorf("outbox status: %s: %w", redacted(c.DB), err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(e.ctx, e.globals.ConnectTimeout)
	defer cancel()
	ob, err := outbox.New(outbox.PostgreSQL(c.Schema))
	if err != nil {
		return err
	}
	st, err := ob.Status(ctx, db)
	if err != nil {
		return err
	}
	if c.Format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(statusJSON(st))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "backlog\t%d\n", st.Backlog)
	fmt.Fprintf(tw, "oldest unforwarded\t%s\n", st.OldestAge.Round(time.Millisecond))
	fmt.Fprintf(tw, "retained (forwarded)\t%d\n", st.Retained)
	fmt.Fprintf(tw, "live relays\t%d\n", len(st.Relays))
	_ = tw.Flush()
	if len(st.Relays) > 0 {
		fmt.Fprintln(e.stdout)
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RELAY\tPARTITIONS\tHEARTBEAT AGO\tSTARTED")
		for _, r := range st.Relays {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.ID, r.Partitions, r.LastHeartbeat.Round(time.Millisecond), r.Started.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tBACKLOG\tOWNER\tLEASE")
	for _, p := range st.Partitions {
		owner, lease := p.Owner, "free"
		switch {
		case owner == "":
			owner = "-"
		case p.ExpiresIn < 0:
			lease = "expired " + (-p.ExpiresIn).Round(time.Millisecond).String() + " ago"
		default:
			lease = "expires in " + p.ExpiresIn.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", p.Partition, p.Backlog, owner, lease)
	}
	return tw.Flush()
}

// outboxStatusJSON is the --format json form of outbox.Status: durations in
// seconds, so that scripts need not parse Go durations.
type outboxStatusJSON struct {
	Backlog          int64                 `json:"backlog"`
	OldestAgeSeconds float64               `json:"oldest_age_seconds"`
	Retained         int64                 `json:"retained"`
	Relays           []outboxRelayJSON     `json:"relays"`
	Partitions       []outboxPartitionJSON `json:"partitions"`
}

type outboxRelayJSON struct {
	ID                   string    `json:"id"`
	Partitions           int       `json:"partitions"`
	LastHeartbeatSeconds float64   `json:"last_heartbeat_seconds"`
	Started              time.Time `json:"started"`
}

type outboxPartitionJSON struct {
	Partition        int     `json:"partition"`
	Backlog          int64   `json:"backlog"`
	Owner            string  `json:"owner,omitempty"`
	ExpiresInSeconds float64 `json:"expires_in_seconds"`
}

func statusJSON(st outbox.Status) outboxStatusJSON {
	out := outboxStatusJSON{Backlog: st.Backlog, OldestAgeSeconds: st.OldestAge.Seconds(), Retained: st.Retained,
		Relays: []outboxRelayJSON{}, Partitions: []outboxPartitionJSON{}}
	for _, r := range st.Relays {
		out.Relays = append(out.Relays, outboxRelayJSON{ID: r.ID, Partitions: r.Partitions, LastHeartbeatSeconds: r.LastHeartbeat.Seconds(), Started: r.Started})
	}
	for _, p := range st.Partitions {
		out.Partitions = append(out.Partitions, outboxPartitionJSON{Partition: p.Partition, Backlog: p.Backlog, Owner: p.Owner, ExpiresInSeconds: p.ExpiresIn.Seconds()})
	}
	return out
}
