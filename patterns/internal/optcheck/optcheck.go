// Package optcheck holds the argument checks the options of the patterns
// packages share, so that they reject the same values with the same words.
package optcheck

import (
	"fmt"

	"github.com/msgkit/messaging"
)

// Invalid is the error of option name of package pkg given value v.
func Invalid(pkg, name string, v any, why string) error {
	return fmt.Errorf("%s: %s(%v): %s: %w", pkg, name, v, why, messaging.ErrInvalidOption)
}

// NoNil returns the error of option name of package pkg when one of xs is
// nil (what names the kind of the elements, "middleware", "option"), and nil
// otherwise.
func NoNil[T any](pkg, name, what string, xs []T, isNil func(T) bool) error {
	for i, x := range xs {
		if isNil(x) {
			return Invalid(pkg, name, fmt.Sprintf("%s %d nil", what, i), what+"s must not be nil")
		}
	}
	return nil
}

// Middleware checks the argument of a WithMiddleware option.
func Middleware(pkg string, mws []messaging.Middleware) error {
	return NoNil(pkg, "WithMiddleware", "middleware", mws, func(m messaging.Middleware) bool { return m == nil })
}

// SubscribeOptions checks the argument of a WithSubscribeOptions option.
func SubscribeOptions(pkg string, opts []messaging.SubscribeOption) error {
	return NoNil(pkg, "WithSubscribeOptions", "option", opts, func(o messaging.SubscribeOption) bool { return o == nil })
}

// Topic checks a topic argument of function fn of package pkg.
func Topic(pkg, fn, topic string) error {
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("%s: %s: topic: %w: %w", pkg, fn, err, messaging.ErrInvalidOption)
	}
	return nil
}
