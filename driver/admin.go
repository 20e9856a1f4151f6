package driver

import (
	"context"

	"github.com/msgkit/messaging/internal/prepare"
)

// The admin side of an adapter: Provision, DeleteTopic, TopicExists,
// Inspect and Topics start with CheckAdmin, so a closed client and bad names
// fail the same way, before any broker call, on every adapter. Like
// PreparePublish's, its errors read "messaging: ...": they are the
// contract's.

// CheckAdmin checks the arguments of an admin call named op ("provision",
// "delete topic", ...): once the client is closed every call fails with
// messaging.ErrClosed, whatever its arguments (the conformance suite's
// CloseSemantics calls each); then topic and each group must be valid names
// (messaging.ValidateName, messaging.ErrInvalidTopic); then ctx must not
// have ended (its error, wrapped), so that even a call with nothing to do
// on the broker honours it (CancelledContext). An adapter with stricter
// rules for names checks them after it.
func CheckAdmin(ctx context.Context, closed bool, op, topic string, groups ...string) error {
	return prepare.Admin(ctx, closed, op, topic, groups...)
}
