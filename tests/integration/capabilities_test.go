package integration_test

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/msgkit/messaging/integration"
)

// readmeCapabilities maps the rows of the README's capability matrix to
// the fields of messaging.Capabilities, by the start of the row's label;
// "" marks a row that is not a field (checked elsewhere).
var readmeCapabilities = []struct{ label, field string }{
	{"Persistent", "Persistent"},
	{"Groups", "Groups"},
	{"Replay (", "Replay"},
	{"Replay by time", "ReplayByTime"},
	{"New group starts at a Position", "GroupStartAt"},
	{"Per-key order", "PerKeyOrder"},
	{"Ack deadline", "AckDeadline"},
	{"Attempt counted by the broker", "BrokerAttempts"},
	{"Delay kept by the broker", "NativeDelay"},
	{"Redelivery backoff kept by the broker", "BrokerBackoff"},
	{"Batch fetch", ""},
	{"`MaxAttempts` also bounds", ""}, // no field: how each broker bounds a crash loop
	{"Native dead-letter", "NativeDeadLetter"},
	{"Duplicate ID dropped", "DedupeByID"},
	{"Publish assigns missing ID", "PublishAssignsID"},
	{"Max message size", "MaxMessageSize"},
}

// readmeSize reads a size of the matrix: "4 MiB", "1,000,000 B"; false
// for a size it states otherwise (relative to the server's).
func readmeSize(cell string) (int64, bool) {
	n, unit, ok := strings.Cut(strings.ReplaceAll(cell, ",", ""), " ")
	v, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		return 0, false
	}
	switch unit {
	case "B":
		return v, true
	case "KiB":
		return v << 10, true
	case "MiB":
		return v << 20, true
	}
	return 0, false
}

// readmeBackends maps the matrix's columns to harness names.
var readmeBackends = map[string]string{
	"memory": "memory", "NATS JetStream": "nats", "NATS core": "nats-core",
	"Redis Streams": "redis", "Kafka": "kafka", "RabbitMQ": "rabbitmq",
}

// TestReadmeCapabilities: each "yes" and "no" of the README's capability
// matrix is what the adapter's Capabilities says with its default settings
// and each maximum message size given in bytes is its MaxMessageSize (a
// cell that names a condition, such as a parameter or a server version, is
// not checked).
func TestReadmeCapabilities(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Capabilities\n")
	if !ok {
		t.Fatal("README: no Capabilities section")
	}
	var rows [][]string
	for line := range strings.SplitSeq(section, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, strings.Split(strings.Trim(line, "| "), " | "))
		} else if len(rows) > 0 {
			break
		}
	}
	if len(rows) < 3 {
		t.Fatalf("README: the capability matrix has %d lines", len(rows))
	}
	header := rows[0]
	for col := 1; col < len(header); col++ {
		name, _, _ := strings.Cut(header[col], " `")
		harness, ok := readmeBackends[name]
		if !ok {
			t.Errorf("README: capability column %q names no known backend", header[col])
			continue
		}
		t.Run(harness, func(t *testing.T) {
			h, ok := integration.LookupHarness(harness)
			if !ok {
				t.Fatalf("no harness %s", harness)
			}
			caps := reflect.ValueOf(h.Client(t).Capabilities())
			for _, row := range rows[2:] {
				field, known := "", false
				for _, rc := range readmeCapabilities {
					if strings.HasPrefix(row[0], rc.label) {
						field, known = rc.field, true
					}
				}
				if !known {
					t.Errorf("README: capability row %q is not mapped to a field of Capabilities", row[0])
					continue
				}
				if field == "" || col >= len(row) {
					continue
				}
				cell := row[col]
				if field == "MaxMessageSize" {
					if want, ok := readmeSize(cell); ok && caps.FieldByName(field).Int() != want {
						t.Errorf("README says %q for %s (%s); Capabilities().%s = %d", cell, header[col], row[0], field, caps.FieldByName(field).Int())
					}
					continue
				}
				var want bool
				switch {
				case strings.HasPrefix(cell, "yes"):
					want = true
				case strings.HasPrefix(cell, "no"):
				default:
					continue // conditional
				}
				if got := caps.FieldByName(field).Bool(); got != want {
					t.Errorf("README says %q for %s (%s); Capabilities().%s = %v", cell, header[col], row[0], field, got)
				}
			}
		})
	}
}
