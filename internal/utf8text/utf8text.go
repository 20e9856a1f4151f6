// Package utf8text makes text that came from outside (a broker's names, a
// message ID another producer set, an error quoting either) fit for
// exporters that require UTF-8: Prometheus label values, and OTLP's
// protobuf strings, where one invalid string fails the whole export
// (github.com/open-telemetry/opentelemetry-go/issues/3021).
package utf8text

import (
	"strings"
	"unicode/utf8"
)

// Valid returns s with each run of bytes that is not valid UTF-8 replaced
// by U+FFFD; s itself, without allocating, when it is valid.
func Valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
