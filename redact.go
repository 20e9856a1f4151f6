package messaging

import (
	"net/url"
	"strings"
)

// redacted replaces every credential RedactURL and RedactError hide.
const redacted = "xxxxx"

// minVerbatimSecret is the length from which RedactError also hides a
// credential found outside a URL. Shorter ones are hidden only inside URLs:
// replacing every "a" of a message would garble it and show the password
// by the gaps it leaves.
const minVerbatimSecret = 8

// SecretParam reports whether a URL query parameter carries a credential,
// so that RedactURL, RedactError and option errors never show its value:
// names containing "pass", "secret" or "token" (any case), and "creds",
// "nkey", and names ending in "key" ("tls_key", "sasl_key").
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "pass") || strings.Contains(n, "secret") || strings.Contains(n, "token") ||
		n == "creds" || n == "nkey" || strings.HasSuffix(n, "key")
}

// RedactURL returns u as text with its credentials replaced by "xxxxx": the
// userinfo password (or the whole userinfo when it has no password, since
// NATS reads a lone user name as a token) and the value of every query
// parameter for which SecretParam is true. Nothing else is changed.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return redactURLText(u.String())
}

// RedactError returns err with every URL in its text redacted as RedactURL
// does, and the credentials of u (its password, token and secret parameter
// values) hidden wherever else they appear, when they are at least 8 bytes
// long (a shorter one is hidden only inside URLs, so that redaction does
// not garble the message). errors.Is and errors.As see the original chain.
// Adapters' Open functions return their errors through it.
func RedactError(err error, u *url.URL) error {
	if err == nil {
		return nil
	}
	if _, done := err.(*redactedError); done {
		return err
	}
	return &redactedError{err: err, secrets: urlSecrets(u)}
}

type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string { return redactText(e.err.Error(), e.secrets) }
func (e *redactedError) Unwrap() error { return e.err }

// urlSecrets lists u's credentials long enough to be hidden verbatim, in
// plain and escaped form.
func urlSecrets(u *url.URL) []string {
	if u == nil {
		return nil
	}
	var out []string
	add := func(s string) {
		// url.User(s).String(): the escaping of a URL's userinfo.
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.User(s).String()} {
			if len(v) >= minVerbatimSecret {
				out = append(out, v)
			}
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		} else {
			add(u.User.Username())
		}
	}
	// Parsed leniently ('&' or ';' between parameters, a value kept raw
	// where it does not unescape): a query url.ParseQuery rejects still has
	// its secrets hidden.
	for kv := range strings.FieldsFuncSeq(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(kv, "=")
		if name, err := url.QueryUnescape(k); err == nil {
			k = name
		}
		if !SecretParam(k) {
			continue
		}
		add(v)
		if plain, err := url.QueryUnescape(v); err == nil {
			add(plain)
		}
	}
	return out
}

// redactText redacts the URLs in s, then the given secrets.
func redactText(s string, secrets []string) string {
	s = redactURLsIn(s)
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// urlEnd reports whether c ends a URL written inside a message.
func urlEnd(c byte) bool {
	return c <= ' ' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' || c == 0x7f
}

func schemeChar(c byte, first bool) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
		return true
	}
	return !first && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')
}

// redactURLsIn redacts every "scheme://..." in s.
func redactURLsIn(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		start := i
		for start > 0 && schemeChar(rest[start-1], false) {
			start--
		}
		for start < i && !schemeChar(rest[start], true) {
			start++
		}
		end := i + 3
		for end < len(rest) && !urlEnd(rest[end]) {
			end++
		}
		if end > i+3 && strings.IndexByte(":,.)", rest[end-1]) >= 0 && (end == len(rest) || rest[end] == ' ') {
			// The message's punctuation ("open nats://h?token=t: refused"),
			// else taken for the end of the last parameter's value, and
			// hidden with a secret's. A secret ending in one of these
			// shows it only where a message puts punctuation anyway.
			end--
		}
		b.WriteString(rest[:start])
		if start == i { // no scheme: not a URL
			b.WriteString(rest[i:end])
		} else {
			b.WriteString(redactURLText(rest[start:end]))
		}
		rest = rest[end:]
	}
}

// redactURLText redacts one URL given as text, also one url.Parse rejects.
func redactURLText(s string) string {
	head, tail := "", s
	if sep := strings.Index(s, "://"); sep >= 0 && !strings.ContainsAny(s[:sep], "?#") {
		rest := s[sep+3:]
		authEnd := strings.IndexAny(rest, "/?#")
		if authEnd < 0 {
			authEnd = len(rest)
		}
		auth := rest[:authEnd]
		tail = rest[authEnd:]
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			if user, _, ok := strings.Cut(auth[:at], ":"); ok {
				auth = user + ":" + redacted + auth[at:]
			} else {
				auth = redacted + auth[at:]
			}
		}
		head = s[:sep+3] + auth
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if !hasQuery {
		return head + tail
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	var b strings.Builder
	for query != "" {
		// Parameters are separated by '&', or by ';', which url.ParseQuery
		// rejects: in the text of that error both must be redacted.
		kv, sep := query, ""
		if i := strings.IndexAny(query, "&;"); i >= 0 {
			kv, sep, query = query[:i], query[i:i+1], query[i+1:]
		} else {
			query = ""
		}
		k, _, hasValue := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && SecretParam(name) {
			kv = k + "=" + redacted
		}
		b.WriteString(kv + sep)
	}
	out := head + path + "?" + b.String()
	if hasFrag {
		out += "#" + frag
	}
	return out
}
