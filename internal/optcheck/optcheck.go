// Package optcheck holds the argument checks the options of the adapters,
// the patterns and the Prometheus integrations share, so that they reject
// the same values with the same words: "<pkg>: <Option>(<value>): <why>:
// invalid option".
package optcheck

import (
	"cmp"
	"fmt"
	"math"
	"slices"

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

// Topic checks a topic argument of function fn of package pkg.
func Topic(pkg, fn, topic string) error {
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("%s: %s: topic: %w: %w", pkg, fn, err, messaging.ErrInvalidOption)
	}
	return nil
}

// AtLeast returns the option function of option name of package pkg that
// sets *field(c) to v, which must be at least lowest.
func AtLeast[C any, N cmp.Ordered](pkg, name string, v, lowest N, field func(*C) *N) func(*C) error {
	return func(c *C) error {
		if v < lowest {
			return Invalid(pkg, name, v, fmt.Sprintf("must be at least %v", lowest))
		}
		*field(c) = v
		return nil
	}
}

// Positive returns the option function of option name of package pkg that
// sets *field(c) to v, which must be positive.
func Positive[C any, N cmp.Ordered](pkg, name string, v N, field func(*C) *N) func(*C) error {
	return func(c *C) error {
		var zero N
		if v <= zero {
			return Invalid(pkg, name, v, "must be positive")
		}
		*field(c) = v
		return nil
	}
}

// NotNegative returns the option function of option name of package pkg
// that sets *field(c) to v, which must not be negative (0 has the meaning
// the option documents).
func NotNegative[C any, N cmp.Ordered](pkg, name string, v N, field func(*C) *N) func(*C) error {
	return func(c *C) error {
		var zero N
		if v < zero {
			return Invalid(pkg, name, v, "must not be negative")
		}
		*field(c) = v
		return nil
	}
}

// Required returns the option function of option name of package pkg that
// sets *field(c) to v, which must not be nil (why says what is missing).
func Required[C, T any](pkg, name string, v *T, why string, field func(*C) **T) func(*C) error {
	return func(c *C) error {
		if v == nil {
			return Invalid(pkg, name, v, why)
		}
		*field(c) = v
		return nil
	}
}

// PrometheusName reports whether s is a valid Prometheus metric name
// prefix or label name in the classic scheme: a letter or underscore, then
// letters, digits and underscores ("" is valid: no prefix).
func PrometheusName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// PrometheusNamespace returns the option function of a WithNamespace
// option of package pkg that sets *field(c) to ns, which must be a valid
// Prometheus name (PrometheusName).
func PrometheusNamespace[C any](pkg, ns string, field func(*C) *string) func(*C) error {
	return func(c *C) error {
		if !PrometheusName(ns) {
			return Invalid(pkg, "WithNamespace", fmt.Sprintf("%q", ns), "not a Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*)")
		}
		*field(c) = ns
		return nil
	}
}

// Buckets returns the option function of a WithBuckets option of package
// pkg that sets *field(c) to a copy of b: histogram bucket bounds, at least
// one, strictly increasing (no NaN).
func Buckets[C any](pkg string, b []float64, field func(*C) *[]float64) func(*C) error {
	return func(c *C) error {
		if len(b) == 0 {
			return Invalid(pkg, "WithBuckets", b, "needs at least one bucket")
		}
		for i, v := range b {
			if math.IsNaN(v) || i > 0 && !(v > b[i-1]) {
				return Invalid(pkg, "WithBuckets", b, "must be strictly increasing numbers")
			}
		}
		*field(c) = slices.Clone(b)
		return nil
	}
}

// Topics returns the option function of option name of package pkg that
// sets *field(c) to a copy of topics: at least one, each a valid name
// (messaging.ValidateName).
func Topics[C any](pkg, name string, topics []string, field func(*C) *[]string) func(*C) error {
	return func(c *C) error {
		if len(topics) == 0 {
			return Invalid(pkg, name, "no topic", "needs at least one topic")
		}
		for _, t := range topics {
			if err := Topic(pkg, name, t); err != nil {
				return err
			}
		}
		*field(c) = slices.Clone(topics)
		return nil
	}
}
