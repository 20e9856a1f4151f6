// Package urlparam reads an adapter's URL query parameters with types and
// defaults, and reports unknown or malformed ones, so every adapter, the
// library's and a third party's, rejects bad configuration the same way
// (errors wrap messaging.ErrInvalidOption and name the parameter; a query
// that cannot be parsed wraps messaging.ErrInvalidURL). An adapter
// declares its parameters once ([]Param, read with NewDeclared), builds
// each option from its parameter with Named, and tests with CheckDeclared
// that its doc.go lists exactly those; adapters/memory shows all three.
package urlparam

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/messaging"
)

// Params reads the query of one URL. Every getter marks its parameter as
// known; Err then reports the ones nobody asked for.
type Params struct {
	q    url.Values
	used map[string]bool
	decl map[string]bool // the declared names (NewDeclared); nil: any
	errs []error
}

// New returns the parameters of u. A query with a malformed escape makes
// Err fail (url.URL.Query would drop the parameter silently), quoting
// nothing of the query: url.ParseQuery's error quotes the escape, which can
// be part of a credential. messaging.ParseURL, which the adapters' Open
// functions run first, names the parameter.
func New(u *url.URL) *Params {
	q, err := url.ParseQuery(u.RawQuery)
	p := &Params{q: q, used: map[string]bool{}}
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%w: URL query: a malformed percent-escape, or ';' between parameters", messaging.ErrInvalidURL))
	}
	return p
}

func (p *Params) raw(name string) (string, bool) {
	if p.decl != nil && !p.decl[name] {
		panic("urlparam: URL parameter " + name + " read but not declared")
	}
	p.used[name] = true
	v, ok := p.q[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	if len(v) > 1 {
		p.fail(name, strings.Join(v, ","), "given more than once")
	}
	return v[len(v)-1], true
}

// fail records a malformed parameter; the value of a credential
// (messaging.SecretParam) is not shown.
func (p *Params) fail(name, value, why string) {
	if messaging.SecretParam(name) {
		value = "xxxxx"
	}
	p.errs = append(p.errs, fmt.Errorf("%w: URL parameter %s=%q: %s", messaging.ErrInvalidOption, name, value, why))
}

// Invalid records that parameter name's value is invalid for the reason
// why, for checks the getters do not make (Err then reports it, with
// messaging.ErrInvalidOption, naming the parameter).
func (p *Params) Invalid(name, value, why string) {
	p.fail(name, value, why)
}

// Has reports whether name was given (and marks it known).
func (p *Params) Has(name string) bool {
	_, ok := p.raw(name)
	return ok
}

// String returns name's value or def.
func (p *Params) String(name, def string) string {
	if v, ok := p.raw(name); ok {
		return v
	}
	return def
}

// Int returns name's value as an int or def.
func (p *Params) Int(name string, def int) int {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, v, "not an integer")
		return def
	}
	return n
}

// Bool returns name's value as a bool (true/false/1/0) or def.
func (p *Params) Bool(name string, def bool) bool {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, v, "not a boolean (true, false, 1, 0)")
		return def
	}
	return b
}

// Duration returns name's value as a time.Duration ("500ms", "2s") or def.
func (p *Params) Duration(name string, def time.Duration) time.Duration {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, v, "not a non-negative duration (e.g. 500ms, 2s)")
		return def
	}
	return d
}

// Size returns name's value as a byte count ("1048576", "512KiB", "1MiB",
// "1MB") or def.
func (p *Params) Size(name string, def int) int {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	num, mult := v, 1
	for _, u := range units {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = s, u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n > math.MaxInt/mult {
		p.fail(name, v, "not a size (e.g. 1048576, 512KiB, 1MiB)")
		return def
	}
	return n * mult
}

// OneOf returns name's value, which must be one of allowed, or def.
func (p *Params) OneOf(name, def string, allowed ...string) string {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		p.fail(name, v, "want one of "+strings.Join(allowed, ", "))
		return def
	}
	return v
}

// Err reports malformed parameters and unknown ones (not declared, for
// NewDeclared; else those no getter asked for), each
// wrapping messaging.ErrInvalidOption (a malformed query: ErrInvalidURL);
// nil when all is well. Call it after every getter.
func (p *Params) Err() error {
	var unknown []string
	known := p.used
	if p.decl != nil {
		known = p.decl
	}
	for name := range p.q {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	errs := p.errs
	if len(unknown) > 0 {
		known := slices.Sorted(maps.Keys(known))
		errs = append(errs, fmt.Errorf("%w: unknown URL parameter(s) %s (known: %s)", messaging.ErrInvalidOption, strings.Join(unknown, ", "), strings.Join(known, ", ")))
	}
	return errors.Join(errs...)
}
