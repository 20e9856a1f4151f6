package urlparam

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

var testDecls = []Param{
	{"mode", "jetstream or core"},
	{"prefetch", "messages pulled ahead"},
	{"tls_ca", "CA file"},
	{"tls_cert", "certificate file"},
}

func TestNewDeclaredRejectsUndeclared(t *testing.T) {
	u, _ := url.Parse("x://h/?prefetch=3&typo=1")
	p := NewDeclared(u, testDecls)
	if p.Int("prefetch", 0) != 3 {
		t.Fatal("prefetch not read")
	}
	err := p.Err()
	if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "typo") || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("Err: %v, want ErrInvalidOption naming typo and listing the declared parameters", err)
	}
	// A declared parameter no getter read is not unknown.
	u, _ = url.Parse("x://h/?mode=core")
	if err := NewDeclared(u, testDecls).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestNewDeclaredPanicsOnUndeclaredGetter(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("reading an undeclared parameter did not panic")
		}
	}()
	NewDeclared(&url.URL{}, testDecls).String("nope", "")
}

const testDoc = `// Package x does things.
//
// Parameters (unknown ones are errors):
//
//	mode=jetstream|core       default jetstream
//	tls_ca=FILE, tls_cert=FILE
//	                          a continuation with note=1 in it
//	prefetch=256              messages pulled ahead (see a=b)
//
// Afterwards, other=1 is not a parameter.
package x
`

func TestDocumentedParams(t *testing.T) {
	want := []string{"mode", "prefetch", "tls_ca", "tls_cert"}
	if got := DocumentedParams(testDoc); !slices.Equal(got, want) {
		t.Fatalf("DocumentedParams: %v, want %v", got, want)
	}
	if err := CheckDoc(testDoc, testDecls); err != nil {
		t.Fatal(err)
	}
	err := CheckDoc(testDoc, append(testDecls[1:], Param{"extra", ""}))
	if err == nil || !strings.Contains(err.Error(), "not documented: [extra]") || !strings.Contains(err.Error(), "not declared: [mode]") {
		t.Fatalf("CheckDoc: %v", err)
	}
}

type testConfig struct{}

type testOption func(*testConfig) error

func TestNamed(t *testing.T) {
	base := errors.New("bad")
	var o testOption = func(*testConfig) error { return fmt.Errorf("x: WithN(0): %w", base) }
	err := Named("n", o)(&testConfig{})
	if !errors.Is(err, base) || !strings.Contains(err.Error(), "x: WithN(0): bad (URL parameter n)") {
		t.Fatalf("Named: %v", err)
	}
}

// TestDeclEdges: NewDeclared panics on a name declared twice or empty;
// Names is sorted; DocumentedParams reads names only from an entry's first
// column and lists each once.
func TestDeclEdges(t *testing.T) {
	for what, decls := range map[string][]Param{
		"twice": {{"a", ""}, {"b", ""}, {"a", ""}},
		"empty": {{"a", ""}, {"", ""}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewDeclared with a name declared %s did not panic", what)
				}
			}()
			NewDeclared(&url.URL{}, decls)
		}()
	}
	if got := Names([]Param{{"z", ""}, {"a", ""}, {"m", ""}}); !slices.Equal(got, []string{"a", "m", "z"}) {
		t.Errorf("Names = %v, want sorted [a m z]", got)
	}
	const doc = `// Parameters:
//
//	mode=core                 default, or mode=js, extra=1 for JetStream
//	tls_ca=FILE, mode=core
package x
`
	if got := DocumentedParams(doc); !slices.Equal(got, []string{"mode", "tls_ca"}) {
		t.Errorf("DocumentedParams = %v, want [mode tls_ca]", got)
	}
}
