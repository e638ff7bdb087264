package provisioning

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// Paging defaults. DefaultMaxResults (schema.go) caps count and is what
// /ServiceProviderConfig advertises as filter.maxResults.
const defaultCount = 100

// ServiceConfig is what the SCIM service needs from configuration.
type ServiceConfig struct {
	// BaseURL is idbridge's public base URL; a site's SCIM base is
	// BaseURL/scim/v2/{siteID}.
	BaseURL *url.URL
	// MaxResults caps a list's count; DefaultMaxResults when zero.
	MaxResults int
	// Capacity sizes each site's share of the process (capacity.go).
	Capacity CapacityConfig
}

// Service is idbridge's SCIM 2.0 provisioning server without HTTP: it
// authenticates a site's identity provider, answers queries from the
// database, and applies changes in one transaction each, together with the
// outbox items the sync worker applies to the Atlassian site. It also owns
// the provisioning settings and the token that the admin page manages.
type Service struct {
	cfg     ServiceConfig
	store   *store.Store
	now     func() time.Time
	log     *slog.Logger
	tokens  tokenCache
	filters scim.FilterCache
	cap     *capacity
}

// NewService builds the service. It starts nothing; Run keeps the token
// cache true across replicas.
func NewService(cfg ServiceConfig, st *store.Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxResults <= 0 {
		cfg.MaxResults = scim.DefaultMaxResults
	}
	return &Service{cfg: cfg, store: st, now: now, log: log,
		tokens: tokenCache{entries: map[string]tokenEntry{}, now: now},
		cap:    newCapacity(cfg.Capacity, st)}
}

// slot waits for a database work slot of the site (capacity.go); lookups
// and creates the store coalesces (PostgreSQL) need none. The work gets a
// deadline (the store's WorkTimeout) on the returned context: past it the
// request's statements are cancelled, on SQLite too (interrupted), and the
// request is answered 503.
func (s *Service) slot(ctx context.Context, siteID string) (context.Context, func(), error) {
	return s.slotOf(ctx, siteID, false)
}

// lookupSlot is the slot of a lookup by a unique key: none where the store
// coalesces it, else only the process's (capacity.slot).
func (s *Service) lookupSlot(ctx context.Context, siteID string) (context.Context, func(), error) {
	if s.coalesced() {
		return ctx, func() {}, nil
	}
	return s.slotOf(ctx, siteID, true)
}

func (s *Service) slotOf(ctx context.Context, siteID string, light bool) (context.Context, func(), error) {
	release, err := s.cap.slot(ctx, siteID, light)
	if err != nil {
		return ctx, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.store.WorkTimeout())
	var once sync.Once
	return ctx, func() { once.Do(func() { cancel(); release() }) }, nil
}

// coalesced reports whether the store answers key lookups and user creates
// in shared statements (PostgreSQL), which hold no connection per request.
func (s *Service) coalesced() bool {
	return s.store.Dialect() == store.Postgres
}

// BaseURL is the site's SCIM base URL, what an identity provider is given.
func (s *Service) BaseURL(siteID string) string {
	base := ""
	if s.cfg.BaseURL != nil {
		base = strings.TrimSuffix(s.cfg.BaseURL.String(), "/")
	}
	return base + "/scim/v2/" + url.PathEscape(siteID)
}

func resourceType(endpoint string) (scim.ResourceType, error) {
	rt, ok := scim.ResourceTypeByEndpoint(endpoint)
	if !ok {
		return scim.ResourceType{}, scim.NotFound("no resource type %q", endpoint)
	}
	return rt, nil
}

// resource resolves the endpoint and checks the resource ID's shape: an ID
// idbridge cannot have issued is a 404 at once, without a lookup (and its
// bytes, which may be NUL or invalid UTF-8, never reach the database).
func resource(endpoint, id string) (scim.ResourceType, error) {
	rt, err := resourceType(endpoint)
	if err != nil {
		return rt, err
	}
	prefix, kind := "u", "User"
	if rt.Name == scim.Groups.Name {
		prefix, kind = "g", "Group"
	}
	if !store.ValidID(prefix, id) {
		return rt, scim.NotFound("%s %s not found", kind, shown(id))
	}
	return rt, nil
}

// shown quotes a client-sent value for an error message, cut short.
func shown(v string) string {
	const most = 64
	if len(v) > most {
		v = v[:most] + "…"
	}
	return strconv.Quote(strings.ToValidUTF8(v, "\uFFFD"))
}

// --- discovery ----------------------------------------------------------

// ServiceProviderConfig answers GET /ServiceProviderConfig.
func (s *Service) ServiceProviderConfig(siteID string) map[string]any {
	return scim.ServiceProviderConfigDocument(s.BaseURL(siteID), scim.ServiceProviderOptions{
		MaxResults: s.cfg.MaxResults, ETag: true, Sort: true,
		Limits: map[string]any{
			"maxConcurrentRequestsPerSite": s.cap.siteRequests,
			"maxListResponseBytes":         scim.MaxListBytes,
		},
	})
}

// ResourceTypes answers GET /ResourceTypes (a ListResponse) or, with a
// name, GET /ResourceTypes/{name}.
func (s *Service) ResourceTypes(siteID, name string) (map[string]any, error) {
	if name != "" {
		return scim.ResourceTypeDocument(s.BaseURL(siteID), name)
	}
	docs := scim.ResourceTypeDocuments(s.BaseURL(siteID))
	return scim.ListResponse(docs, len(docs), 1), nil
}

// Schemas answers GET /Schemas (a ListResponse) or, with an id, GET
// /Schemas/{id}.
func (s *Service) Schemas(siteID, id string) (map[string]any, error) {
	if id != "" {
		return scim.SchemaDocument(s.BaseURL(siteID), id)
	}
	docs := scim.SchemaDocuments(s.BaseURL(siteID))
	return scim.ListResponse(docs, len(docs), 1), nil
}

// --- query parameters -----------------------------------------------------

// listParams is a parsed list or search request.
type listParams struct {
	filter     string
	sortBy     string
	descending bool
	startIndex int // 1-based
	count      int
	scim.Projection
}

// param returns the query parameter named name, matched
// case-insensitively (some clients send "Filter").
func param(q url.Values, name string) (string, bool) {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

func projectionFrom(q url.Values) scim.Projection {
	a, _ := param(q, "attributes")
	e, _ := param(q, "excludedAttributes")
	return scim.Projection{Attrs: scim.ParseAttributeList(a), Excluded: scim.ParseAttributeList(e)}
}

func (s *Service) listParamsFrom(q url.Values) (listParams, error) {
	lp := listParams{startIndex: 1, count: defaultCount, Projection: projectionFrom(q)}
	if err := scim.CheckProjection(lp.Projection); err != nil {
		return lp, err
	}
	lp.filter, _ = param(q, "filter")
	lp.sortBy, _ = param(q, "sortBy")
	order, _ := param(q, "sortOrder")
	var err error
	if lp.descending, err = sortOrder(order); err != nil {
		return lp, err
	}
	if v, ok := param(q, "startIndex"); ok {
		if lp.startIndex, err = pagingInt("startIndex", v); err != nil {
			return lp, err
		}
	}
	if v, ok := param(q, "count"); ok {
		if lp.count, err = pagingInt("count", v); err != nil {
			return lp, err
		}
	}
	s.clampPaging(&lp)
	return lp, nil
}

// clampPaging applies RFC 7644 3.4.2.4: startIndex below 1 means 1, count
// below 0 means 0, and the server maximum caps count.
func (s *Service) clampPaging(lp *listParams) {
	lp.startIndex = max(lp.startIndex, 1)
	lp.count = min(max(lp.count, 0), s.cfg.MaxResults)
}

func pagingInt(name, v string) (int, error) {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, scim.InvalidValue("%s must be an integer", name)
		}
		n = int64(f)
	}
	const limit = 1 << 30
	return int(max(min(n, limit), -limit)), nil
}

func sortOrder(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "ascending", "asc":
		return false, nil
	case "descending", "desc":
		return true, nil
	}
	return false, scim.InvalidValue("sortOrder must be ascending or descending")
}

// sortColumn maps sortBy to a column the store sorts by. Only the core
// string attributes stored in their own columns are sortable, which is
// what /ServiceProviderConfig's sort.supported promises.
func sortColumn(rt scim.ResourceType, sortBy string) (string, error) {
	if strings.TrimSpace(sortBy) == "" {
		return "", nil
	}
	ref, err := rt.Resolve(strings.TrimSpace(sortBy))
	if err != nil {
		return "", scim.InvalidValue("sortBy %q is not an attribute of %s", sortBy, rt.Name)
	}
	if col := sortableColumn(rt, ref.Canonical); col != "" {
		return col, nil
	}
	return "", scim.InvalidValue("sorting by %q is not supported", ref.Canonical)
}

// sortableColumn is the column a canonical attribute sorts by, "" when it
// is not sortable.
func sortableColumn(rt scim.ResourceType, canonical string) string {
	switch canonical {
	case "externalId":
		return "external_id"
	case "id":
		return "id"
	case "meta.created":
		return "created_at"
	case "meta.lastModified":
		return "updated_at"
	}
	if rt.Name == scim.Groups.Name {
		if canonical == "displayName" {
			return "display_name_lower"
		}
		return ""
	}
	switch canonical {
	case "userName":
		return "user_name_lower"
	case "displayName":
		return "lower(display_name)"
	case "name.givenName":
		return "lower(given_name)"
	case "name.familyName":
		return "lower(family_name)"
	case "emails", "emails.value":
		return "lower(email)"
	case "active":
		return "active"
	}
	return ""
}

// --- lists and reads ---------------------------------------------------------

// List answers GET /Users and GET /Groups: always a ListResponse, also
// when nothing matches.
func (s *Service) List(ctx context.Context, siteID, endpoint string, q url.Values) (any, error) {
	rt, err := resourceType(endpoint)
	if err != nil {
		return nil, err
	}
	lp, err := s.listParamsFrom(q)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, siteID, rt, lp)
}

// searchRequest is the body of POST .search (RFC 7644 3.4.3).
type searchRequest struct {
	Schemas            []string        `json:"schemas"`
	Attributes         json.RawMessage `json:"attributes"`
	ExcludedAttributes json.RawMessage `json:"excludedAttributes"`
	Filter             string          `json:"filter"`
	SortBy             string          `json:"sortBy"`
	SortOrder          string          `json:"sortOrder"`
	StartIndex         *json.Number    `json:"startIndex"`
	Count              *json.Number    `json:"count"`
}

// attributeList reads attributes given as an array of names or as one
// comma-separated string.
func attributeList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		var out []string
		for _, a := range list {
			out = append(out, scim.ParseAttributeList(a)...)
		}
		return out, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, scim.InvalidSyntax("attributes must be a list of attribute names")
	}
	return scim.ParseAttributeList(one), nil
}

// Search answers POST /.search (endpoint "") and POST /Users/.search,
// /Groups/.search. A search at the root covers users, then groups.
func (s *Service) Search(ctx context.Context, siteID, endpoint string, body []byte) (any, error) {
	var req searchRequest
	if err := scim.DecodeStrict(body, &req); err != nil {
		return nil, err
	}
	lp := listParams{startIndex: 1, count: defaultCount, filter: req.Filter, sortBy: req.SortBy}
	var err error
	if lp.Attrs, err = attributeList(req.Attributes); err != nil {
		return nil, err
	}
	if lp.Excluded, err = attributeList(req.ExcludedAttributes); err != nil {
		return nil, err
	}
	if err := scim.CheckProjection(lp.Projection); err != nil {
		return nil, err
	}
	if lp.descending, err = sortOrder(req.SortOrder); err != nil {
		return nil, err
	}
	if req.StartIndex != nil {
		if lp.startIndex, err = pagingInt("startIndex", req.StartIndex.String()); err != nil {
			return nil, err
		}
	}
	if req.Count != nil {
		if lp.count, err = pagingInt("count", req.Count.String()); err != nil {
			return nil, err
		}
	}
	s.clampPaging(&lp)
	if endpoint != "" {
		rt, err := resourceType(endpoint)
		if err != nil {
			return nil, err
		}
		return s.list(ctx, siteID, rt, lp)
	}
	return s.searchAll(ctx, siteID, lp)
}

// searchAll pages over users followed by groups, within one answer's
// byte budget.
func (s *Service) searchAll(ctx context.Context, siteID string, lp listParams) (any, error) {
	if lp.sortBy != "" {
		return nil, scim.InvalidValue("a search across resource types cannot be sorted")
	}
	page := scim.NewPage()
	total := 0
	offset, count := lp.startIndex-1, lp.count
	for _, rt := range scim.ResourceTypes() {
		part := lp
		part.startIndex, part.count = offset+1, count
		if page.Full() {
			part.count = 0 // only the total
		}
		before := page.Len()
		n, err := s.query(ctx, siteID, rt, part, page)
		if err != nil {
			return nil, err
		}
		total += n
		count -= page.Len() - before
		offset = max(offset-n, 0)
	}
	return page.Answer(total, lp.startIndex), nil
}

func (s *Service) list(ctx context.Context, siteID string, rt scim.ResourceType, lp listParams) (any, error) {
	page := scim.NewPage()
	total, err := s.query(ctx, siteID, rt, lp, page)
	if err != nil {
		return nil, err
	}
	return page.Answer(total, lp.startIndex), nil
}

// directoryQuery compiles the filter, sort and paging of lp for rt.
func (s *Service) directoryQuery(rt scim.ResourceType, lp listParams) (store.DirectoryQuery, error) {
	dq := store.DirectoryQuery{Offset: lp.startIndex - 1, Limit: lp.count, Desc: lp.descending}
	if strings.TrimSpace(lp.filter) != "" {
		expr, err := s.filters.Parse(rt, lp.filter)
		if err != nil {
			return dq, err
		}
		f, err := compileFilter(rt, s.store.Dialect(), expr)
		if err != nil {
			return dq, err
		}
		dq.Where, dq.Args, dq.Key = f.Where, f.Args, f.Key
	}
	col, err := sortColumn(rt, lp.sortBy)
	if err != nil {
		return dq, err
	}
	dq.OrderBy = col
	return dq, nil
}

// query runs one list and renders its page into pg, within its byte
// budget, and returns the total number of matches.
func (s *Service) query(ctx context.Context, siteID string, rt scim.ResourceType, lp listParams, pg *scim.Page) (int, error) {
	dq, err := s.directoryQuery(rt, lp)
	if err != nil {
		return 0, err
	}
	slot := s.slot
	if dq.Key != nil {
		slot = s.lookupSlot
	}
	ctx, release, err := slot(ctx, siteID)
	if err != nil {
		return 0, err
	}
	defer release()
	view := s.store.View(ctx)
	base := s.BaseURL(siteID)
	if rt.Name == scim.Users.Name {
		dq.WithGroups = lp.Wants(rt, "groups")
		if dq.Key != nil {
			users, total, err := view.ListDirectoryUsers(siteID, dq)
			if err != nil {
				return 0, err
			}
			for i := range users {
				r, err := scim.RenderUser(base, &users[i], lp.Projection)
				if err != nil {
					return 0, err
				}
				if _, err := pg.Add(r); err != nil {
					return 0, err
				}
			}
			return total, nil
		}
		var renderErr error
		total, err := view.EachDirectoryUser(siteID, dq, func(u *models.DirectoryUser) bool {
			r, err := scim.RenderUser(base, u, lp.Projection)
			if err != nil {
				renderErr = err
				return false
			}
			added, err := pg.Add(r)
			if err != nil {
				renderErr = err
				return false
			}
			return added
		})
		if renderErr != nil {
			return 0, renderErr
		}
		return total, err
	}
	groups, total, err := view.ListDirectoryGroups(siteID, dq)
	if err != nil {
		return 0, err
	}
	withMembers := lp.Wants(rt, "members")
	// Members are loaded a few groups at a time, so that a full page stops
	// loading them too.
	const membersChunk = 16
	for start := 0; start < len(groups) && !pg.Full(); start += membersChunk {
		chunk := groups[start:min(start+membersChunk, len(groups))]
		var members map[string][]models.GroupMember
		if withMembers {
			ids := make([]string, len(chunk))
			for i := range chunk {
				ids[i] = chunk[i].ID
			}
			if members, err = view.FindGroupMembers(siteID, ids); err != nil {
				return 0, err
			}
		}
		for i := range chunk {
			r, err := scim.RenderGroup(base, &chunk[i], members[chunk[i].ID], lp.Projection)
			if err != nil {
				return 0, err
			}
			if added, err := pg.Add(r); err != nil || !added {
				if err != nil {
					return 0, err
				}
				break
			}
		}
	}
	return total, nil // counted over the whole page read, however much of it fits
}

// Get answers GET /Users/{id} and GET /Groups/{id}.
func (s *Service) Get(ctx context.Context, siteID, endpoint, id string, q url.Values) (*models.SCIMDocument, error) {
	rt, err := resource(endpoint, id)
	if err != nil {
		return nil, err
	}
	p := projectionFrom(q)
	if err := scim.CheckProjection(p); err != nil {
		return nil, err
	}
	slot := s.slot
	if rt.Name == scim.Users.Name {
		slot = s.lookupSlot
	}
	ctx, release, err := slot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	view := s.store.View(ctx)
	base := s.BaseURL(siteID)
	if rt.Name == scim.Users.Name {
		users, _, err := view.ListDirectoryUsers(siteID, store.DirectoryQuery{
			Where: "id = ?", Args: []any{id}, Key: &store.DirectoryKey{Column: store.KeyID, Value: id},
			Limit: 1, WithGroups: p.Wants(rt, "groups"),
		})
		if err != nil {
			return nil, err
		}
		if len(users) == 0 {
			return nil, scim.NotFound("User %s not found", id)
		}
		body, err := scim.RenderUser(base, &users[0], p)
		if err != nil {
			return nil, err
		}
		return &models.SCIMDocument{Body: body, Version: scim.ETag(users[0].Version), Location: base + "/Users/" + users[0].ID}, nil
	}
	g, err := view.FindDirectoryGroup(siteID, id, false)
	if models.IsNotFound(err) {
		return nil, scim.NotFound("Group %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	var members []models.GroupMember
	if p.Wants(rt, "members") {
		m, err := view.FindGroupMembers(siteID, []string{g.ID})
		if err != nil {
			return nil, err
		}
		members = m[g.ID]
	}
	body, err := scim.RenderGroup(base, g, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: scim.ETag(g.Version), Location: base + "/Groups/" + g.ID}, nil
}

// --- rendering ----------------------------------------------------------------
