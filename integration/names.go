package integration

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

// UniqueName returns a topic or group name that no other test, run or
// process uses: prefix, a short form of the test's name, and random hex.
func UniqueName(t testing.TB, prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, name)
	if len(clean) > 24 {
		clean = clean[:24]
	}
	return strings.Trim(prefix+"-"+clean, "-") + "-" + hex.EncodeToString(b[:])
}
