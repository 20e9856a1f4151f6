// Command leftovers proves that the tests clean up after themselves on the
// shared brokers: .ci/run records what the brokers hold before the tests
// (snapshot) and, after them, lists what the tests left behind (check):
// NATS streams, Redis keys, RabbitMQ queues and exchanges, PostgreSQL
// tables. A test that declares something on a shared broker deletes it in
// its cleanup; anything new after the run is a test's leftover, and check
// fails naming it.
//
//	go run ./tests/internal/leftovers snapshot FILE
//	go run ./tests/internal/leftovers check FILE
//
// The brokers are those of the tests' environment variables
// (MESSAGING_NATS_URL, MESSAGING_REDIS_URL, MESSAGING_AMQP_URL with
// MESSAGING_AMQP_MANAGEMENT_URL, MESSAGING_POSTGRES_URL); a broker whose
// variable is unset is not looked at. Run nothing else against them
// meanwhile: another session's tests would show up as leftovers.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "snapshot" && os.Args[1] != "check") {
		fmt.Fprintln(os.Stderr, "usage: leftovers snapshot|check FILE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "leftovers:", err)
		os.Exit(1)
	}
}

func run(mode, file string) error {
	if mode == "snapshot" {
		now, err := list()
		if err != nil {
			return err
		}
		b, err := json.Marshal(now)
		if err != nil {
			return err
		}
		return os.WriteFile(file, b, 0o600)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var before []string
	if err := json.Unmarshal(b, &before); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	// Brokers remove some things asynchronously (a RabbitMQ auto-delete
	// queue after its connection closed): look again for a few seconds.
	var left []string
	for range 10 {
		now, err := list()
		if err != nil {
			return err
		}
		left = left[:0]
		for _, name := range now {
			if !slices.Contains(before, name) {
				left = append(left, name)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("left on the shared brokers by the tests (a cleanup failed or is missing), %d:\n  %s", len(left), strings.Join(left, "\n  "))
}

// list returns what the brokers hold, each name prefixed with its kind.
func list() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []string
	for _, l := range []func(context.Context) ([]string, error){natsStreams, redisKeys, rabbitObjects, postgresTables} {
		names, err := l(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, names...)
	}
	slices.Sort(all)
	return all, nil
}

func natsStreams(ctx context.Context) ([]string, error) {
	u := os.Getenv("MESSAGING_NATS_URL")
	if u == "" {
		return nil, nil
	}
	nc, err := natsgo.Connect(u)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	var out []string
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		out = append(out, "nats stream "+n)
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("nats: stream names: %w", err)
	}
	return out, nil
}

func redisKeys(ctx context.Context) ([]string, error) {
	u := os.Getenv("MESSAGING_REDIS_URL")
	if u == "" {
		return nil, nil
	}
	o, err := goredis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	rc := goredis.NewClient(o)
	defer rc.Close()
	var out []string
	it := rc.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		out = append(out, "redis key "+it.Val())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("redis: scan: %w", err)
	}
	return out, nil
}

// rabbitObjects lists queues and exchanges (but the broker's own) through
// the management API, with the AMQP URL's credentials.
func rabbitObjects(ctx context.Context) ([]string, error) {
	mgmt, amqpURL := os.Getenv("MESSAGING_AMQP_MANAGEMENT_URL"), os.Getenv("MESSAGING_AMQP_URL")
	if mgmt == "" || amqpURL == "" {
		return nil, nil
	}
	au, err := url.Parse(amqpURL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: MESSAGING_AMQP_URL: %w", err)
	}
	pass, _ := au.User.Password()
	var out []string
	for _, kind := range []string{"queues", "exchanges"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(mgmt, "/")+"/api/"+kind+"?columns=name,vhost", nil)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
		req.SetBasicAuth(au.User.Username(), pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
		var objs []struct{ Name, Vhost string }
		err = json.NewDecoder(resp.Body).Decode(&objs)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("rabbitmq: %s: status %s: %v", kind, resp.Status, err)
		}
		for _, o := range objs {
			if o.Name == "" || strings.HasPrefix(o.Name, "amq.") {
				continue
			}
			out = append(out, fmt.Sprintf("rabbitmq %s %s%s", strings.TrimSuffix(kind, "s"), o.Vhost, o.Name))
		}
	}
	return out, nil
}

func postgresTables(ctx context.Context) ([]string, error) {
	u := os.Getenv("MESSAGING_POSTGRES_URL")
	if u == "" {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "postgres table " + n
	}
	return out, nil
}
