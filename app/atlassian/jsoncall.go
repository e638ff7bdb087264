package atlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// jsonCall is what SiteClient and ServiceClient share: one JSON request to
// an Atlassian URL that the caller has already resolved and checked, and
// the mapping of the answer. Only how a request is authenticated differs.
type jsonCall struct {
	hc     *http.Client
	siteID string
	now    func() time.Time
	// allowed checks the URL actually sent (after NewRequest parsed it).
	allowed func(u *url.URL) bool
	// auth adds the credentials to the request.
	auth func(ctx context.Context, req *http.Request) error
	// onUnauthorized, when set, runs on a 401 answer.
	onUnauthorized func()
}

type answerHookKey struct{}

// WithAnswerHook returns a context whose calls to Atlassian tell hook the
// HTTP status of every answer, or 0 when a request got none (a timeout, a
// dropped connection). A call held back before it was sent (a Retry-After
// still running, the rate limit) is no answer and is not told. For
// metrics: hook must not block.
func WithAnswerHook(ctx context.Context, hook func(status int)) context.Context {
	return context.WithValue(ctx, answerHookKey{}, hook)
}

func tellAnswer(ctx context.Context, status int) {
	if hook, ok := ctx.Value(answerHookKey{}).(func(int)); ok {
		hook(status)
	}
}

// do sends method target with body as JSON and decodes a 2xx answer into
// out (when not nil). Other answers are *StatusError; failures to get an
// answer are mapped by requestError.
func (j *jsonCall) do(ctx context.Context, method string, target string, pathForErrors string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("atlassian %s %s: encode body: %w", method, pathForErrors, err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(WithSiteID(ctx, j.siteID), method, target, reader)
	if err != nil {
		return fmt.Errorf("atlassian %s %s: %w", method, pathForErrors, err)
	}
	// What is authenticated and checked is the URL that is sent.
	if !j.allowed(req.URL) {
		return fmt.Errorf("atlassian %s %s: %w", method, req.URL.Path, ErrForeignOrigin)
	}
	if err := j.auth(ctx, req); err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := j.hc.Do(req)
	if err != nil {
		var later *RetryLaterError
		if !errors.As(err, &later) {
			tellAnswer(ctx, 0)
		}
		return requestError(ctx, method, req.URL.Path, err)
	}
	tellAnswer(ctx, resp.StatusCode)
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return requestError(ctx, method, req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode == http.StatusUnauthorized && j.onUnauthorized != nil {
			j.onUnauthorized()
		}
		return statusError(method, req.URL.Path, resp, data, j.now())
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("atlassian %s %s: answer larger than %d bytes", method, req.URL.Path, MaxResponseBytes)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("atlassian %s %s: decode answer: %w", method, req.URL.Path, err)
	}
	return nil
}
