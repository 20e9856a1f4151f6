package repo_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrorPrefix enforces the error-prefix rule of CONTRIBUTING.md
// ("Conventions") over every package directory of the repository, all
// modules: in the non-test files of a non-main package, the string literal
// of an errors.New or the format of an fmt.Errorf starts with the package's
// name and ": " ("messaging: " in the root package) or, in a package below
// an internal directory, with the name of the package owning that directory
// (the one in internal's parent directory: "messaging: " for internal/...,
// "kafka: " for adapters/kafka/internal/...; the directory's name when it
// holds no package or a main one), unless the format starts with a verb
// that wraps an error carrying its own prefix: %w with any first argument,
// or %v / %s whose first argument is named as an error (err, ctxErr,
// ErrClosed, messaging.ErrInvalidOption, e.Err, ...), or with "%s: " whose
// first argument is named pkg: a helper that builds the errors of several
// packages takes the calling package's name.
func TestErrorPrefix(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var violations []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		v, err := errorPrefixViolations(root, path)
		violations = append(violations, v...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("%d error messages break the error-prefix rule (CONTRIBUTING.md, Conventions):\n%s", len(violations), strings.Join(violations, "\n"))
	}
}

// errorPrefixViolations returns, as "file:line: message", the error
// messages of the package in dir (its non-test .go files) that break the
// rule; none for a main package or a directory without Go files.
func errorPrefixViolations(root, dir string) ([]string, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 || files[0].Name.Name == "main" {
		return nil, nil
	}
	prefixes, err := allowedPrefixes(dir, files[0].Name.Name)
	if err != nil {
		return nil, err
	}
	var violations []string
	for _, f := range files {
		fmtName, errorsName := importName(f, "fmt"), importName(f, "errors")
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			isNew := pkg.Name == errorsName && sel.Sel.Name == "New"
			isErrorf := pkg.Name == fmtName && sel.Sel.Name == "Errorf"
			if !isNew && !isErrorf {
				return true
			}
			msg, ok := leadingLiteral(call.Args[0])
			if !ok || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(msg, p) }) {
				return true
			}
			if isErrorf && wrapsPrefixedError(msg, call.Args[1:]) {
				return true
			}
			pos := fset.Position(call.Pos())
			rel, _ := filepath.Rel(root, pos.Filename)
			violations = append(violations, fmt.Sprintf("%s:%d: %q (want prefix %s)", filepath.ToSlash(rel), pos.Line, msg, quoteAll(prefixes)))
			return true
		})
	}
	return violations, nil
}

// allowedPrefixes returns the prefixes an error message of package pkg in
// dir may start with: "pkg: ", and the owner's "name: " when dir is below an
// internal directory.
func allowedPrefixes(dir, pkg string) ([]string, error) {
	prefixes := []string{pkg + ": "}
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		if filepath.Base(d) != "internal" {
			continue
		}
		owner := filepath.Dir(d)
		name, err := packageName(owner)
		if err != nil {
			return nil, err
		}
		if name == "" || name == "main" {
			name = filepath.Base(owner)
		}
		return append(prefixes, name+": "), nil
	}
	return prefixes, nil
}

// packageName returns the package name of the non-test Go files in dir, ""
// when it has none.
func packageName(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.PackageClauseOnly)
			if err != nil {
				return "", err
			}
			return f.Name.Name, nil
		}
	}
	return "", nil
}

// quoteAll is the quoted prefixes joined by " or ".
func quoteAll(prefixes []string) string {
	q := make([]string, len(prefixes))
	for i, p := range prefixes {
		q[i] = strconv.Quote(p)
	}
	return strings.Join(q, " or ")
}

// importName is the name f uses for the standard package path, "" when f
// does not import it.
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path
		}
	}
	return ""
}

// leadingLiteral returns the string literal that starts e (e itself, or the
// leftmost operand of a concatenation); false when e starts otherwise (a
// variable or a constant: not checked).
func leadingLiteral(e ast.Expr) (string, bool) {
	for {
		switch x := e.(type) {
		case *ast.BasicLit:
			if x.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		case *ast.BinaryExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		default:
			return "", false
		}
	}
}

// errorName matches the name of a value that is an error: err, ctxErr,
// ErrClosed, closeErr, ...
var errorName = regexp.MustCompile(`^(?:err|Err)|(?:err|Err)$`)

// wrapsPrefixedError reports whether format starts with a verb that prints
// an error, which carries its own prefix: %w (vet checks its argument is an
// error), or %v / %s of an argument named as an error.
func wrapsPrefixedError(format string, args []ast.Expr) bool {
	if strings.HasPrefix(format, "%w") {
		return true
	}
	if strings.HasPrefix(format, "%s: ") && len(args) > 0 {
		if id, ok := args[0].(*ast.Ident); ok && id.Name == "pkg" {
			return true // the package name, given by the calling package
		}
	}
	if !strings.HasPrefix(format, "%v") && !strings.HasPrefix(format, "%s") || len(args) == 0 {
		return false
	}
	var name string
	switch a := args[0].(type) {
	case *ast.Ident:
		name = a.Name
	case *ast.SelectorExpr:
		name = a.Sel.Name
	}
	return errorName.MatchString(name)
}

// TestErrorPrefixRule: the checker itself, on a small tree.
func TestErrorPrefixRule(t *testing.T) {
	root := t.TempDir()
	write := func(path, src string) {
		t.Helper()
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("root.go", `package messaging
import ("errors"; "fmt")
var ErrX = errors.New("messaging: x")
func f(err error, name string) error {
	_ = fmt.Errorf("%w: topic %q", ErrX, name)
	_ = fmt.Errorf("%v: more", err)
	_ = errors.New("messaging: " + name)
	_ = fmt.Errorf("%s: bad", name)
	return errors.New("no prefix")
}`)
	write("root_test.go", `package messaging
import "errors"
var errT = errors.New("tests are not checked")`)
	write("internal/x/x.go", `package x
import ("errors"; "fmt")
var a, b = errors.New("x: own name"), errors.New("messaging: owner's name")
var c = fmt.Errorf("other: %w", a)`)
	write("cmd/tool/main.go", `package main
import "errors"
var e = errors.New("main packages are not checked")`)
	var got []string
	for _, dir := range []string{root, filepath.Join(root, "internal", "x"), filepath.Join(root, "cmd", "tool")} {
		v, err := errorPrefixViolations(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v...)
	}
	want := []string{
		`root.go:8: "%s: bad" (want prefix "messaging: ")`,
		`root.go:9: "no prefix" (want prefix "messaging: ")`,
		`internal/x/x.go:4: "other: %w" (want prefix "x: " or "messaging: ")`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
