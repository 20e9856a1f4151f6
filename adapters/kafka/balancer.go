package kafka

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"
)

// balancerProtocol is the group protocol name of incarnationBalancer. Range
// and round robin stay listed after it, so a group shared with plain
// kafka-go readers (or older versions of this adapter) still agrees on one.
const balancerProtocol = "msgkit-range"

// incarnationBalancer is range assignment that recognises members left
// behind by a subscription's earlier joins.
//
// kafka-go forgets its member ID after any group error (a cut connection,
// for example) and joins again as a new member. If a cut drops the
// coordinator's answer to a join, the coordinator has added a member that
// nobody runs. Kafka evicts it when its session times out. kfake (and any
// coordinator that starts a member's session clock only once the join
// answer was delivered) keeps it forever: the group's leader hands it
// partitions, nobody fetches them, and their messages are never delivered.
//
// So every join carries the subscription's identity and a join counter
// (UserData). When this subscription leads the group, a member whose
// identity also appears with a higher counter is a stale incarnation: it
// gets no partitions, and the leader removes it from the group (LeaveGroup
// on its behalf), so no later rebalance waits for it.
type incarnationBalancer struct {
	self  string // identity of this subscription
	joins atomic.Uint64
	evict func(memberIDs []string)
}

func newIncarnationBalancer(evict func([]string)) *incarnationBalancer {
	return &incarnationBalancer{self: uuid.NewString(), evict: evict}
}

var userDataPrefix = []byte("msgkit1:")

func (b *incarnationBalancer) ProtocolName() string { return balancerProtocol }

// UserData is called by kafka-go for every join: identity and counter.
func (b *incarnationBalancer) UserData() ([]byte, error) {
	n := b.joins.Add(1)
	return append(append([]byte(nil), userDataPrefix...), b.self+":"+strconv.FormatUint(n, 10)...), nil
}

func parseIncarnation(data []byte) (id string, n uint64, ok bool) {
	rest, found := bytes.CutPrefix(data, userDataPrefix)
	if !found {
		return "", 0, false
	}
	i := bytes.LastIndexByte(rest, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(string(rest[i+1:]), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return string(rest[:i]), n, true
}

// AssignGroups runs on the group's leader: range assignment over the
// members that are the latest incarnation of their subscription.
func (b *incarnationBalancer) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	newest := map[string]uint64{}
	for _, m := range members {
		if id, n, ok := parseIncarnation(m.UserData); ok && n > newest[id] {
			newest[id] = n
		}
	}
	var live []kafkago.GroupMember
	var stale []string
	for _, m := range members {
		if id, n, ok := parseIncarnation(m.UserData); ok && n < newest[id] {
			stale = append(stale, m.ID)
			continue
		}
		live = append(live, m)
	}
	out := kafkago.RangeGroupBalancer{}.AssignGroups(live, partitions)
	if len(stale) > 0 && b.evict != nil {
		go b.evict(stale)
	}
	return out
}

// evictMembers removes members of group on their behalf (LeaveGroup),
// retrying every 250ms at most until it succeeds or ctx ends; a member the
// coordinator does not know (any more) counts as removed. A failure is
// logged (the coordinator still removes them when their session expires);
// why says in the logs where the members came from.
func (c *Client) evictMembers(ctx context.Context, topic, group, why string, ids []string) {
	req := &kafkago.LeaveGroupRequest{GroupID: group}
	for _, id := range ids {
		req.Members = append(req.Members, kafkago.LeaveGroupRequestMember{ID: id})
	}
	bo := fastBackOff()
	bo.MaxInterval = 250 * time.Millisecond // the coordinator's return is what is awaited
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := c.admin.LeaveGroup(callCtx, req)
		if err != nil {
			return struct{}{}, err
		}
		errs := []error{resp.Error}
		for _, m := range resp.Members {
			errs = append(errs, m.Error)
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, kafkago.UnknownMemberId) {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0))
	if errors.Is(err, context.Canceled) {
		return // the subscription is closing
	}
	if err != nil {
		c.cfg.logger.Warn("kafka: removing stale group members failed", "topic", topic, "group", group, "members", ids, "left_by", why, "error", err)
		return
	}
	c.cfg.logger.Info("kafka: removed stale group members", "topic", topic, "group", group, "members", ids, "left_by", why)
}

// groupBalancers is the protocol list of a group subscription, led by b.
func groupBalancers(b *incarnationBalancer) []kafkago.GroupBalancer {
	return []kafkago.GroupBalancer{b, kafkago.RangeGroupBalancer{}, kafkago.RoundRobinGroupBalancer{}}
}
