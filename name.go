package messaging

import "fmt"

// MaxNameLength is the longest topic or group name the library accepts. It
// fits every supported broker's limit once adapters add their prefixes.
const MaxNameLength = 200

// ValidateName reports an error wrapping ErrInvalidTopic unless name is a
// valid topic or group name: 1 to MaxNameLength characters from [A-Za-z0-9._-],
// not starting or ending with '.', and no "..". Names in this alphabet map to
// NATS subjects, Kafka topics, Redis keys and RabbitMQ exchanges unchanged.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrInvalidTopic, name[:20]+"...", len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("%w: %q: character %q at %d (allowed: A-Z a-z 0-9 . _ -)", ErrInvalidTopic, name, c, i)
		}
		if c == '.' && (i == 0 || i == len(name)-1 || name[i-1] == '.') {
			return fmt.Errorf("%w: %q: a '.' may not start or end a name or follow another '.'", ErrInvalidTopic, name)
		}
	}
	return nil
}
