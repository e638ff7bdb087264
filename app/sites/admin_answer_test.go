package sites

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"idbridge/app/atlassian"
	"idbridge/models"
)

type siteAnswer func(r *http.Request) *http.Response

func (f siteAnswer) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

// TestRequireAdminUnreadableAnswerIsUnavailable: a site that answers the
// admin check with a redirect or a body that is not the documented shape
// gives the admin a 503 ("try again"), never a 500, and nothing is cached.
func TestRequireAdminUnreadableAnswerIsUnavailable(t *testing.T) {
	for name, answer := range map[string]*http.Response{
		"redirect":   {StatusCode: http.StatusFound, Header: http.Header{"Location": {"https://elsewhere.example/"}}, Body: io.NopCloser(strings.NewReader(""))},
		"not JSON":   {StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/html"}}, Body: io.NopCloser(strings.NewReader("<html>login</html>"))},
		"wrong JSON": {StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(`{"globalPermissions":"ADMINISTER"}`))},
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			fake := siteAnswer(func(r *http.Request) *http.Response {
				calls++
				answer.Request = r
				return answer
			})
			clients := atlassian.New(atlassian.Options{AppKey: "idbridge", Base: fake, MaxAttempts: 1})
			s := New(Config{}, nil, nil, clients, time.Now, nil)
			caller := &models.Caller{
				Site: &models.Site{
					SiteFacts: models.SiteFacts{
						ClientKey:   "client-1",
						BaseURL:     "https://a.atlassian.net",
						ProductType: "jira",
					},
					SharedSecret: []byte("secret-0123456789abcdef0123456789abcdef"),
				},
				AccountID: "acc",
			}
			err := s.RequireAdmin(context.Background(), caller)
			if code := models.ErrorCode(err); code != models.CodeUnavailable {
				t.Fatalf("RequireAdmin = %v (code %s), want unavailable", err, code)
			}
			if _, ok := s.admins.get(adminKey{"client-1", "acc"}); ok {
				t.Fatal("an unreadable answer was cached")
			}
			if calls != 1 {
				t.Fatalf("site calls = %d, want 1", calls)
			}
		})
	}
}
