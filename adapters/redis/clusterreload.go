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
// answer nor the caller giving up. A network error counts even when the
// caller's context has ended meanwhile: with ContextTimeoutEnabled a call
// to a master that died or hangs ends at its deadline with an i/o timeout,
// and skipping those left the slot map stale until another call failed
// before its deadline.
func (h reloadOnFailure) check(ctx context.Context, err error) {
	if err == nil || errors.Is(err, goredis.Nil) {
		return
	}
	var netErr net.Error
	isNet := errors.As(err, &netErr)
	if !isNet && ctx.Err() != nil {
		return // the caller gave up
	}
	var reply goredis.Error
	if errors.As(err, &reply) && !isNet {
		return
	}
	h.cc.ReloadState(context.WithoutCancel(ctx)) // lazy: go-redis reloads in the background
}
