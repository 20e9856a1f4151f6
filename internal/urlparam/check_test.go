package urlparam

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

func TestCheckDocFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.go")
	if err := os.WriteFile(path, []byte(testDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckDocFile(path, testDecls); err != nil {
		t.Fatal(err)
	}
	if err := CheckDocFile(filepath.Join(t.TempDir(), "absent.go"), testDecls); err == nil {
		t.Fatal("a missing file passed")
	}
}

func TestCheckParse(t *testing.T) {
	declared := func(q string) error {
		p := NewDeclared(&url.URL{RawQuery: q}, testDecls)
		for _, d := range testDecls {
			p.String(d.Name, "")
		}
		return p.Err()
	}
	if err := CheckParse(testDecls, declared); err != nil {
		t.Fatal(err)
	}
	// A parser that knows fewer parameters than declared, and one that
	// accepts everything.
	fewer := func(q string) error { return New(&url.URL{RawQuery: q}).Err() }
	if err := CheckParse(testDecls, fewer); err == nil || !strings.Contains(err.Error(), "declared parameter mode is rejected as unknown") {
		t.Fatalf("CheckParse of a parser reading nothing: %v", err)
	}
	lax := func(string) error { return nil }
	if err := CheckParse(testDecls, lax); err == nil || !strings.Contains(err.Error(), "undeclared_param") {
		t.Fatalf("CheckParse of a parser accepting anything: %v", err)
	}
	unnamed := func(string) error { return fmt.Errorf("%w: something", messaging.ErrInvalidOption) }
	if err := CheckParse(testDecls, unnamed); err == nil {
		t.Fatal("CheckParse accepted an error that does not name the parameter")
	}
}
