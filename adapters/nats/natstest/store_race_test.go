package natstest_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestCreateStreamAfterLostStoreDir: a stream creation that raced the
// deletion of the account's last stream fails on the server with "error
// creating store for stream" (10049: the server had just removed the
// account's streams directory); the adapter creates the stream once more
// instead of failing the call. Seen on the shared 2.9.10 server while
// conformance cases created and deleted streams in parallel. The race
// itself takes microseconds to lose, so the test answers the JetStream API
// itself, on a server without JetStream, and fails the first creation as
// that server did.
func TestCreateStreamAfterLostStoreDir(t *testing.T) {
	addr := startSecureServer(t, &server.Options{})
	api, err := natsgo.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	respond := func(m *natsgo.Msg, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Error(err)
			return
		}
		if err := m.Respond(b); err != nil {
			t.Error(err)
		}
	}
	apiError := func(typ string, code, errCode int, desc string) map[string]any {
		return map[string]any{"type": typ, "error": map[string]any{"code": code, "err_code": errCode, "description": desc}}
	}
	var creates atomic.Int32
	var other atomic.Bool // every creation fails, with another error of the same code
	subs := map[string]natsgo.MsgHandler{
		"$JS.API.STREAM.INFO.*": func(m *natsgo.Msg) {
			respond(m, apiError("io.nats.jetstream.api.v1.stream_info_response", 404, 10059, "stream not found"))
		},
		"$JS.API.STREAM.CREATE.*": func(m *natsgo.Msg) {
			n := creates.Add(1)
			if other.Load() {
				respond(m, apiError("io.nats.jetstream.api.v1.stream_create_response", 500, 10049, "subjects overlap with an existing stream"))
				return
			}
			if n == 1 { // what the 2.9.10 server answered
				respond(m, apiError("io.nats.jetstream.api.v1.stream_create_response", 500, 10049, "error creating store for stream"))
				return
			}
			var cfg map[string]any
			if err := json.Unmarshal(m.Data, &cfg); err != nil {
				t.Error(err)
			}
			respond(m, map[string]any{"type": "io.nats.jetstream.api.v1.stream_create_response",
				"config": cfg, "created": time.Now().UTC(), "state": map[string]any{}})
		},
	}
	for subject, h := range subs {
		if _, err := api.Subscribe(subject, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.Flush(); err != nil {
		t.Fatal(err)
	}
	c := natstest.OpenURL(t, "nats://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic := integration.UniqueName(t, "lost-dir")
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatalf("Provision after a creation that lost its store directory: %v", err)
	}
	if n := creates.Load(); n != 2 {
		t.Errorf("%d stream creations, want 2 (the failed one and one more)", n)
	}

	// Another failure of the creation is the call's error, at once.
	other.Store(true)
	creates.Store(0)
	err = c.Provision(ctx, integration.UniqueName(t, "lost-dir-other"))
	if err == nil || !strings.Contains(err.Error(), "subjects overlap") {
		t.Errorf("Provision whose stream creation fails: %v, want the creation's error", err)
	}
	if n := creates.Load(); n != 1 {
		t.Errorf("%d creations of a stream the server refused, want 1", n)
	}
}
