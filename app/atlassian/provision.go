package atlassian

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"idbridge/models"
)

// MaxGroupMembersRead bounds how many members of one group a lookup reads
// (50 a page).
const MaxGroupMembersRead = 5000

// Group is a group of a site.
type Group struct {
	ID   string
	Name string
}

// Provisioner makes the calls of SPEC 6.1 as a site's service account:
// users and customers, groups and memberships (through Confluence's group
// API on a Confluence-only site), and suspension and profile changes
// through the organization Admin API. Every call goes out once
// (WithSingleAttempt): the caller schedules retries. Answers that mean
// "already so" (already a member, not a member, already deleted) are
// success.
//
// With the app system token Forge handed idbridge (UseSystemToken), the
// reads of users and groups (on a Confluence site, of groups) go as the
// app instead: the product REST APIs accept the token for them within the
// manifest's scopes (read:jira-user; read:confluence-groups). A
// Confluence site's user lookups stay with the service account: Confluence
// offers an app no search by email address, and its user object no
// "active" flag, which are what FindUserByEmail and GetUser answer. The
// writes stay with the service account: creating and removing accounts and
// groups and changing memberships need a site or product administrator,
// which the app's bot user is not, and suspension and profile changes go
// through the organization Admin API, which takes no app token.
type Provisioner struct {
	jira       *ServiceClient
	wiki       *ServiceClient // Confluence-only sites; nil on Jira
	org        *ServiceClient // nil without an organization Admin API key
	orgID      string
	confluence bool

	// app reads as the app with its system token (nil without one);
	// appRefused is set once Atlassian refused it (401 or 403), after
	// which this provisioner reads as the service account.
	app        *ServiceClient
	appRefused atomic.Bool
}

// UseSystemToken makes the provisioner read users and groups as the app,
// with the site's current app system token, through the API gateway of the
// site's product ({api}/ex/jira|confluence/{cloudId}). Without a cloudId
// or token it changes nothing.
func (p *Provisioner) UseSystemToken(s *ServiceAccounts, site *models.Site, token string) {
	product := ProductJira
	if p.confluence {
		product = ProductConfluence
	}
	if c, err := s.appClient(site, token, product); err == nil {
		p.app = c
	}
}

// read makes a read call as the app when it has a system token that
// Atlassian has not refused, else (and after a 401 or 403 to the app,
// whose token may have been revoked or whose bot may lack a permission)
// as the service account through svc, whose client serves the same
// paths. call gets the client to use.
func (p *Provisioner) read(svc *ServiceClient, call func(*ServiceClient) error) error {
	// The app client is the gateway of the site's product: Jira's user
	// and group paths on a Jira site, Confluence's group paths on a
	// Confluence site (whose user lookups stay with the service account).
	ofProduct := (svc == p.wiki) == p.confluence
	if p.app != nil && ofProduct && !p.appRefused.Load() {
		err := call(p.app)
		switch statusOf(err) {
		case http.StatusUnauthorized, http.StatusForbidden:
			p.appRefused.Store(true)
		default:
			return err
		}
	}
	return call(svc)
}

// get is a read of path into out (see read).
func (p *Provisioner) get(ctx context.Context, svc *ServiceClient, path string, out any) error {
	return p.read(svc, func(c *ServiceClient) error { return p.do(ctx, c, http.MethodGet, path, nil, out) })
}

// Provisioner returns the provisioning calls of site as acc.
func (s *ServiceAccounts) Provisioner(site *models.Site, acc *models.ServiceAccount) (*Provisioner, error) {
	jira, err := s.Client(site, acc)
	if err != nil {
		return nil, err
	}
	p := &Provisioner{jira: jira, orgID: acc.OrgID, confluence: strings.EqualFold(site.ProductType, ProductConfluence)}
	if p.confluence {
		if p.wiki, err = s.ConfluenceClient(site, acc); err != nil {
			return nil, err
		}
	}
	if acc.OrgAdminKey != "" {
		if p.org, err = s.OrgAdmin(site, acc); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// CanManageAccounts says whether suspension and profile changes are
// possible: an organization Admin API key and the organization's ID.
func (p *Provisioner) CanManageAccounts() bool { return p.org != nil && p.orgID != "" }

func (p *Provisioner) do(ctx context.Context, c *ServiceClient, method, path string, body, out any) error {
	return c.Do(WithSingleAttempt(ctx), method, path, body, out)
}

// statusOf is the HTTP status of a failed call, 0 when there was no answer.
func statusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// FindUserByEmail searches the site's users and returns the one whose
// email address equals email (case-insensitively); none: not found.
func (p *Provisioner) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	var u *User
	err := p.read(p.jira, func(c *ServiceClient) (err error) {
		u, err = c.FindUserByEmail(WithSingleAttempt(ctx), email)
		return err
	})
	return u, err
}

// GetUser reads an account of the site; removed or unknown: not found.
func (p *Provisioner) GetUser(ctx context.Context, accountID string) (*User, error) {
	var u User
	if err := p.get(ctx, p.jira, "/rest/api/3/user?accountId="+url.QueryEscape(accountID), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser creates an account with product access (products nil means
// none: Atlassian wants the list, possibly empty).
func (p *Provisioner) CreateUser(ctx context.Context, email string, products []string) (*User, error) {
	if products == nil {
		products = []string{}
	}
	body := map[string]any{"emailAddress": email, "products": products}
	var u User
	if err := p.do(ctx, p.jira, http.MethodPost, "/rest/api/3/user", body, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateCustomer creates a JSM customer; an email that already has an
// account is a conflict (409, strictConflictStatusCode).
func (p *Provisioner) CreateCustomer(ctx context.Context, email, displayName string) (*User, error) {
	u, err := p.jira.CreateCustomer(WithSingleAttempt(ctx), email, displayName)
	if err != nil {
		return nil, err
	}
	u.AccountType, u.Active = "customer", true
	if u.EmailAddress == "" {
		u.EmailAddress = email
	}
	return u, nil
}

// RemoveUser removes an account from the site; one already gone is done.
func (p *Provisioner) RemoveUser(ctx context.Context, accountID string) error {
	err := p.do(ctx, p.jira, http.MethodDelete, "/rest/api/3/user?accountId="+url.QueryEscape(accountID), nil, nil)
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// UserGroupIDs lists the IDs of the groups an account belongs to.
func (p *Provisioner) UserGroupIDs(ctx context.Context, accountID string) ([]string, error) {
	var groups []struct {
		GroupID string `json:"groupId"`
	}
	if err := p.get(ctx, p.jira, "/rest/api/3/user/groups?accountId="+url.QueryEscape(accountID), &groups); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(groups))
	for _, g := range groups {
		ids = append(ids, g.GroupID)
	}
	return ids, nil
}

// FindGroup finds a group by exact name (case-insensitive, as Atlassian's
// group names are); none: not found.
func (p *Provisioner) FindGroup(ctx context.Context, name string) (*Group, error) {
	if p.confluence {
		var out struct {
			Results []struct{ ID, Name string } `json:"results"`
		}
		q := url.Values{"query": {name}, "limit": {"200"}}
		if err := p.get(ctx, p.wiki, "/wiki/rest/api/group/picker?"+q.Encode(), &out); err != nil {
			return nil, err
		}
		for _, g := range out.Results {
			if strings.EqualFold(g.Name, name) {
				return &Group{ID: g.ID, Name: g.Name}, nil
			}
		}
		return nil, &models.Error{Code: models.CodeNotFound, Message: "no group of that name in the site"}
	}
	var out struct {
		Values []struct {
			GroupID string `json:"groupId"`
			Name    string `json:"name"`
		} `json:"values"`
	}
	if err := p.get(ctx, p.jira, "/rest/api/3/group/bulk?groupName="+url.QueryEscape(name), &out); err != nil {
		return nil, err
	}
	for _, g := range out.Values {
		if strings.EqualFold(g.Name, name) {
			return &Group{ID: g.GroupID, Name: g.Name}, nil
		}
	}
	return nil, &models.Error{Code: models.CodeNotFound, Message: "no group of that name in the site"}
}

// GroupExists says whether the group with the ID is still in the site.
func (p *Provisioner) GroupExists(ctx context.Context, id string) (bool, error) {
	var err error
	if p.confluence {
		err = p.get(ctx, p.wiki, "/wiki/rest/api/group/by-id?id="+url.QueryEscape(id), nil)
	} else {
		var out struct {
			Values []struct {
				GroupID string `json:"groupId"`
			} `json:"values"`
		}
		err = p.get(ctx, p.jira, "/rest/api/3/group/bulk?groupId="+url.QueryEscape(id), &out)
		if err == nil {
			return len(out.Values) > 0, nil
		}
	}
	if statusOf(err) == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// CreateGroup creates a group.
func (p *Provisioner) CreateGroup(ctx context.Context, name string) (*Group, error) {
	if p.confluence {
		var out struct{ ID, Name string }
		if err := p.do(ctx, p.wiki, http.MethodPost, "/wiki/rest/api/group", map[string]string{"name": name}, &out); err != nil {
			return nil, err
		}
		return &Group{ID: out.ID, Name: out.Name}, nil
	}
	var out struct {
		GroupID string `json:"groupId"`
		Name    string `json:"name"`
	}
	if err := p.do(ctx, p.jira, http.MethodPost, "/rest/api/3/group", map[string]string{"name": name}, &out); err != nil {
		return nil, err
	}
	return &Group{ID: out.GroupID, Name: out.Name}, nil
}

// DeleteGroup deletes a group; one already gone is done.
func (p *Provisioner) DeleteGroup(ctx context.Context, id string) error {
	var err error
	if p.confluence {
		err = p.do(ctx, p.wiki, http.MethodDelete, "/wiki/rest/api/group/by-id?id="+url.QueryEscape(id), nil, nil)
	} else {
		err = p.do(ctx, p.jira, http.MethodDelete, "/rest/api/3/group?groupId="+url.QueryEscape(id), nil, nil)
	}
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// AddMember adds an account to a group; already a member is done. A group
// or account the site does not know is not found.
func (p *Provisioner) AddMember(ctx context.Context, groupID, accountID string) error {
	var err error
	if p.confluence {
		err = p.do(ctx, p.wiki, http.MethodPost, "/wiki/rest/api/group/userByGroupId?groupId="+url.QueryEscape(groupID), map[string]string{"accountId": accountID}, nil)
	} else {
		err = p.do(ctx, p.jira, http.MethodPost, "/rest/api/3/group/user?groupId="+url.QueryEscape(groupID), map[string]string{"accountId": accountID}, nil)
	}
	if alreadyMember(err) {
		return nil
	}
	return err
}

// alreadyMember recognises Atlassian's 400 for adding a member twice
// ("Cannot add user. User is already a member of '…'"): the one answer
// that shares its status with real refusals, told apart by its text.
func alreadyMember(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(se.Body), "already a member")
}

// RemoveMember removes an account from a group; not a member (or no such
// group) is done.
func (p *Provisioner) RemoveMember(ctx context.Context, groupID, accountID string) error {
	q := "groupId=" + url.QueryEscape(groupID) + "&accountId=" + url.QueryEscape(accountID)
	var err error
	if p.confluence {
		err = p.do(ctx, p.wiki, http.MethodDelete, "/wiki/rest/api/group/userByGroupId?"+q, nil, nil)
	} else {
		err = p.do(ctx, p.jira, http.MethodDelete, "/rest/api/3/group/user?"+q, nil, nil)
	}
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// GroupMemberIDs lists the account IDs in a group, reading at most
// MaxGroupMembersRead of them.
func (p *Provisioner) GroupMemberIDs(ctx context.Context, groupID string) ([]string, error) {
	var ids []string
	for start := 0; start < MaxGroupMembersRead; start += 50 {
		var page struct {
			Values  []User `json:"values"`
			Results []User `json:"results"`
			IsLast  bool   `json:"isLast"`
			Size    int    `json:"size"`
		}
		var err error
		if p.confluence {
			err = p.get(ctx, p.wiki, "/wiki/rest/api/group/"+url.PathEscape(groupID)+"/membersByGroupId?limit=50&start="+strconv.Itoa(start), &page)
			page.Values, page.IsLast = page.Results, page.Size < 50
		} else {
			err = p.get(ctx, p.jira, "/rest/api/3/group/member?includeInactiveUsers=true&maxResults=50&groupId="+url.QueryEscape(groupID)+"&startAt="+strconv.Itoa(start), &page)
		}
		if err != nil {
			return nil, err
		}
		for _, u := range page.Values {
			ids = append(ids, u.AccountID)
		}
		if page.IsLast || len(page.Values) == 0 {
			break
		}
	}
	return ids, nil
}

// errNoOrgKey is the precondition of suspension and profile changes.
func errNoOrgKey() error {
	return &models.Error{Code: models.CodePrecondition, Message: "the service account has no organization Admin API key and organization ID"}
}

// Suspend suspends a managed account's access through the organization
// Admin API.
func (p *Provisioner) Suspend(ctx context.Context, accountID string) error {
	return p.suspension(ctx, accountID, "suspend-access")
}

// Restore restores a suspended managed account's access.
func (p *Provisioner) Restore(ctx context.Context, accountID string) error {
	return p.suspension(ctx, accountID, "restore-access")
}

func (p *Provisioner) suspension(ctx context.Context, accountID, action string) error {
	if !p.CanManageAccounts() {
		return errNoOrgKey()
	}
	path := "/admin/v1/orgs/" + url.PathEscape(p.orgID) + "/directory/users/" + url.PathEscape(accountID) + "/" + action
	return p.do(ctx, p.org, http.MethodPost, path, nil, nil)
}

// UpdateProfile changes a managed account's display name through the user
// management API.
func (p *Provisioner) UpdateProfile(ctx context.Context, accountID, name string) error {
	if p.org == nil {
		return errNoOrgKey()
	}
	return p.do(ctx, p.org, http.MethodPatch, "/users/"+url.PathEscape(accountID)+"/manage/profile", map[string]string{"name": name}, nil)
}
