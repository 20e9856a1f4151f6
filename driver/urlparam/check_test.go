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

func TestCheckDeclared(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "doc.go")
	if err := os.WriteFile(doc, []byte(testDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	declared := func(q string) error {
		p := NewDeclared(&url.URL{RawQuery: q}, testDecls)
		for _, d := range testDecls {
			p.String(d.Name, "")
		}
		return p.Err()
	}
	if err := CheckDeclared(doc, testDecls, declared); err != nil {
		t.Fatal(err)
	}
	if err := CheckDeclared(filepath.Join(t.TempDir(), "absent.go"), testDecls, declared); err == nil {
		t.Fatal("a missing doc file passed")
	}
	// A parser that reads none of the declared parameters, one that accepts
	// everything, and one whose error does not name the parameter.
	fewer := func(q string) error { return New(&url.URL{RawQuery: q}).Err() }
	if err := CheckDeclared(doc, testDecls, fewer); err == nil || !strings.Contains(err.Error(), "declared parameter mode is rejected as unknown") {
		t.Fatalf("CheckDeclared of a parser reading nothing: %v", err)
	}
	lax := func(string) error { return nil }
	if err := CheckDeclared(doc, testDecls, lax); err == nil || !strings.Contains(err.Error(), "undeclared_param") {
		t.Fatalf("CheckDeclared of a parser accepting anything: %v", err)
	}
	unnamed := func(string) error { return fmt.Errorf("%w: something", messaging.ErrInvalidOption) }
	if err := CheckDeclared(doc, testDecls, unnamed); err == nil {
		t.Fatal("CheckDeclared accepted an error that does not name the parameter")
	}
}

// TestCheckDeclaredWantsErrInvalidOption: a parser that names an undeclared
// parameter in an error not wrapping messaging.ErrInvalidOption fails.
func TestCheckDeclaredWantsErrInvalidOption(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "doc.go")
	if err := os.WriteFile(doc, []byte(testDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := func(q string) error {
		if strings.HasPrefix(q, "undeclared_param=") {
			return fmt.Errorf("unknown parameter %s", q)
		}
		return nil
	}
	if err := CheckDeclared(doc, testDecls, plain); err == nil || !strings.Contains(err.Error(), "want an error wrapping ErrInvalidOption") {
		t.Fatalf("CheckDeclared of a parser whose error lacks ErrInvalidOption: %v", err)
	}
}
