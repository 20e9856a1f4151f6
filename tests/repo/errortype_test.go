package repo_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrorTypeNamesEverySentinel: the OpenTelemetry middleware's
// error.type attribute names every sentinel error of the root package
// (middleware/otel's errorTypes lists each as {messaging.ErrX,
// "messaging.ErrX"}), so a sentinel added to the root package without a
// name there fails here instead of being reported as "_OTHER".
func TestErrorTypeNamesEverySentinel(t *testing.T) {
	root := filepath.Join("..", "..")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var sentinels []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !name.IsExported() || !strings.HasPrefix(name.Name, "Err") || i >= len(vs.Values) {
						continue
					}
					if call, ok := vs.Values[i].(*ast.CallExpr); ok && isSelector(call.Fun, "errors", "New") {
						sentinels = append(sentinels, name.Name)
					}
				}
			}
		}
	}
	if len(sentinels) < 10 {
		t.Fatalf("found %d sentinel errors in the root package (%v): the parse is wrong", len(sentinels), sentinels)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "middleware", "otel", "errortype.go"), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{} // sentinel -> the name given to it
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "errorTypes" || len(vs.Values) != 1 {
			return true
		}
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			pair := elt.(*ast.CompositeLit).Elts
			sel, ok := pair[0].(*ast.SelectorExpr)
			if !ok || !isSelector(sel, "messaging", sel.Sel.Name) {
				continue
			}
			if lit, ok := pair[1].(*ast.BasicLit); ok {
				named[sel.Sel.Name], _ = strconv.Unquote(lit.Value)
			}
		}
		return false
	})
	slices.Sort(sentinels)
	for _, s := range sentinels {
		switch got, ok := named[s]; {
		case !ok:
			t.Errorf("messaging.%s is not in middleware/otel's errorTypes: ErrorType reports it as \"_OTHER\"", s)
		case got != "messaging."+s:
			t.Errorf("middleware/otel's errorTypes names messaging.%s %q, want %q", s, got, "messaging."+s)
		}
	}
}

// isSelector reports whether e is pkg.name.
func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}
