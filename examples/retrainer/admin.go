package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/onnxpb"
)

// Bounds on what the node may send back: an export page of 10,000 rows
// of a few hundred features fits many times over; a model artifact may be
// as large as the node accepts (256 MiB by default).
const (
	maxPageBytes     = 256 << 20
	maxArtifactBytes = 256 << 20
	maxAnswerBytes   = 1 << 20
)

// headerNextCursor is where the node's export puts the cursor to resume
// from.
const headerNextCursor = "Modelgate-Next-Cursor"

// adminClient talks to the node's admin API, as any external job would:
// bearer token, JSON and NDJSON over HTTP, retries with backoff on what a
// retry can fix.
type adminClient struct {
	base     *url.URL
	token    string
	http     *http.Client
	attempts int
	backoff  time.Duration
	log      *slog.Logger
}

func newAdminClient(c *Config, log *slog.Logger) (*adminClient, error) {
	u, err := url.Parse(c.Admin)
	if err != nil {
		return nil, err
	}
	return &adminClient{base: u, token: c.Token, http: &http.Client{Timeout: 5 * time.Minute},
		attempts: c.Attempts, backoff: c.Backoff, log: log}, nil
}

// statusError is an admin API answer that was not a success.
type statusError struct {
	What   string // "GET /api/v1/…"
	Status int
	Body   string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s answered %d %s", e.What, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check --token / " + envToken + ": it needs the read and register scopes)"
	}
	return msg
}

// permanentError is an answer that the same request would get again: an
// export page over the size limit, an answer that is not modelgate's.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryable reports whether another attempt may succeed: the node was
// unreachable, timed out, cut an answer short, had no leader (503) or was
// overloaded.
func retryable(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.Status == http.StatusRequestTimeout || se.Status == http.StatusTooManyRequests || se.Status >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// do runs one call with retries: build makes a fresh request each attempt
// (a body cannot be sent twice), and read consumes a 2xx answer; an error
// from read (a body cut short) is retried like a network error. It returns
// how many attempts it made.
func (a *adminClient) do(ctx context.Context, what string, build func() (*http.Request, error), read func(*http.Response) error) (int, error) {
	var err error
	for attempt := 1; ; attempt++ {
		err = a.once(ctx, what, build, read)
		if err == nil || attempt >= a.attempts || !retryable(err) || ctx.Err() != nil {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return attempt, err
		}
		wait := a.backoff << (attempt - 1)
		a.log.Warn("admin API call failed, retrying", "call", what, "attempt", attempt, "of", a.attempts, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return attempt, fmt.Errorf("%s: %w (while waiting to retry after: %v)", what, ctx.Err(), err)
		}
	}
}

func (a *adminClient) once(ctx context.Context, what string, build func() (*http.Request, error), read func(*http.Response) error) error {
	req, err := build()
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &statusError{What: what, Status: resp.StatusCode, Body: strings.TrimSpace(apiError(b))}
	}
	if err := read(resp); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// apiError returns the message of a {"error":"…"} body, else the body.
func apiError(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(b)
}

// readAll reads a body, refusing one over limit rather than cutting it:
// half an export page would silently train on less than it says.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, &permanentError{fmt.Errorf("the answer is over %d bytes", limit)}
	}
	return b, nil
}

// exportURL checks that an event's export link is on the admin API this
// job was given (it carries the token, which must not go anywhere else) and
// returns it parsed, with its since cursor.
func (a *adminClient) exportURL(link string) (*url.URL, string, error) {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("the event's export link %q is not a URL", link)
	}
	if !strings.EqualFold(u.Scheme, a.base.Scheme) || !strings.EqualFold(u.Host, a.base.Host) {
		return nil, "", fmt.Errorf("the event's export link %s is not on the admin API %s://%s this job sends its token to; "+
			"set --admin to the node's --admin-url (or the other way round)", link, a.base.Scheme, a.base.Host)
	}
	if !strings.HasSuffix(u.Path, "/export") {
		return nil, "", fmt.Errorf("the event's export link %s is not an export (…/export)", link)
	}
	return u, u.Query().Get("since"), nil
}

// exportPage fetches the rows after since and returns the body and the
// cursor to resume from.
func (a *adminClient) exportPage(ctx context.Context, link *url.URL, since string, limit int) (body []byte, next string, attempts int, err error) {
	u := *link
	q := u.Query()
	q.Set("labelled", "true")
	q.Set("since", since)
	q.Set("limit", strconv.Itoa(limit))
	u.RawQuery = q.Encode()
	attempts, err = a.do(ctx, "GET "+u.Path, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, u.String(), nil)
	}, func(resp *http.Response) error {
		b, err := readAll(resp.Body, maxPageBytes)
		if err != nil {
			return err
		}
		next = resp.Header.Get(headerNextCursor)
		if next == "" && len(b) > 0 {
			return &permanentError{fmt.Errorf("an export page without the %s header: is %s a modelgate admin API?", headerNextCursor, a.base)}
		}
		body = b
		return nil
	})
	return body, next, attempts, err
}

// parentMetadata reads a version's ONNX metadata properties from its
// artifact (the feature names live there).
func (a *adminClient) parentMetadata(ctx context.Context, model string, version int) (map[string]string, error) {
	path := "/api/v1/models/" + url.PathEscape(model) + "/versions/" + strconv.Itoa(version) + "/artifact"
	var props map[string]string
	_, err := a.do(ctx, "GET "+path, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, a.base.String()+path, nil)
	}, func(resp *http.Response) error {
		b, err := readAll(resp.Body, maxArtifactBytes)
		if err != nil {
			return err
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(b, &m); err != nil {
			return &permanentError{fmt.Errorf("the artifact is not an ONNX model: %w", err)}
		}
		props = map[string]string{}
		for _, p := range m.GetMetadataProps() {
			props[p.GetKey()] = p.GetValue()
		}
		return nil
	})
	return props, err
}

// registration is the `metadata` part of POST /api/v1/models/{m}/versions.
type registration struct {
	Lineage        lineage         `json:"lineage"`
	Profile        json.RawMessage `json:"profile"`
	Golden         json.RawMessage `json:"golden,omitempty"`
	IdempotencyKey string          `json:"idempotency_key"`
	Reason         string          `json:"reason"`
}

// lineage is the registry's lineage as it is on the wire.
type lineage struct {
	DatasetURI      string             `json:"dataset_uri"`
	DatasetVersion  string             `json:"dataset_version"`
	DatasetDigest   string             `json:"dataset_digest"`
	CodeRepo        string             `json:"code_repo,omitempty"`
	CodeCommit      string             `json:"code_commit"`
	TrainingMetrics map[string]float64 `json:"training_metrics"`
	ParentVersion   int                `json:"parent_version"`
	Notes           string             `json:"notes,omitempty"`
}

// registered is the node's answer to a registration.
type registered struct {
	Version int    `json:"version"`
	Digest  string `json:"digest"`
	Stage   string `json:"stage"`
}

// register uploads a candidate. The idempotency key makes a retry (after a
// timeout, a lost leader, or this job restarting on a redelivered event)
// return the version already registered instead of adding a second one.
func (a *adminClient) register(ctx context.Context, model string, onnx []byte, meta registration) (registered, error) {
	mj, err := json.Marshal(meta)
	if err != nil {
		return registered{}, err
	}
	path := "/api/v1/models/" + url.PathEscape(model) + "/versions"
	var out registered
	_, err = a.do(ctx, "POST "+path, func() (*http.Request, error) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if err := mw.WriteField("metadata", string(mj)); err != nil {
			return nil, err
		}
		part, err := mw.CreateFormFile("model", model+".onnx")
		if err != nil {
			return nil, err
		}
		part.Write(onnx)
		if err := mw.Close(); err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPost, a.base.String()+path, &buf)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Idempotency-Key", meta.IdempotencyKey)
		return req, nil
	}, func(resp *http.Response) error {
		b, err := readAll(resp.Body, maxAnswerBytes)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &out); err != nil || out.Version < 1 {
			return fmt.Errorf("cannot read the registration's answer %.200q: %v", b, err)
		}
		return nil
	})
	return out, err
}
