package urlparam

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
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
// error names the parameter as well as the option ("URL parameter
// prefetch: nats: WithPrefetch(0): ..."); the error still wraps what the
// option's error does (messaging.ErrInvalidOption). O is the adapter's Option
// type, func(*config) error.
func Named[C any, O ~func(*C) error](name string, o O) O {
	return func(c *C) error {
		if err := o(c); err != nil {
			return fmt.Errorf("URL parameter %s: %w", name, err)
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
// adapter's test calls it with its doc.go:
//
//	src, err := os.ReadFile("doc.go")
//	...
//	if err := urlparam.CheckDoc(string(src), urlParams); err != nil {
//		t.Error(err)
//	}
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
	return fmt.Errorf("documented URL parameters differ from the declared ones: not documented: [%s]; documented but not declared: [%s]",
		strings.Join(missing, " "), strings.Join(extra, " "))
}
