package rabbitmqtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestHeartbeatFollowsUnavailableTimeout: the AMQP heartbeat Open
// negotiates (the broker's view, read from the management API) is the
// unavailable timeout, from 5s to 10s, unless the heartbeat parameter sets
// it: so a live broker sends a frame every half timeout while it works on
// a slow answer, and the silence bound does not take that answer for
// silence. Before, amqp091's default (10s: a frame every 5s) was
// negotiated whatever the timeout, and with the default timeout (5s) a
// single answer slower than it could fail the call and close the
// connection.
func TestHeartbeatFollowsUnavailableTimeout(t *testing.T) {
	mgmt := rabbitmqtest.Management(t)
	for _, tc := range []struct {
		name, params string
		want         int // seconds
	}{
		{"default", "", 5}, // the default unavailable_timeout
		{"timeout_8s", "&unavailable_timeout=8s", 8},
		{"timeout_20s", "&unavailable_timeout=20s", 10}, // amqp091's default, never longer
		{"timeout_1s", "&unavailable_timeout=1s", 5},
		{"heartbeat_7s", "&unavailable_timeout=20s&heartbeat=7s", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits for the management API's statistics
			name := integration.UniqueName(t, "hb")
			rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t)+"?connection_name="+name+tc.params)
			got := negotiatedHeartbeat(t, mgmt, name)
			if got != tc.want {
				t.Errorf("heartbeat negotiated with %q: %ds, want %ds", tc.params, got, tc.want)
			}
		})
	}
}

// negotiatedHeartbeat returns the heartbeat (the "timeout" field) of the
// connection named name, as the management API lists it once its
// statistics include it (within seconds).
func negotiatedHeartbeat(t *testing.T, mgmt, name string) int {
	t.Helper()
	u, err := url.Parse(mgmt)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/api/connections"
	deadline := time.Now().Add(20 * time.Second)
	for {
		// A busy management API may fail one request (an empty body, a
		// 503): asked again, like its statistics.
		conns, err := listConnections(t.Context(), u.String(), u.User == nil)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("management API: %v", err)
			}
			t.Logf("management API: %v; asking again", err)
		}
		for _, c := range conns {
			if c.Props.Name == name {
				return c.Timeout
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s not listed by the management API within 20s", name)
		}
		time.Sleep(200 * time.Millisecond) // polling the management API's statistics
	}
}

// managedConnection is what listConnections reads of a connection.
type managedConnection struct {
	Timeout int `json:"timeout"` // the negotiated heartbeat, in seconds
	Props   struct {
		Name string `json:"connection_name"`
	} `json:"client_properties"`
}

// listConnections asks the management API at u for the broker's
// connections (as guest when guest is true).
func listConnections(ctx context.Context, u string, guest bool) ([]managedConnection, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if guest {
		req.SetBasicAuth("guest", "guest")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	var conns []managedConnection
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	return conns, nil
}
