package otel

import (
	"context"
	"errors"

	"github.com/msgkit/messaging"
)

// errorTypes are the values of AttrErrorType, most specific first: the
// library's sentinel errors (and the context's), named as Go names them.
var errorTypes = []struct {
	err  error
	name string
}{
	{messaging.ErrHandlerPanic, "messaging.ErrHandlerPanic"},
	{messaging.ErrUnavailable, "messaging.ErrUnavailable"},
	{messaging.ErrClosed, "messaging.ErrClosed"},
	{messaging.ErrTopicDeleted, "messaging.ErrTopicDeleted"},
	{messaging.ErrTopicNotFound, "messaging.ErrTopicNotFound"},
	{messaging.ErrNoResponders, "messaging.ErrNoResponders"},
	{messaging.ErrMessageTooLarge, "messaging.ErrMessageTooLarge"},
	{messaging.ErrInvalidHeader, "messaging.ErrInvalidHeader"},
	{messaging.ErrInvalidTopic, "messaging.ErrInvalidTopic"},
	{messaging.ErrDuplicate, "messaging.ErrDuplicate"},
	{messaging.ErrUnsupported, "messaging.ErrUnsupported"},
	{messaging.ErrInvalidOption, "messaging.ErrInvalidOption"},
	{messaging.ErrInvalidURL, "messaging.ErrInvalidURL"},
	{messaging.ErrUnknownScheme, "messaging.ErrUnknownScheme"},
	{context.DeadlineExceeded, "context.DeadlineExceeded"},
	{context.Canceled, "context.Canceled"},
}

// ErrorType is the value New and Publisher give the error.type attribute
// of a failed operation's span: the name of the first of the library's
// sentinel errors (or the context's) that err wraps, such as
// "messaging.ErrUnavailable" or "context.DeadlineExceeded"; for a
// handler's own error, "messaging.Permanent" if it is permanent, else
// "_OTHER", as the semantic conventions ask for an error without a type
// of low cardinality. A nil err has no type: "".
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	for _, t := range errorTypes {
		if errors.Is(err, t.err) {
			return t.name
		}
	}
	if messaging.IsPermanent(err) {
		return "messaging.Permanent"
	}
	return "_OTHER"
}
