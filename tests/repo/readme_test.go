package repo_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
	_ "github.com/msgkit/messaging/tests/backends" // registers every scheme
)

// docFiles are the Markdown files a user reads, relative to the
// repository's root: README.md, CONTRIBUTING.md, PERFORMANCE.md and every
// adapter's README.md.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md", "PERFORMANCE.md"}
	more, err := filepath.Glob(filepath.Join(root, "adapters", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	return files
}

// readDoc returns the text of the file doc (relative to root).
func readDoc(t *testing.T, root, doc string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// snippet is a fenced code block of a Markdown file.
type snippet struct {
	file string
	line int // of the opening fence
	lang string
	text string
}

var fence = regexp.MustCompile("^```\\s*([A-Za-z0-9_-]*)\\s*$")

// snippets returns the fenced code blocks of the Markdown file path.
func snippets(t *testing.T, root, path string) []snippet {
	t.Helper()
	raw := readDoc(t, root, path)
	var out []snippet
	var cur *snippet
	var body []string
	for i, line := range strings.Split(raw, "\n") {
		m := fence.FindStringSubmatch(strings.TrimRight(line, "\r"))
		switch {
		case m == nil && cur != nil:
			body = append(body, line)
		case m == nil:
		case cur == nil:
			cur = &snippet{file: path, line: i + 1, lang: m[1]}
			body = nil
		default:
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: code block not closed", path, cur.line)
	}
	return out
}

// codeLines returns src's lines as Go tokens, one string per line that has
// any: comments and the automatic semicolons dropped, every string literal
// written "S" (names and URLs in the documentation need not be the ones a
// test uses: the URLs are checked by TestReadmeURLs). Import declarations
// are dropped (the imported paths are checked by TestReadmeImports), and
// with placeholders set, so is every line holding "..." outside a string
// (a placeholder such as `if err != nil { ... }`).
func codeLines(src string, placeholders bool) []string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	s.Init(file, []byte(src), func(token.Position, string) {}, 0)
	byLine := map[int][]string{}
	var order []int
	skip := map[int]bool{}
	inImport, importParen := false, false
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		line := fset.Position(pos).Line
		switch {
		case tok == token.SEMICOLON && lit == "\n":
			if inImport && !importParen {
				inImport = false
			}
			continue
		case tok == token.IMPORT:
			inImport = true
			continue
		case inImport && tok == token.LPAREN:
			importParen = true
			continue
		case inImport && importParen && tok == token.RPAREN:
			inImport, importParen = false, false
			continue
		case inImport:
			continue
		case tok == token.ELLIPSIS && placeholders:
			skip[line] = true
		}
		text := tok.String()
		switch {
		case tok == token.STRING:
			text = `"S"`
		case lit != "" && tok != token.SEMICOLON:
			text = lit
		}
		if _, ok := byLine[line]; !ok {
			order = append(order, line)
		}
		byLine[line] = append(byLine[line], text)
	}
	var out []string
	for _, l := range order {
		if !skip[l] {
			out = append(out, strings.Join(byLine[l], " "))
		}
	}
	return out
}

// covering is a function of a test file that may cover a snippet: an
// example with checked output, or a test.
type covering struct {
	name    string // file:function
	lines   []string
	example bool // an Example function
	checked bool // a Test, or an Example with an output comment
}

// outputComment is the comment that makes go test check an example's
// output.
var outputComment = regexp.MustCompile(`(?m)^\s*// (Unordered output|Output):`)

// coveringFuncs returns every Example and Test function of the
// repository's test files.
func coveringFuncs(t *testing.T, root string) []covering {
	t.Helper()
	var out []covering
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Body == nil {
				continue
			}
			body := string(src[fset.Position(fn.Body.Pos()).Offset:fset.Position(fn.Body.End()).Offset])
			name := fn.Name.Name
			example := strings.HasPrefix(name, "Example")
			if example || strings.HasPrefix(name, "Test") {
				checked := !example || outputComment.MatchString(body)
				out = append(out, covering{name: rel + ":" + name, lines: codeLines(body, false), example: example, checked: checked})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lineMatches reports whether the tokens of a covering function's line
// have match those of a snippet's line want, where a string literal of
// the snippet also matches an identifier (a test names a broker URL or a
// schema it made up, the documentation a literal one).
func lineMatches(have, want string) bool {
	h, w := strings.Fields(have), strings.Fields(want)
	if len(h) != len(w) {
		return false
	}
	for i := range w {
		if h[i] != w[i] && (w[i] != `"S"` || !token.IsIdentifier(h[i])) {
			return false
		}
	}
	return true
}

// contains reports whether want is a subsequence of have (see lineMatches).
func contains(have, want []string) bool {
	i := 0
	for _, l := range have {
		if i < len(want) && lineMatches(l, want[i]) {
			i++
		}
	}
	return i == len(want)
}

// TestReadmeSnippets: every Go snippet of the documentation is code that an
// output-checked Example (or a Test, where the snippet needs a database)
// runs: its lines, as Go tokens in order, are lines of one such function,
// except for string literals (which may be identifiers there), imports and
// placeholder lines holding "...".
// So a snippet that no longer compiles, or calls what the API no longer
// has, fails here once its example is updated to the API.
func TestReadmeSnippets(t *testing.T) {
	root := repoRoot(t)
	funcs := coveringFuncs(t, root)
	for _, doc := range docFiles(t, root) {
		for _, sn := range snippets(t, root, doc) {
			if sn.lang != "go" {
				continue
			}
			want := codeLines(sn.text, true)
			if len(want) == 0 {
				continue
			}
			found := ""
			for _, f := range funcs {
				if f.checked && contains(f.lines, want) {
					found = f.name
					break
				}
			}
			if found == "" {
				t.Errorf("%s:%d: no output-checked Example or Test runs this snippet's code (want these lines in order, string literals aside):\n\t%s",
					sn.file, sn.line, strings.Join(want, "\n\t"))
			} else {
				t.Logf("%s:%d: covered by %s", sn.file, sn.line, found)
			}
		}
	}
}

// docURL is a broker URL quoted in the documentation.
var docURL = regexp.MustCompile("\\b(?:mem|nats|tls|redis|rediss|kafka|amqp|amqps)://[^\\s`'\"<>)|\\[\\]]*")

// TestReadmeURLs: every complete broker URL the documentation quotes is
// one Open accepts (scheme, hosts, parameter names and values); only the
// connection, with an already cancelled context, may fail.
func TestReadmeURLs(t *testing.T) {
	root := repoRoot(t)
	for _, doc := range docFiles(t, root) {
		raw := readDoc(t, root, doc)
		for _, u := range docURL.FindAllString(raw, -1) {
			u = strings.TrimRight(u, ".,;") // the prose's punctuation
			if strings.HasSuffix(u, "://") || strings.Contains(u, "host:port") {
				continue // a scheme alone, or a format
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // parse, never connect
			c, err := messaging.Open(ctx, u)
			if c != nil {
				_ = c.Close()
			}
			if errors.Is(err, messaging.ErrInvalidURL) || errors.Is(err, messaging.ErrInvalidOption) || errors.Is(err, messaging.ErrUnknownScheme) {
				t.Errorf("%s: %s: %v", doc, u, err)
			}
		}
	}
}

// mdLink is a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// repoPath is a backquoted path in the documentation that names a file or
// directory of the repository: it has a slash or a file extension.
var repoPath = regexp.MustCompile("`((?:\\.{0,2}/)?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?)`")

// anchors returns the GitHub anchors of the headings of a Markdown file.
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	for line := range strings.SplitSeq(src, "\n") {
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(title)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// TestDocLinks: the documentation's relative links (files and anchors)
// resolve inside the repository, and the files and directories it names
// in backquotes exist: a path with a slash whose first element is in the
// repository's root or the document's directory (outbox/postgres.sql), a
// bare file name (fault_test.go) somewhere in the repository.
func TestDocLinks(t *testing.T) {
	root := repoRoot(t)
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		names[d.Name()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exists := func(doc, p string) bool {
		for _, base := range []string{root, filepath.Join(root, filepath.Dir(doc))} {
			full := filepath.Join(base, p)
			if rel, err := filepath.Rel(root, full); err != nil || strings.HasPrefix(rel, "..") {
				continue // outside the repository: a user's clone lacks it
			}
			if _, err := os.Stat(full); err == nil {
				return true
			}
		}
		return false
	}
	for _, doc := range docFiles(t, root) {
		src := readDoc(t, root, doc)
		for _, m := range mdLink.FindAllStringSubmatch(src, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			heads := src
			if file != "" {
				if !exists(doc, file) {
					t.Errorf("%s: link %s: no such file in the repository", doc, target)
					continue
				}
				if anchor == "" {
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, filepath.Dir(doc), file))
				if err != nil {
					t.Errorf("%s: link %s: %v", doc, target, err)
					continue
				}
				heads = string(b)
			}
			if anchor != "" && !anchors(heads)[anchor] {
				t.Errorf("%s: link %s: no heading has the anchor #%s", doc, target, anchor)
			}
		}
		for _, m := range repoPath.FindAllStringSubmatch(prose(src), -1) {
			p := m[1]
			hasSlash := strings.Contains(strings.TrimRight(p, "/"), "/")
			ext := filepath.Ext(p)
			switch {
			case strings.HasSuffix(p, "/...") || p == "./...":
				continue // a package pattern
			case strings.HasPrefix(p, "../"):
				t.Errorf("%s: `%s`: outside the repository (a clone does not have it)", doc, p)
			case hasSlash && (strings.Contains(p, ".") && ext != ".go" && ext != ".md" && ext != ".sql" && ext != ".yml" && !strings.HasPrefix(p, ".")):
				continue // a Go identifier (middleware/batch.NewPublisher) or a version
			case hasSlash && !exists(doc, strings.SplitN(strings.TrimPrefix(p, "./"), "/", 2)[0]):
				continue // not a path in the repository: a module path, a unit, a format
			case hasSlash:
				if !exists(doc, strings.TrimRight(p, "/")) {
					t.Errorf("%s: `%s`: no such file or directory in the repository", doc, p)
				}
			case ext == ".go" || ext == ".md" || ext == ".sql" || ext == ".yml":
				if !names[p] {
					t.Errorf("%s: `%s`: no file of that name in the repository", doc, p)
				}
			}
		}
	}
}

// repoNames is what the repository's Go files declare: per package name
// (several directories may share one, such as poll), the exported names
// of its non-test files (X, Type.Method, Type.Field, Interface.Method);
// and the names of the functions of its test files.
type repoNames struct {
	pkg   map[string]map[string]bool
	tests map[string]bool
}

func declaredNames(t *testing.T, root string) repoNames {
	t.Helper()
	n := repoNames{pkg: map[string]map[string]bool{}, tests: map[string]bool{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, "_test.go") {
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
					n.tests[fn.Name.Name] = true
				}
			}
			return nil
		}
		names := n.pkg[f.Name.Name]
		if names == nil {
			names = map[string]bool{}
			n.pkg[f.Name.Name] = names
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
					continue
				}
				typ := d.Recv.List[0].Type
				if s, ok := typ.(*ast.StarExpr); ok {
					typ = s.X
				}
				if ix, ok := typ.(*ast.IndexExpr); ok {
					typ = ix.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					names[id.Name+"."+d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						for _, id := range s.Names {
							names[id.Name] = true
						}
					case *ast.TypeSpec:
						names[s.Name.Name] = true
						var fields *ast.FieldList
						switch tt := s.Type.(type) {
						case *ast.StructType:
							fields = tt.Fields
						case *ast.InterfaceType:
							fields = tt.Methods
						}
						if fields == nil {
							continue
						}
						for _, fld := range fields.List {
							for _, id := range fld.Names {
								names[s.Name.Name+"."+id.Name] = true
							}
							if len(fld.Names) == 0 { // embedded
								if id, ok := fld.Type.(*ast.Ident); ok {
									names[s.Name.Name+"."+id.Name] = true
								}
							}
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// foreignNames are qualified names the documentation uses that belong to
// a broker's client library whose package name one of ours shares.
var foreignNames = map[string]bool{"nats.Conn": true, "redis.UniversalClient": true}

var (
	// docQualified is a package-qualified Go name in backquotes:
	// messaging.Group, retry.SubscribeOptions, BatchConsumer.SubscribeBatch.
	docQualified = regexp.MustCompile("`[*&]?(?:[a-z][a-z0-9]*/)*([a-z][a-z0-9]*)\\.([A-Z][A-Za-z0-9]*(?:\\.[A-Z][A-Za-z0-9]*)?)")
	// goDocQualified is a package-qualified name in a Go comment.
	goDocQualified = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.([A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*)?)`)
	// adapterOption is an option constructor: WithPrefetch.
	adapterOption = regexp.MustCompile(`\bWith[A-Z][A-Za-z0-9]*\b`)
	// docTestName is a test, benchmark or example function in backquotes,
	// a trailing * standing for any suffix.
	docTestName = regexp.MustCompile("`((?:Test|Benchmark|Example)[A-Za-z0-9_]*)(\\*?)`")
)

// TestDocNames: the Go names the documentation (the Markdown files, the
// root package's and every adapter's doc.go) quotes exist: each
// package-qualified name (messaging.RetryAfter, inspectprom.WithTopics) of a
// package of this repository is declared in it, and each test, benchmark
// or example it names (TestCrashRecovery, TestFailover*) is a function of
// a test file; an option (WithPrefetch) an adapter's doc.go or README
// names is one of the adapter's.
func TestDocNames(t *testing.T) {
	root := repoRoot(t)
	n := declaredNames(t, root)
	docs := docFiles(t, root)
	goDocs, err := filepath.Glob(filepath.Join(root, "adapters", "*", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(goDocs, filepath.Join(root, "doc.go")) {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, rel)
	}
	for _, doc := range docs {
		src := readDoc(t, root, doc)
		qualified := docQualified
		if strings.HasSuffix(doc, ".go") {
			qualified = goDocQualified
		}
		for _, m := range qualified.FindAllStringSubmatch(src, -1) {
			pkg, name := m[1], m[2]
			names, ours := n.pkg[pkg]
			if !ours || foreignNames[pkg+"."+name] {
				continue
			}
			if !names[name] {
				t.Errorf("%s: %s.%s: package %s declares no %s", doc, pkg, name, pkg, name)
			}
		}
		// An adapter's options, named without their package in its own
		// documentation.
		if parts := strings.Split(filepath.ToSlash(doc), "/"); len(parts) == 3 && parts[0] == "adapters" {
			for _, o := range adapterOption.FindAllString(src, -1) {
				if !n.pkg[parts[1]][o] {
					t.Errorf("%s: %s: package %s declares no %s", doc, o, parts[1], o)
				}
			}
		}
		for _, m := range docTestName.FindAllStringSubmatch(src, -1) {
			name, prefix := m[1], m[2] == "*"
			found := n.tests[name]
			for fn := range n.tests {
				if prefix && strings.HasPrefix(fn, name) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: %s%s: no test file has such a function", doc, name, m[2])
			}
		}
	}
}

// docImport is an import path of this repository in the documentation:
// quoted (an import) or after go get or go install.
var docImport = regexp.MustCompile(`(?:"|go get |go install )(github\.com/msgkit/messaging(?:/[A-Za-z0-9_./-]*[A-Za-z0-9_])?)(?:@[A-Za-z0-9.]+)?`)

// TestReadmeImports: every import path of this repository that the
// documentation quotes (imports, go get, go install) is a directory of the
// repository holding Go files.
func TestReadmeImports(t *testing.T) {
	root := repoRoot(t)
	for _, doc := range docFiles(t, root) {
		raw := readDoc(t, root, doc)
		for _, m := range docImport.FindAllStringSubmatch(raw, -1) {
			dir := filepath.Join(root, strings.TrimPrefix(strings.TrimPrefix(m[1], "github.com/msgkit/messaging"), "/"))
			if strings.HasSuffix(m[1], "/...") {
				continue
			}
			goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			if len(goFiles) == 0 {
				t.Errorf("%s: %s: no Go package in the repository at that path", doc, m[1])
			}
		}
	}
}

// prose returns the Markdown src without its fenced code blocks (code or
// output).
func prose(src string) string {
	var b strings.Builder
	inBlock := false
	for line := range strings.SplitSeq(src, "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// adapterDocs returns each adapter's doc.go source, by the adapter's
// directory name.
func adapterDocs(t *testing.T, root string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "adapters", "*", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out[filepath.Base(filepath.Dir(f))] = readDoc(t, root, rel)
	}
	return out
}

// readmeAdapters maps the adapter names of the README's settings table to
// adapter directories.
var readmeAdapters = map[string][]string{
	"all": {"nats", "redis", "kafka", "rabbitmq"}, "NATS": {"nats"}, "Redis": {"redis"},
	"Kafka": {"kafka"}, "RabbitMQ": {"rabbitmq"},
}

var (
	backquoted = regexp.MustCompile("`([^`\n]+)`")
	// docParamRef is a URL parameter in a backquoted fragment:
	// ?ids=caller, &addr=, auto_create=false.
	docParamRef = regexp.MustCompile(`^[?&]?([a-z][a-z0-9_]*)=`)
)

// TestReadmeParams: the URL parameters the documentation names are
// documented ones: in the README's settings table each parameter is one of
// its adapter's (doc.go, "Parameters") with the default doc.go gives it,
// a fragment such as ?ids=caller is a parameter of some adapter, and one
// in an adapter's README (auto_create=false) is that adapter's.
func TestReadmeParams(t *testing.T) {
	root := repoRoot(t)
	docs := adapterDocs(t, root)
	documented := map[string]map[string]bool{}
	for a, src := range docs {
		documented[a] = map[string]bool{}
		for _, n := range urlparam.DocumentedParams(src) {
			documented[a][n] = true
		}
	}
	// The settings table.
	readme := readDoc(t, root, "README.md")
	_, table, ok := strings.Cut(readme, "| adapter | setting (URL parameter) | default |")
	if !ok {
		t.Fatal("README: no settings table (| adapter | setting (URL parameter) | default |)")
	}
	rows := 0
	for line := range strings.SplitSeq(table, "\n") {
		if line == "" && rows > 0 {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		adapters, ok := readmeAdapters[cells[0]]
		if !ok || len(cells) < 3 {
			continue
		}
		rows++
		defaults := strings.Split(cells[2], " / ")
		for i, m := range backquoted.FindAllStringSubmatch(cells[1], -1) {
			name := m[1]
			for _, a := range adapters {
				if !documented[a][name] {
					t.Errorf("README settings table: %s: %s documents no URL parameter %s", cells[0], a, name)
					continue
				}
				want := regexp.MustCompile(`(?:^|[\s,])` + name + `=([0-9][^\s,]*)`).FindStringSubmatch(docs[a])
				if want == nil || i >= len(defaults) {
					continue // doc.go states the default otherwise
				}
				if got := strings.TrimRight(strings.Fields(defaults[i])[0], ","); got != want[1] {
					t.Errorf("README settings table: %s %s: default %s, %s's doc.go says %s", cells[0], name, got, a, want[1])
				}
			}
		}
	}
	if rows == 0 {
		t.Error("README: the settings table has no rows")
	}
	// Fragments, in every document.
	for _, doc := range docFiles(t, root) {
		adapter := ""
		if parts := strings.Split(filepath.ToSlash(doc), "/"); len(parts) == 3 && parts[0] == "adapters" {
			adapter = parts[1]
		}
		for _, m := range backquoted.FindAllStringSubmatch(prose(readDoc(t, root, doc)), -1) {
			if strings.Contains(m[1], "://") || strings.Contains(m[1], " ") {
				continue // a URL (TestReadmeURLs) or code
			}
			p := docParamRef.FindStringSubmatch(m[1])
			if p == nil || (adapter == "" && !strings.ContainsAny(m[1][:1], "?&")) {
				continue
			}
			found := false
			for a := range documented {
				if documented[a][p[1]] && (adapter == "" || a == adapter) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: `%s`: no adapter documents a URL parameter %s", doc, m[1], p[1])
			}
		}
	}
}

// TestExamplesOutputChecked: every Example function of the repository
// checks its output (an example without an output comment is compiled,
// never run).
func TestExamplesOutputChecked(t *testing.T) {
	for _, f := range coveringFuncs(t, repoRoot(t)) {
		if f.example && !f.checked {
			t.Errorf("%s: no // Output: comment", f.name)
		}
	}
}
