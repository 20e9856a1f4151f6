package redis

import (
	"context"
	"errors"
	"net"

	goredis "github.com/redis/go-redis/v9"
)

// reloadOnFailure is the hook Open adds to the cluster clients it makes:
// after a command or pipeline fails with anything but a Redis reply (a
// refused or broken connection to a dead master, a timeout), it asks
// go-redis to reload the slot map. go-redis itself reloads only on a MOVED
// or ASK reply or once a minute (ClusterStateReloadInterval), so after a
// master died it kept routing the master's slots to the dead address for up
// to a minute, long after its replica had been promoted. Reloads are lazy
// and coalesced by go-redis (one at a time, 200ms apart).
type reloadOnFailure struct{ cc *goredis.ClusterClient }

func (h reloadOnFailure) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

// check reloads the slot map after a failure that is not the server's
// answer nor the caller giving up.
func (h reloadOnFailure) check(ctx context.Context, err error) {
	if err == nil || errors.Is(err, goredis.Nil) || ctx.Err() != nil {
		return
	}
	var reply goredis.Error
	var netErr net.Error
	if errors.As(err, &reply) && !errors.As(err, &netErr) {
		return
	}
	h.cc.ReloadState(ctx)
}
