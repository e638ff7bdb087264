// Package atlassian owns idbridge's outbound calls to Atlassian: the HTTP
// transport that retries rate-limited and unavailable answers and keeps each
// site under a request rate, the client that calls a site's REST API as the
// Connect app (HS256 JWT bound to each request), and the site-admin check.
//
// Retry policy, in one place:
//   - 429 and 503 are retried; nothing else is. The wait is Retry-After
//     (delta seconds or HTTP date), else X-RateLimit-Reset (ISO 8601 as
//     Atlassian sends it, or epoch seconds), else exponential backoff with
//     full jitter.
//   - Idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and requests
//     marked with WithIdempotent may be retried after a 503 or a transport
//     error. POST and PATCH are not, because the site may have acted on them.
//   - A 429 is retried for every method, POST included. Atlassian's rate
//     limiter refuses the request before it is processed ("If you reissue the
//     request before the retry period expires, the request will fail and
//     return the same or longer Retry-After period",
//     https://developer.atlassian.com/cloud/jira/platform/rate-limiting/), and
//     RFC 6585 §4 defines 429 as a refusal; so resending cannot apply a change
//     twice.
//   - A request whose body cannot be replayed (no GetBody) is never retried.
//   - Attempts and the total wait are bounded. When the server asks for a wait
//     beyond the bound, the transport gives up at once with a *RetryLaterError
//     that says when to try again, rather than sleeping for it.
package atlassian
