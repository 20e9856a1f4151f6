package prepare

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
)

// Admin checks the arguments of an adapter's admin call named op; see
// driver.CheckAdmin, which publishes it.
func Admin(ctx context.Context, closed bool, op, topic string, groups ...string) error {
	if closed {
		return fmt.Errorf("messaging: %s: %w", op, messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("messaging: %s: topic: %w", op, err)
	}
	for _, g := range groups {
		if err := messaging.ValidateName(g); err != nil {
			return fmt.Errorf("messaging: %s %s: group: %w", op, topic, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("messaging: %s %s: %w", op, topic, err)
	}
	return nil
}
