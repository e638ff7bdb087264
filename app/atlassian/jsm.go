package atlassian

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"idbridge/models"
)

// JSM calls (Jira Service Management's servicedeskapi and the Jira user
// search) that customer SSO and the portal make as the site's service
// account. Sizes of what they read are bounded: pages of at most maxJSMPage.

const maxJSMPage = 50

// User is an Atlassian account as the user search answers it.
type User struct {
	AccountID    string `json:"accountId"`
	AccountType  string `json:"accountType"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string `json:"displayName"`
	Active       bool   `json:"active"`
}

// FindUserByEmail looks the account up with the user search and returns
// the one whose email address matches exactly (case-insensitively); none:
// not found.
func (c *ServiceClient) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	var users []User
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/user/search?query="+url.QueryEscape(email)+"&maxResults=20", nil, &users); err != nil {
		return nil, err
	}
	for i := range users {
		if strings.EqualFold(users[i].EmailAddress, email) {
			return &users[i], nil
		}
	}
	return nil, &models.Error{Code: models.CodeNotFound, Message: "no account with this email address"}
}

// CreateCustomer creates a JSM customer. An existing account with the email
// is a conflict (strictConflictStatusCode asks JSM for 409 then).
func (c *ServiceClient) CreateCustomer(ctx context.Context, email, displayName string) (*User, error) {
	if displayName == "" {
		displayName = email
	}
	var u User
	err := c.Do(ctx, http.MethodPost, "/rest/servicedeskapi/customer?strictConflictStatusCode=true",
		map[string]string{"email": email, "displayName": displayName}, &u)
	if err != nil {
		return nil, err
	}
	if u.AccountID == "" {
		return nil, errors.New("atlassian: create customer: answer without accountId")
	}
	return &u, nil
}

// AddCustomersToServiceDesk gives the accounts access to the service desk.
func (c *ServiceClient) AddCustomersToServiceDesk(ctx context.Context, serviceDeskID string, accountIDs []string) error {
	return c.Do(ctx, http.MethodPost, "/rest/servicedeskapi/servicedesk/"+url.PathEscape(serviceDeskID)+"/customer",
		map[string][]string{"accountIds": accountIDs}, nil)
}

// AddUsersToOrganization adds the accounts to the JSM organization.
func (c *ServiceClient) AddUsersToOrganization(ctx context.Context, organizationID string, accountIDs []string) error {
	return c.Do(ctx, http.MethodPost, "/rest/servicedeskapi/organization/"+url.PathEscape(organizationID)+"/user",
		map[string][]string{"accountIds": accountIDs}, nil)
}

// ServiceDesk is one JSM service desk (a project).
type ServiceDesk struct {
	ID          string `json:"id"`
	ProjectID   string `json:"projectId"`
	ProjectName string `json:"projectName"`
	ProjectKey  string `json:"projectKey"`
}

type page[T any] struct {
	Values     []T  `json:"values"`
	IsLastPage bool `json:"isLastPage"`
	Start      int  `json:"start"`
	Size       int  `json:"size"`
}

// ServiceDesks lists the site's service desks (at most limit).
func (c *ServiceClient) ServiceDesks(ctx context.Context, limit int) ([]ServiceDesk, error) {
	return pages[ServiceDesk](ctx, c, "/rest/servicedeskapi/servicedesk", limit)
}

// ServiceDesk reads one service desk; unknown: not found.
func (c *ServiceClient) ServiceDesk(ctx context.Context, id string) (*ServiceDesk, error) {
	var d ServiceDesk
	if err := c.Do(ctx, http.MethodGet, "/rest/servicedeskapi/servicedesk/"+url.PathEscape(id), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// RequestType is one way to raise a request on a service desk.
type RequestType struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	HelpText      string `json:"helpText"`
	ServiceDeskID string `json:"serviceDeskId"`
}

// RequestTypes lists a service desk's request types (at most limit).
func (c *ServiceClient) RequestTypes(ctx context.Context, serviceDeskID string, limit int) ([]RequestType, error) {
	return pages[RequestType](ctx, c, "/rest/servicedeskapi/servicedesk/"+url.PathEscape(serviceDeskID)+"/requesttype", limit)
}

// RequestTypeField is one field of a request type's form.
type RequestTypeField struct {
	FieldID     string `json:"fieldId"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Required    bool   `json:"required"`
	JiraSchema  struct {
		Type   string `json:"type"`
		System string `json:"system"`
		Items  string `json:"items"`
	} `json:"jiraSchema"`
	ValidValues []struct {
		Value string `json:"value"`
		Label string `json:"label"`
	} `json:"validValues"`
}

// RequestTypeFields reads a request type's form.
func (c *ServiceClient) RequestTypeFields(ctx context.Context, serviceDeskID, requestTypeID string) ([]RequestTypeField, error) {
	var out struct {
		RequestTypeFields []RequestTypeField `json:"requestTypeFields"`
	}
	err := c.Do(ctx, http.MethodGet, "/rest/servicedeskapi/servicedesk/"+url.PathEscape(serviceDeskID)+
		"/requesttype/"+url.PathEscape(requestTypeID)+"/field", nil, &out)
	return out.RequestTypeFields, err
}

// Request is a customer request as the servicedeskapi answers it.
type Request struct {
	IssueID       string `json:"issueId"`
	IssueKey      string `json:"issueKey"`
	RequestTypeID string `json:"requestTypeId"`
	ServiceDeskID string `json:"serviceDeskId"`
	CreatedDate   struct {
		ISO8601 string `json:"iso8601"`
	} `json:"createdDate"`
	Reporter      User `json:"reporter"`
	CurrentStatus struct {
		Status string `json:"status"`
	} `json:"currentStatus"`
	RequestFieldValues []struct {
		FieldID string `json:"fieldId"`
		Label   string `json:"label"`
		Value   any    `json:"value"`
	} `json:"requestFieldValues"`
}

// Field returns the text of one of the request's field values.
func (r *Request) Field(id string) string {
	for _, f := range r.RequestFieldValues {
		if f.FieldID == id {
			switch v := f.Value.(type) {
			case string:
				return v
			case nil:
				return ""
			default:
				return fmt.Sprint(v)
			}
		}
	}
	return ""
}

// CreateRequest raises a request on behalf of the customer.
func (c *ServiceClient) CreateRequest(ctx context.Context, serviceDeskID, requestTypeID, onBehalfOf string, fields map[string]any) (*Request, error) {
	var r Request
	err := c.Do(ctx, http.MethodPost, "/rest/servicedeskapi/request", map[string]any{
		"serviceDeskId": serviceDeskID, "requestTypeId": requestTypeID,
		"requestFieldValues": fields, "raiseOnBehalfOf": onBehalfOf,
	}, &r)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Request reads one request; unknown: not found.
func (c *ServiceClient) Request(ctx context.Context, key string) (*Request, error) {
	var r Request
	if err := c.Do(ctx, http.MethodGet, "/rest/servicedeskapi/request/"+url.PathEscape(key), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RequestParticipants lists the account IDs of a request's participants.
func (c *ServiceClient) RequestParticipants(ctx context.Context, key string) ([]string, error) {
	users, err := pages[User](ctx, c, "/rest/servicedeskapi/request/"+url.PathEscape(key)+"/participant", 200)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.AccountID
	}
	return ids, nil
}

// CustomerRequests lists requests the account reported or participates in
// ("requestOwnership=ALL_REQUESTS" as the customer sees them is not
// available to a service account, so JQL on reporter and participants).
func (c *ServiceClient) CustomerRequests(ctx context.Context, accountID string, limit int) ([]IssueSummary, error) {
	jql := fmt.Sprintf(`reporter = "%s" OR "Request participants" = "%s" ORDER BY created DESC`, jqlEscape(accountID), jqlEscape(accountID))
	var out struct {
		Issues []IssueSummary `json:"issues"`
	}
	err := c.Do(ctx, http.MethodPost, "/rest/api/3/search/jql", map[string]any{
		"jql": jql, "maxResults": min(limit, 100),
		"fields": []string{"summary", "status", "created", "reporter", "customfield_10001"},
	}, &out)
	return out.Issues, err
}

// IssueSummary is an issue as the JQL search answers it.
type IssueSummary struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Summary string `json:"summary"`
		Created string `json:"created"`
		Status  struct {
			Name string `json:"name"`
		} `json:"status"`
		Reporter *User `json:"reporter"`
	} `json:"fields"`
}

// Comment is a request comment.
type Comment struct {
	ID      string `json:"id"`
	Body    string `json:"body"`
	Public  bool   `json:"public"`
	Author  User   `json:"author"`
	Created struct {
		ISO8601 string `json:"iso8601"`
	} `json:"created"`
}

// PublicComments lists a request's public comments (at most limit).
func (c *ServiceClient) PublicComments(ctx context.Context, key string, limit int) ([]Comment, error) {
	return pages[Comment](ctx, c, "/rest/servicedeskapi/request/"+url.PathEscape(key)+"/comment?public=true&internal=false", limit)
}

// AddPublicComment adds a public comment to a request.
func (c *ServiceClient) AddPublicComment(ctx context.Context, key, body string) (*Comment, error) {
	var cm Comment
	err := c.Do(ctx, http.MethodPost, "/rest/servicedeskapi/request/"+url.PathEscape(key)+"/comment",
		map[string]any{"body": body, "public": true}, &cm)
	if err != nil {
		return nil, err
	}
	return &cm, nil
}

// pages reads a servicedeskapi list page by page, up to limit values.
func pages[T any](ctx context.Context, c *ServiceClient, path string, limit int) ([]T, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []T
	for start := 0; len(all) < limit; {
		var p page[T]
		if err := c.Do(ctx, http.MethodGet, path+sep+"start="+strconv.Itoa(start)+"&limit="+strconv.Itoa(maxJSMPage), nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Values...)
		if p.IsLastPage || len(p.Values) == 0 {
			break
		}
		start += len(p.Values)
	}
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// jqlEscape escapes a value for a double-quoted JQL string.
func jqlEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// User reads one account by ID; unknown: not found.
func (c *ServiceClient) User(ctx context.Context, accountID string) (*User, error) {
	var u User
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/user?accountId="+url.QueryEscape(accountID), nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
