package poll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/msgkit/messaging"
)

// JSONPage is the answer format HTTPSource reads by default:
//
//	{"items": [...], "next_cursor": "abc", "has_more": false}
type JSONPage[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
	HasMore    bool   `json:"has_more"`
}

// ErrHTTPStatus is wrapped by HTTPSource errors for unexpected HTTP statuses.
var ErrHTTPStatus = errors.New("poll: unexpected HTTP status")

// HTTPSource polls an HTTP endpoint that pages by cursor and supports
// conditional requests: GET URL?<CursorParam>=<cursor> with If-None-Match
// set to the previous ETag for that cursor. 304 means nothing changed; 200
// carries a JSONPage of T. Fields must be set before the first Fetch.
type HTTPSource[T any] struct {
	// URL is the endpoint, possibly with its own query parameters.
	URL string
	// ItemID returns an item's ID (required); ItemKey its key (optional).
	ItemID  func(T) string
	ItemKey func(T) string
	// CursorParam is the query parameter carrying the cursor (default
	// "cursor"); it is left out when the cursor is empty.
	CursorParam string
	// Client is the HTTP client (default http.DefaultClient).
	Client *http.Client
	// MaxBody bounds the response body read (default 16 MiB).
	MaxBody int64
}

// Fetch implements Source.
func (s *HTTPSource[T]) Fetch(ctx context.Context, cursor, etag string) (Page[T], error) {
	if s.ItemID == nil {
		return Page[T]{}, fmt.Errorf("poll: HTTPSource.ItemID is nil")
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		// url.Parse's error quotes the URL, credentials included;
		// messaging.ParseURL fails too and says why without quoting it.
		_, err = messaging.ParseURL(s.URL)
		return Page[T]{}, fmt.Errorf("poll: HTTPSource.URL: %w", err)
	}
	if cursor != "" {
		param := s.CursorParam
		if param == "" {
			param = "cursor"
		}
		q := u.Query()
		q.Set(param, cursor)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page[T]{}, messaging.RedactError(fmt.Errorf("poll: %w", err), u)
	}
	req.Header.Set("Accept", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil { // a *url.Error quoting the URL
		return Page[T]{}, messaging.RedactError(fmt.Errorf("poll: %w", err), u)
	}
	defer resp.Body.Close()
	limit := s.MaxBody
	if limit <= 0 {
		limit = 16 << 20
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, limit))
		return Page[T]{Cursor: cursor, ETag: etag, NotModified: true}, nil
	case http.StatusOK:
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Page[T]{}, messaging.RedactError(fmt.Errorf("%w: GET %s: %s: %s", ErrHTTPStatus, messaging.RedactURL(u), resp.Status, body), u)
	}
	var jp JSONPage[T]
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(&jp); err != nil {
		return Page[T]{}, fmt.Errorf("poll: GET %s: decode page: %w", messaging.RedactURL(u), err)
	}
	page := Page[T]{Cursor: jp.NextCursor, ETag: resp.Header.Get("ETag"), More: jp.HasMore}
	if page.Cursor == "" {
		page.Cursor = cursor
	}
	for _, v := range jp.Items {
		it := Item[T]{ID: s.ItemID(v), Value: v}
		if s.ItemKey != nil {
			it.Key = s.ItemKey(v)
		}
		page.Items = append(page.Items, it)
	}
	return page, nil
}
