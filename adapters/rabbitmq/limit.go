package rabbitmq

import (
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// countsOnlyFailures reports whether a RabbitMQ server of version (its
// "version" server property, "3.10.8") counts only failed deliveries
// toward a quorum queue's x-delivery-limit: 4.3 and later, which evaluate
// the limit against the delivery count that only basic.reject raises (not
// basic.nack, a release, nor a consumer's end; rabbitmq-server#15387),
// rather than against the count of acquisitions. Before 4.3 every
// return counts, and not only those the client makes: at a consumer's
// basic.cancel or channel close, the messages the queue had already sent
// toward the channel, which never reach the client, go back counted too (on
// 3.10: 24 to 39 of the 50 in a prefetch window, per stop). A queue whose
// limit is MaxAttempts then drops messages that no handler ever failed, and
// the client, which never saw them, cannot save them. An unknown version
// is taken for an old one.
func countsOnlyFailures(version string) bool {
	major, rest, _ := strings.Cut(version, ".")
	minor, _, _ := strings.Cut(rest, ".")
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i] // "3-rc"
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > 4 || ma == 4 && mi >= 3
}

// serverVersion is conn's server's "version" property ("" when it sent
// none).
func serverVersion(conn *amqp.Connection) string {
	if conn == nil {
		return ""
	}
	v, _ := conn.Properties["version"].(string)
	return v
}
