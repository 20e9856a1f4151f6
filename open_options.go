package messaging

import (
	"fmt"
	"log/slog"
)

// OpenOption configures Open and OpenConfig for whichever adapter the URL
// picks. Adapter-specific settings go in the URL's parameters (or the
// adapter's own Open and its options).
type OpenOption func(*OpenSettings) error

// OpenSettings is what every adapter understands; adapters read it in their
// OpenFunc. The zero value leaves everything to the adapter's defaults.
type OpenSettings struct {
	// Logger is where the client reports what it cannot return to a caller
	// (messages given up, failed acknowledgements, reconnects); nil: the
	// adapter's default.
	Logger *slog.Logger
}

// WithLogger makes the opened client log to l (the adapter's WithLogger
// option). A nil l is an error wrapping ErrInvalidOption.
func WithLogger(l *slog.Logger) OpenOption {
	return func(s *OpenSettings) error {
		if l == nil {
			return fmt.Errorf("messaging: WithLogger(%v): a logger is required: %w", l, ErrInvalidOption)
		}
		s.Logger = l
		return nil
	}
}

// openSettings applies opts in order and returns the first error.
func openSettings(opts []OpenOption) (OpenSettings, error) {
	var s OpenSettings
	for _, o := range opts {
		if o == nil {
			continue // see the package doc: a nil option is ignored
		}
		if err := o(&s); err != nil {
			return s, err
		}
	}
	return s, nil
}
