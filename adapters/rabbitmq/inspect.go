package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/internal/unavail"
)

var (
	_ messaging.Inspector   = (*Client)(nil)
	_ messaging.TopicLister = (*Client)(nil)
)

// management is where the broker's management HTTP API answers.
type management struct {
	base       string // scheme://host:port[/path], without userinfo
	user, pass string // empty: the AMQP connection's credentials
	hasUser    bool
	http       *http.Client
}

// WithManagement makes Inspect read the figures AMQP cannot give (messages
// in flight, redeliveries, a stream's length) and makes Topics work, from
// the RabbitMQ management HTTP API at rawURL ("http://host:15672"; the
// management plugin must be enabled). The API is called with the
// credentials in rawURL when it has them, else with the AMQP connection's
// (user and password of the amqp:// URL), and on the AMQP connection's
// virtual host. The URL parameter "management" sets it too, without
// credentials (they would show wherever the AMQP URL is printed). Nothing
// else uses the API.
func WithManagement(rawURL string) Option {
	return func(c *config) error {
		m, err := parseManagement(rawURL)
		if err != nil {
			return err
		}
		c.management = m
		return nil
	}
}

func parseManagement(rawURL string) (*management, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rabbitmq: WithManagement(%q): want http(s)://host:port: %w", redactParsed(rawURL, u), messaging.ErrInvalidOption)
	}
	m := &management{http: &http.Client{Timeout: 30 * time.Second}}
	if u.User != nil {
		m.user, m.hasUser = u.User.Username(), true
		m.pass, _ = u.User.Password()
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	m.base = strings.TrimSuffix(u.String(), "/")
	return m, nil
}

// withAMQPCredentials gives m the credentials of the AMQP URL u unless m has
// its own: u's user and password, each defaulting to guest as amqp091's
// ParseURI does. They are read from u itself: ParseURI of the whole URL
// fails on the adapter's own parameters (heartbeat=10s: it wants whole
// seconds), and the credentials were lost.
func (m *management) withAMQPCredentials(u *url.URL) {
	if m == nil || m.hasUser {
		return
	}
	m.user, m.pass, m.hasUser = "guest", "guest", true
	if u.User != nil {
		m.user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			m.pass = p
		}
	}
}

// redactParsed is rawURL for an error message, its credentials hidden.
func redactParsed(rawURL string, u *url.URL) string {
	if u != nil {
		return messaging.RedactURL(u)
	}
	if strings.Contains(rawURL, "@") {
		return "(hidden: it holds credentials)"
	}
	return rawURL
}

// managementParam reads the URL parameter "management", which must not carry
// credentials.
func managementParam(v string) (Option, error) {
	u, err := url.Parse(v)
	if err == nil && u.User != nil {
		return nil, fmt.Errorf("%w: URL parameter management: %s: credentials come from the AMQP URL (or use WithManagement)", messaging.ErrInvalidOption, messaging.RedactURL(u))
	}
	return urlparam.Named("management", WithManagement(v)), nil
}

// Inspect reports topic's group queues as the broker keeps them. It checks
// that the topic's exchange exists (a passive declare; otherwise it fails
// with messaging.ErrTopicNotFound) and declares nothing. Without the
// management API (see WithManagement), AMQP gives per queue only its ready
// messages and its consumers:
//
//   - Groups: the group queues recorded in the topic's registry queue (read
//     with basic.get, then requeued: an Inspect or DeleteTopic running at
//     the same moment in another process may miss the entries held meanwhile)
//     and those this client provisioned; each queue is declared passively.
//   - Backlog: the queue's ready messages (including those requeued after a
//     failure); Consumers: its consumers.
//   - Messages, InFlight, OldestAge and Redeliveries: unknown.
//
// With the management API (one HTTP request listing the topic's queues):
//
//   - Groups: the topic's group queues found by name ("<topic>~<group>").
//   - Backlog: messages_ready; InFlight: messages_unacknowledged plus the
//     messages waiting in the group's retry queues (RetryAfter delays);
//     Consumers: consumers; Redeliveries: message_stats.redeliver, the total
//     since the queue's statistics began.
//   - OldestAge: the queue's head_message_timestamp where the broker
//     reports it (classic queues; quorum queues, which groups use, do not
//     in RabbitMQ 3.x, so it is unknown unless the backlog is zero). The
//     AMQP timestamp has seconds, so the age is whole seconds.
//   - Messages (with WithStreams): the stream queue's length.
//   - The API's figures are as fresh as the broker's statistics
//     (collect_statistics_interval, 5s by default).
//
// First, Last, Bytes and Partitions are not reported. Inspect is bounded as
// Provision is: by ctx, and by unavailable_timeout without a connection,
// on a connection the broker blocked, or while the broker answers nothing
// (messaging.ErrUnavailable); then the management API's request (after the
// exchange's passive declare) by ctx and unavailable_timeout too.
func (c *Client) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "inspect", topic); err != nil {
		return messaging.TopicStats{}, err
	}
	if err := validTopic(topic); err != nil {
		return messaging.TopicStats{}, fmt.Errorf("rabbitmq: inspect: %w", err)
	}
	st := messaging.TopicStats{Topic: topic, Broker: "amqp", Groups: []messaging.GroupStats{}}
	err := c.conn.channelBounded(ctx, time.Now(), topic, func(ch *amqp.Channel, _ uint64, _ *blockWatch) error {
		defer func() { _ = ch.Close() }()
		if err := ch.ExchangeDeclarePassive(topic, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			if isCode(err, amqp.NotFound) {
				return fmt.Errorf("rabbitmq: no exchange %q: %w", topic, messaging.ErrTopicNotFound)
			}
			return err
		}
		if c.cfg.management != nil {
			return nil
		}
		return c.inspectAMQP(ctx, ch, &st)
	}, nil)
	if err == nil && c.cfg.management != nil {
		// Outside channelBounded: the API's answers are not the AMQP
		// connection's, whose silence bound would close it under a slow
		// API (the API's requests have their own bound).
		err = c.inspectManagement(ctx, &st)
	}
	if err != nil {
		return messaging.TopicStats{}, fmt.Errorf("rabbitmq: inspect %s: %w", topic, err)
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
	return st, nil
}

// inspectAMQP fills st from passive declares of the topic's group queues.
func (c *Client) inspectAMQP(ctx context.Context, ch *amqp.Channel, st *messaging.TopicStats) error {
	topic := st.Topic
	groups := map[string]bool{}
	// Read the registry without acknowledging; closing the channel
	// requeues what was read.
	rch, err := c.conn.channelNow()
	if err != nil {
		return err
	}
	for {
		d, ok, err := rch.Get(registryQueue(topic), false)
		if err != nil {
			if !isCode(err, amqp.NotFound) {
				_ = rch.Close()
				return fmt.Errorf("rabbitmq: read registry: %w", err)
			}
			break
		}
		if !ok {
			break
		}
		if g, ok := groupOfQueue(topic, string(d.Body)); ok {
			groups[g] = true
		}
	}
	_ = rch.Close()
	c.mu.Lock()
	for g := range c.provisioned[topic] {
		groups[g] = true
	}
	c.mu.Unlock()
	// A failed passive declare (a queue deleted since) closes the channel:
	// go on with a new one.
	defer func() { _ = ch.Close() }()
	for g := range groups {
		q, err := ch.QueueDeclarePassive(groupQueue(topic, g), true, false, false, false, nil)
		if err != nil {
			if !isCode(err, amqp.NotFound) {
				return fmt.Errorf("rabbitmq: declare group queue %q: %w", groupQueue(topic, g), err)
			}
			if ch, err = c.conn.channelNow(); err != nil {
				return err
			}
			continue
		}
		gs := messaging.GroupStats{
			Group:     g,
			Backlog:   messaging.KnownCount(int64(q.Messages)),
			Consumers: messaging.KnownCount(int64(q.Consumers)),
		}
		if q.Messages == 0 {
			gs.OldestAge = messaging.KnownAge(0)
		}
		st.Groups = append(st.Groups, gs)
	}
	return nil
}

// groupOfQueue returns the group whose queue (not retry queue) name is q.
func groupOfQueue(topic, q string) (string, bool) {
	rest, ok := strings.CutPrefix(q, topic+"~")
	if !ok || rest == "" || strings.Contains(rest, "~") {
		return "", false
	}
	return rest, true
}

// mgmtQueue is a queue as the management API lists it.
type mgmtQueue struct {
	Name                   string          `json:"name"`
	Type                   string          `json:"type"`
	Messages               int64           `json:"messages"`
	MessagesReady          int64           `json:"messages_ready"`
	MessagesUnacknowledged int64           `json:"messages_unacknowledged"`
	Consumers              int64           `json:"consumers"`
	HeadMessageTimestamp   *int64          `json:"head_message_timestamp"`
	MessageStats           json.RawMessage `json:"message_stats"` // [] when empty
}

func (q mgmtQueue) redeliveries() int64 {
	var s struct {
		Redeliver int64 `json:"redeliver"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(q.MessageStats), []byte("{")) {
		_ = json.Unmarshal(q.MessageStats, &s)
	}
	return s.Redeliver
}

// inspectManagement fills st from the management API's list of the topic's
// queues.
func (c *Client) inspectManagement(ctx context.Context, st *messaging.TopicStats) error {
	topic := st.Topic
	q := url.Values{
		"name":      {"^" + regexp.QuoteMeta(topic) + "~"},
		"use_regex": {"true"},
		"page_size": {"500"},
		"columns":   {"name,type,messages,messages_ready,messages_unacknowledged,consumers,head_message_timestamp,message_stats.redeliver"},
	}
	var queues []mgmtQueue
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		var resp struct {
			Items     []mgmtQueue `json:"items"`
			PageCount int         `json:"page_count"`
		}
		if err := c.managementGet(ctx, "queues", q, &resp); err != nil {
			return err
		}
		queues = append(queues, resp.Items...)
		if page >= resp.PageCount {
			break
		}
	}
	now := time.Now()
	retrying := map[string]int64{}
	for _, mq := range queues {
		if mq.Name == streamQueue(topic) {
			st.Messages = messaging.KnownCount(mq.Messages)
			continue
		}
		if rest, ok := strings.CutPrefix(mq.Name, topic+"~"); ok {
			if g, _, ok := strings.Cut(rest, "~~retry-"); ok {
				retrying[g] += mq.Messages
				continue
			}
		}
		g, ok := groupOfQueue(topic, mq.Name)
		if !ok || mq.Type == "stream" {
			continue
		}
		gs := messaging.GroupStats{
			Group:        g,
			Backlog:      messaging.KnownCount(mq.MessagesReady),
			InFlight:     messaging.KnownCount(mq.MessagesUnacknowledged),
			Redeliveries: messaging.KnownCount(mq.redeliveries()),
			Consumers:    messaging.KnownCount(mq.Consumers),
		}
		switch {
		case mq.MessagesReady == 0:
			gs.OldestAge = messaging.KnownAge(0)
		case mq.HeadMessageTimestamp != nil:
			gs.OldestAge = messaging.KnownAge(max(now.Sub(time.Unix(*mq.HeadMessageTimestamp, 0)), 0))
		}
		st.Groups = append(st.Groups, gs)
	}
	for i, g := range st.Groups {
		if n := retrying[g.Group]; n > 0 {
			v, _ := g.InFlight.Value()
			st.Groups[i].InFlight = messaging.KnownCount(v + n)
		}
	}
	return nil
}

// managementGet GETs /api/<resource>/<vhost>?<query> from the management
// API and decodes the JSON answer into out. While the API cannot be
// reached it retries, bounded as the AMQP calls are: until ctx ends or
// the unavailable timeout has passed (messaging.ErrUnavailable).
func (c *Client) managementGet(ctx context.Context, resource string, query url.Values, out any) error {
	return unavail.Retry(ctx, "rabbitmq", "management API", c.cfg.unavailable, func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && !c.closed.Load()
	}, func(ctx context.Context) error {
		return c.managementGetOnce(ctx, resource, query, out)
	})
}

// managementGetOnce is managementGet without the retries.
func (c *Client) managementGetOnce(ctx context.Context, resource string, query url.Values, out any) error {
	m := c.cfg.management
	// The virtual host of the first connection: a redial opens the same
	// (Open's redials use its URL), and the API does not need the AMQP
	// connection to be up.
	vhost := c.conn.first.Config.Vhost
	if vhost == "" {
		vhost = "/"
	}
	if !m.hasUser {
		// amqp091 forgets the password once connected: only Open's URL
		// (see withAMQPCredentials) or WithManagement's can give it.
		return fmt.Errorf("rabbitmq: management API: %w: no credentials (a connection given to New does not keep its password: put them in WithManagement's URL)", messaging.ErrInvalidOption)
	}
	path := m.base + "/api/" + resource + "/" + url.PathEscape(vhost)
	target := path + "?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: management API: %w", err)
	}
	req.SetBasicAuth(m.user, m.pass)
	resp, err := m.http.Do(req)
	if err != nil {
		// Neither the URL nor the error carry the credentials (basic
		// authentication is a header).
		return fmt.Errorf("rabbitmq: management API: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("rabbitmq: management API: GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("rabbitmq: management API: GET %s: %w", path, err)
	}
	return nil
}

// ErrNoManagement is wrapped (with messaging.ErrUnsupported) by the calls
// that need the management API when the client has none (WithManagement).
var ErrNoManagement = errors.New("rabbitmq: needs the management API (WithManagement or the URL parameter management=)")

// Topics lists the topics of the virtual host: its durable topic exchanges
// other than RabbitMQ's own (amq.*), with valid topic names, sorted; other
// applications' topic exchanges are listed too. It needs the management API
// (WithManagement); without it it fails with an error wrapping
// messaging.ErrUnsupported and ErrNoManagement. While the API cannot be
// reached it retries until ctx ends or unavailable_timeout has passed
// (messaging.ErrUnavailable); it does not need the AMQP connection.
func (c *Client) Topics(ctx context.Context) ([]string, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("rabbitmq: topics: %w", messaging.ErrClosed)
	}
	if c.cfg.management == nil {
		return nil, fmt.Errorf("rabbitmq: topics: %w: %w", messaging.ErrUnsupported, ErrNoManagement)
	}
	var exchanges []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Durable  bool   `json:"durable"`
		Internal bool   `json:"internal"`
	}
	if err := c.managementGet(ctx, "exchanges", url.Values{"columns": {"name,type,durable,internal"}}, &exchanges); err != nil {
		return nil, fmt.Errorf("rabbitmq: topics: %w", err)
	}
	var out []string
	for _, e := range exchanges {
		if e.Type == amqp.ExchangeTopic && e.Durable && !e.Internal && validTopic(e.Name) == nil {
			out = append(out, e.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
