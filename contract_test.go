package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"orders", "orders.eu", "a_b-c.D9", strings.Repeat("x", messaging.MaxNameLength)} {
		if err := messaging.ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a/b", "a*", "a>", ".a", "a.", "a..b", "ü", strings.Repeat("x", messaging.MaxNameLength+1)} {
		if err := messaging.ValidateName(bad); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("ValidateName(%q): %v, want ErrInvalidTopic", bad, err)
		}
	}
}

// TestValidateNameMessage checks that the error quotes the name as given and
// names the offending character, not a byte of its UTF-8 encoding.
func TestValidateNameMessage(t *testing.T) {
	for name, want := range map[string]string{
		"Ärger":                  `"Ärger": character 'Ä' at position 0`,
		"orders-ü":               `"orders-ü": character 'ü' at position 7`,
		"a b":                    `"a b": character ' ' at position 1`,
		"x\xffy":                 `invalid UTF-8 at byte 1`,
		"a\uFFFDb":               "\"a\uFFFDb\": character '\uFFFD' at position 1",
		strings.Repeat("é", 150): `"` + strings.Repeat("é", 20) + `..." is 300 bytes`,
	} {
		err := messaging.ValidateName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want it to contain %s", name, err, want)
		}
	}
}

func TestPositionValidate(t *testing.T) {
	for _, ok := range []messaging.Position{messaging.Earliest, messaging.Latest, messaging.AtOffset("1"), messaging.AfterOffset("0:5"), messaging.AtTime(time.Now())} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []messaging.Position{messaging.AtOffset(""), messaging.AfterOffset(""), messaging.AtTime(time.Time{}), {Kind: 99}} {
		if err := bad.Validate(); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("%v: %v, want ErrInvalidOption", bad, err)
		}
	}
}

func TestErrorMarkers(t *testing.T) {
	base := errors.New("boom")
	if messaging.Permanent(nil) != nil || messaging.RetryAfter(nil, time.Second) != nil {
		t.Fatal("wrapping nil must give nil")
	}
	p := messaging.Permanent(base)
	if !messaging.IsPermanent(p) || !errors.Is(p, base) || messaging.IsPermanent(base) {
		t.Fatal("Permanent marking or unwrapping is wrong")
	}
	r := messaging.RetryAfter(base, 3*time.Second)
	if d, ok := messaging.RetryDelay(r); !ok || d != 3*time.Second || !errors.Is(r, base) {
		t.Fatalf("RetryDelay: %v %v", d, ok)
	}
	if _, ok := messaging.RetryDelay(base); ok {
		t.Fatal("RetryDelay found a delay in a plain error")
	}
	if d, _ := messaging.RetryDelay(messaging.RetryAfter(base, -time.Second)); d != 0 {
		t.Fatalf("negative delay kept: %v", d)
	}
}

func TestPublishError(t *testing.T) {
	e := &messaging.PublishError{Errs: []error{nil, messaging.ErrClosed, nil, errors.New("nope")}}
	if got := e.Failed(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("Failed: %v", got)
	}
	var err error = e
	if !errors.Is(err, messaging.ErrClosed) {
		t.Fatal("errors.Is does not see through PublishError")
	}
	if !strings.Contains(e.Error(), "2 of 4") {
		t.Fatalf("message: %s", e.Error())
	}
}

func TestSubscribeOptionsDefaults(t *testing.T) {
	o, err := messaging.NewSubscribeOptions(10)
	if err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 1 || o.Prefetch != 10 || o.AckDeadline != messaging.DefaultAckDeadline || o.StartAt.Kind != messaging.PositionLatest {
		t.Fatalf("ephemeral defaults: %+v", o)
	}
	o, err = messaging.NewSubscribeOptions(2, messaging.Group("g"), messaging.Concurrency(8))
	if err != nil {
		t.Fatal(err)
	}
	if o.StartAt.Kind != messaging.PositionEarliest || o.Prefetch != 8 {
		t.Fatalf("group defaults: %+v (a new group starts at Earliest; prefetch >= concurrency)", o)
	}
	for _, bad := range []messaging.SubscribeOption{messaging.Concurrency(0), messaging.Prefetch(-1), messaging.AckDeadline(0), messaging.MaxAttempts(-1), messaging.StartAt(messaging.AtOffset(""))} {
		if _, err := messaging.NewSubscribeOptions(1, bad); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
	if _, err := messaging.NewSubscribeOptions(1, messaging.Group("a b")); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("bad group: %v", err)
	}
}

func TestChainOrder(t *testing.T) {
	var trace []string
	mw := func(name string) messaging.Middleware {
		return func(next messaging.Handler) messaging.Handler {
			return func(ctx context.Context, m *messaging.Message) error {
				trace = append(trace, name)
				return next(ctx, m)
			}
		}
	}
	h := messaging.Chain(func(context.Context, *messaging.Message) error { trace = append(trace, "h"); return nil }, mw("a"), mw("b"))
	_ = h(t.Context(), &messaging.Message{})
	if strings.Join(trace, ",") != "a,b,h" {
		t.Fatalf("order %v, want a,b,h", trace)
	}
}

func TestMessageCloneIsDeep(t *testing.T) {
	m := &messaging.Message{ID: "1", Payload: []byte("abc"), Header: messaging.Header{"k": "v"}}
	c := m.Clone()
	c.Payload[0] = 'X'
	c.Header["k"] = "changed"
	if string(m.Payload) != "abc" || m.Header["k"] != "v" {
		t.Fatal("Clone shares payload or header")
	}
	if m.Size() != len("1")+len("abc")+len("k")+len("v") {
		t.Fatalf("Size %d", m.Size())
	}
}

// TestIgnoreDuplicates: only errors made of duplicates alone are ignored;
// one that joins a duplicate with a real failure (errors.Join, several %w,
// inside a PublishError entry or around one) is a failure.
func TestIgnoreDuplicates(t *testing.T) {
	dup := fmt.Errorf("nats: %w", messaging.ErrDuplicate)
	down := fmt.Errorf("nats: %w", messaging.ErrUnavailable)
	for name, tc := range map[string]struct {
		err    error
		ignore bool
	}{
		"nil":                         {nil, true},
		"duplicate":                   {dup, true},
		"wrapped twice":               {fmt.Errorf("publish: %w", dup), true},
		"publish error of duplicates": {&messaging.PublishError{Errs: []error{nil, dup, messaging.ErrDuplicate}}, true},
		"joined duplicates":           {errors.Join(dup, messaging.ErrDuplicate), true},
		"other":                       {down, false},
		"publish error, one down":     {&messaging.PublishError{Errs: []error{dup, down}}, false},
		"joined with a failure":       {errors.Join(dup, down), false},
		"two %w":                      {fmt.Errorf("%w; %w", dup, down), false},
		"entry joining a failure":     {&messaging.PublishError{Errs: []error{errors.Join(dup, down)}}, false},
		"publish error and a failure": {errors.Join(&messaging.PublishError{Errs: []error{dup}}, down), false},
	} {
		got := messaging.IgnoreDuplicates(tc.err)
		if (got == nil) != tc.ignore || (got != nil && got != tc.err) {
			t.Errorf("%s: IgnoreDuplicates(%v) = %v; want ignored %v (else err itself)", name, tc.err, got, tc.ignore)
		}
	}
}

// TestValidateHeader: names of 1 to MaxHeaderNameLength bytes, not starting
// with "msgkit-" or "x-msgkit-" in any case, and none of the names RabbitMQ
// sets on delivery (in any case); values unrestricted.
func TestValidateHeader(t *testing.T) {
	ok := messaging.Header{
		strings.Repeat("h", messaging.MaxHeaderNameLength): "v",
		"msgkit":             "no dash",
		"x-msgkit":           "no dash",
		"my-msgkit-id":       "not a prefix",
		"x-death-count":      "not x-death",
		"x-first-death-time": "not a RabbitMQ name",
		"k\x00\r\n: ":        "\x00\xff\r\n",
		"empty value":        "",
	}
	if err := messaging.ValidateHeader(ok); err != nil {
		t.Errorf("ValidateHeader(valid names): %v", err)
	}
	for _, bad := range []string{
		"", strings.Repeat("h", messaging.MaxHeaderNameLength+1),
		"msgkit-id", "MsgKit-Time", "x-msgkit-", "X-MSGKIT-ATTEMPT",
		"x-death", "X-Death", "x-delivery-count", "x-stream-offset",
		"x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
		"x-last-death-exchange", "x-last-death-queue", "X-Last-Death-Reason",
	} {
		if err := messaging.ValidateHeader(messaging.Header{"fine": "v", bad: "v"}); !errors.Is(err, messaging.ErrInvalidHeader) {
			t.Errorf("ValidateHeader with name %q: %v, want ErrInvalidHeader", bad, err)
		}
	}
}

// TestSubscribeOptionsExplicit: an explicit StartAt wins over the defaults
// (Earliest for a new group, Latest for an ephemeral subscription); the
// batch defaults are DefaultBatchSize and DefaultBatchWait; BatchSize,
// BatchWait and every RedeliveryBackoff delay must be positive.
func TestSubscribeOptionsExplicit(t *testing.T) {
	o, err := messaging.NewSubscribeOptions(1, messaging.Group("g"), messaging.StartAt(messaging.Latest))
	if err != nil || o.StartAt.Kind != messaging.PositionLatest {
		t.Errorf("group with StartAt(Latest): %v, %v; want Latest", o.StartAt, err)
	}
	at := messaging.AfterOffset("7")
	o, err = messaging.NewSubscribeOptions(1, messaging.StartAt(at))
	if err != nil || o.StartAt != at {
		t.Errorf("ephemeral with StartAt(%v): %v, %v", at, o.StartAt, err)
	}
	o, err = messaging.NewSubscribeOptions(1, messaging.StartAt(messaging.Earliest))
	if err != nil || o.StartAt.Kind != messaging.PositionEarliest {
		t.Errorf("ephemeral with StartAt(Earliest): %v, %v; want Earliest", o.StartAt, err)
	}
	o, err = messaging.NewSubscribeOptions(1)
	if err != nil || o.BatchSize != messaging.DefaultBatchSize || o.BatchWait != messaging.DefaultBatchWait || o.MaxAttempts != 0 || o.RedeliveryBackoff != nil {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, err = messaging.NewSubscribeOptions(1, messaging.BatchSize(1), messaging.BatchWait(time.Nanosecond), messaging.RedeliveryBackoff(time.Second, 2*time.Second))
	if err != nil || o.BatchSize != 1 || o.BatchWait != time.Nanosecond || len(o.RedeliveryBackoff) != 2 || o.RedeliveryBackoff[1] != 2*time.Second {
		t.Errorf("explicit batch and backoff: %+v, %v", o, err)
	}
	for what, bad := range map[string]messaging.SubscribeOption{
		"BatchSize(0)":             messaging.BatchSize(0),
		"BatchWait(0)":             messaging.BatchWait(0),
		"BatchWait(-1)":            messaging.BatchWait(-1),
		"RedeliveryBackoff(1s, 0)": messaging.RedeliveryBackoff(time.Second, 0),
		"AckDeadline(-1)":          messaging.AckDeadline(-1),
		"Prefetch(0)":              messaging.Prefetch(0),
	} {
		if _, err := messaging.NewSubscribeOptions(1, bad); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", what, err)
		}
	}
}

// TestPositionConstructors: each constructor makes its kind with its
// argument unchanged, and String tells the kinds apart.
func TestPositionConstructors(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	for _, tc := range []struct {
		p    messaging.Position
		want messaging.Position
		str  string
	}{
		{messaging.Earliest, messaging.Position{Kind: messaging.PositionEarliest}, "earliest"},
		{messaging.Latest, messaging.Position{Kind: messaging.PositionLatest}, "latest"},
		{messaging.AtOffset("0:5"), messaging.Position{Kind: messaging.PositionAtOffset, Offset: "0:5"}, "offset 0:5"},
		{messaging.AfterOffset("0:5"), messaging.Position{Kind: messaging.PositionAfterOffset, Offset: "0:5"}, "after offset 0:5"},
		{messaging.AtTime(at), messaging.Position{Kind: messaging.PositionAtTime, Time: at}, "time 2026-01-02T03:04:05.000006789Z"},
	} {
		if tc.p.Kind != tc.want.Kind || tc.p.Offset != tc.want.Offset || !tc.p.Time.Equal(tc.want.Time) {
			t.Errorf("%v = %+v, want %+v", tc.str, tc.p, tc.want)
		}
		if s := tc.p.String(); s != tc.str {
			t.Errorf("String() = %q, want %q", s, tc.str)
		}
	}
}

// TestMessageSizeAndNew: Size counts payload, ID, key and header names and
// values; NewMessage leaves ID and Time to Publish.
func TestMessageSizeAndNew(t *testing.T) {
	m := &messaging.Message{ID: "i", Key: "kk", Payload: []byte("ppp"), Header: messaging.Header{"hhhh": "vvvvv", "a": ""}, Topic: "ignored", Group: "ignored", Offset: "ignored"}
	if got, want := m.Size(), 1+2+3+4+5+1; got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	n := messaging.NewMessage([]byte("x"))
	if n.ID != "" || !n.Time.IsZero() || string(n.Payload) != "x" || n.Key != "" || n.Header != nil {
		t.Errorf("NewMessage = %+v, want only the payload set", n)
	}
}
