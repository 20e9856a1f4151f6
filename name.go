package messaging

import (
	"fmt"
	"unicode/utf8"
)

// MaxNameLength is the longest topic or group name the library accepts, in
// bytes. It fits every supported broker's limit once adapters add their
// prefixes.
const MaxNameLength = 200

// ValidateName reports an error wrapping ErrInvalidTopic unless name is a
// valid topic or group name: 1 to MaxNameLength characters from [A-Za-z0-9._-],
// not starting or ending with '.', and no "..". Names in this alphabet map to
// NATS subjects, Kafka topics, Redis keys and RabbitMQ exchanges unchanged.
// The error quotes the name as given and names the first character outside
// the alphabet (a whole character, not one byte of its UTF-8 encoding) and
// its position counted in characters.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrInvalidTopic, truncate(name, 20), len(name), MaxNameLength)
	}
	pos := 0
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			if _, size := utf8.DecodeRuneInString(name[i:]); r == utf8.RuneError && size == 1 {
				return fmt.Errorf("%w: %q: invalid UTF-8 at byte %d (allowed: A-Z a-z 0-9 . _ -)", ErrInvalidTopic, name, i)
			}
			return fmt.Errorf("%w: %q: character %q at position %d (allowed: A-Z a-z 0-9 . _ -)", ErrInvalidTopic, name, r, pos)
		}
		if r == '.' && (i == 0 || i == len(name)-1 || name[i-1] == '.') {
			return fmt.Errorf("%w: %q: a '.' may not start or end a name or follow another '.'", ErrInvalidTopic, name)
		}
		pos++
	}
	return nil
}

// truncate returns the first n characters of s followed by "...", or s if
// it is no longer.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "..."
		}
		n--
	}
	return s
}
