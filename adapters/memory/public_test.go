package memory_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyPublicPackages: the memory adapter is the reference a
// third party copies to write an adapter (see package driver), so its code
// may use only what such an adapter can import: no internal package of the
// module.
func TestImportsOnlyPublicPackages(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains("/"+path+"/", "/internal/") {
				t.Errorf("%s imports %s, which an adapter outside the module cannot", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source file found")
	}
}
