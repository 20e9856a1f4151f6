package urlparam

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/msgkit/messaging"
)

// Param declares one URL query parameter of an adapter: its name and a
// one-line description. An adapter declares all its parameters in one
// table ([]Param), reads URLs with NewDeclared, and checks in a test with
// CheckDoc that its package documentation lists exactly those names.
type Param struct {
	Name string
	Doc  string
}

// NewDeclared returns the parameters of u read against decls: Err rejects
// every parameter of u that decls does not declare (with
// messaging.ErrInvalidOption, naming it and listing the declared ones),
// whether or not a getter asked for it. A getter asking for an undeclared
// name panics: that is a bug of the adapter, which its URL tests catch.
// It panics too if decls declares a name twice or an empty one.
func NewDeclared(u *url.URL, decls []Param) *Params {
	p := New(u)
	p.decl = make(map[string]bool, len(decls))
	for _, d := range decls {
		if d.Name == "" || p.decl[d.Name] {
			panic(fmt.Sprintf("urlparam: parameter %q declared empty or twice", d.Name))
		}
		p.decl[d.Name] = true
	}
	return p
}

// Names returns the names of decls, sorted.
func Names(decls []Param) []string {
	names := make([]string, len(decls))
	for i, d := range decls {
		names[i] = d.Name
	}
	slices.Sort(names)
	return names
}

// Named wraps an adapter option built from URL parameter name so that its
// error names the parameter as well as the option ("nats: WithPrefetch(0):
// ... (URL parameter prefetch)"); the error still wraps what the option's
// error does (messaging.ErrInvalidOption). O is the adapter's Option
// type, func(*config) error.
func Named[C any, O ~func(*C) error](name string, o O) O {
	return func(c *C) error {
		if err := o(c); err != nil {
			return fmt.Errorf("%w (URL parameter %s)", err, name)
		}
		return nil
	}
}

// docParam matches "name=" at the start of a parameter entry: the line's
// start or after ", ".
var docParam = regexp.MustCompile(`(?:^|,\s*)([a-z][a-z0-9_]*)=`)

// DocumentedParams returns the parameter names a package documentation
// (the source of a doc.go file, or its comment text) lists, sorted. The
// list is the first code block (lines indented by a tab) after a line that
// starts with "Parameters"; each entry is a line of the block that does not
// start with white space after the tab (continuation lines do), and its
// names are the "name=" at its start and after each ", " in its first
// column (the text before two spaces in a row):
//
//	prefetch=256              messages pulled ahead
//	storage=file|memory, replicas=1   (created streams)
//	                          a continuation line
func DocumentedParams(doc string) []string {
	var names []string
	inBlock, seen := false, false
	for line := range strings.SplitSeq(doc, "\n") {
		line = strings.TrimPrefix(strings.TrimRight(line, " \r"), "//")
		text := strings.TrimPrefix(line, " ")
		switch {
		case !seen:
			seen = strings.HasPrefix(text, "Parameters")
			continue
		case strings.HasPrefix(line, "\t"):
			inBlock = true
		case text == "" && !inBlock:
			continue
		default:
			if inBlock {
				slices.Sort(names)
				return slices.Compact(names)
			}
			continue
		}
		entry := line[1:]
		if entry == "" || entry[0] == ' ' || entry[0] == '\t' {
			continue // a continuation line
		}
		first, _, _ := strings.Cut(entry, "  ")
		for _, m := range docParam.FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// CheckDoc reports, in one error, the parameters decls declares that the
// package documentation doc (see DocumentedParams) does not list, and the
// ones it lists that decls does not declare; nil when they agree. An
// adapter's test calls it with its doc.go (see CheckDeclared).
func CheckDoc(doc string, decls []Param) error {
	documented := DocumentedParams(doc)
	declared := Names(decls)
	var missing, extra []string
	for _, n := range declared {
		if !slices.Contains(documented, n) {
			missing = append(missing, n)
		}
	}
	for _, n := range documented {
		if !slices.Contains(declared, n) {
			extra = append(extra, n)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	return fmt.Errorf("urlparam: documented URL parameters differ from the declared ones: not documented: [%s]; documented but not declared: [%s]",
		strings.Join(missing, " "), strings.Join(extra, " "))
}

// CheckDeclared reports, in one error, how an adapter breaks its URL
// parameter declarations decls: its package documentation, the file at
// docFile (its doc.go), does not list exactly those (see CheckDoc), or its
// URL parser parse calls a declared parameter with a malformed value
// unknown, or accepts an undeclared parameter or rejects it without naming
// it or without messaging.ErrInvalidOption. parse reads a URL of the
// adapter with the query rawQuery (and dials nothing). An adapter's test:
//
//	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
//		_, err := parseURL(&url.URL{Scheme: "x", Host: "h", RawQuery: q})
//		return err
//	})
func CheckDeclared(docFile string, decls []Param, parse func(rawQuery string) error) error {
	var errs []error
	if src, err := os.ReadFile(docFile); err != nil {
		errs = append(errs, fmt.Errorf("urlparam: %w", err))
	} else if err := CheckDoc(string(src), decls); err != nil {
		errs = append(errs, err)
	}
	for _, d := range decls {
		if err := parse(d.Name + "=%20bad%20"); err != nil && strings.Contains(err.Error(), "unknown URL parameter") {
			errs = append(errs, fmt.Errorf("urlparam: declared parameter %s is rejected as unknown: %w", d.Name, err))
		}
	}
	const undeclared = "undeclared_param"
	if err := parse(undeclared + "=1"); !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), undeclared) {
		errs = append(errs, fmt.Errorf("urlparam: parameter %s: got %v, want an error wrapping ErrInvalidOption that names it", undeclared, err))
	}
	return errors.Join(errs...)
}
