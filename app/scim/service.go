package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

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
	filters filterCache
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
		cfg.MaxResults = DefaultMaxResults
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

func resourceType(endpoint string) (ResourceType, error) {
	rt, ok := ResourceTypeByEndpoint(endpoint)
	if !ok {
		return ResourceType{}, NotFound("no resource type %q", endpoint)
	}
	return rt, nil
}

// resource resolves the endpoint and checks the resource ID's shape: an ID
// idbridge cannot have issued is a 404 at once, without a lookup (and its
// bytes, which may be NUL or invalid UTF-8, never reach the database).
func resource(endpoint, id string) (ResourceType, error) {
	rt, err := resourceType(endpoint)
	if err != nil {
		return rt, err
	}
	prefix, kind := "u", "User"
	if rt.Name == Groups.Name {
		prefix, kind = "g", "Group"
	}
	if !store.ValidID(prefix, id) {
		return rt, NotFound("%s %s not found", kind, shown(id))
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
	return ServiceProviderConfigDocument(s.BaseURL(siteID), ServiceProviderOptions{
		MaxResults: s.cfg.MaxResults, ETag: true, Sort: true,
		Limits: map[string]any{
			"maxConcurrentRequestsPerSite": s.cap.siteRequests,
			"maxListResponseBytes":         MaxListBytes,
		},
	})
}

// ResourceTypes answers GET /ResourceTypes (a ListResponse) or, with a
// name, GET /ResourceTypes/{name}.
func (s *Service) ResourceTypes(siteID, name string) (map[string]any, error) {
	if name != "" {
		return ResourceTypeDocument(s.BaseURL(siteID), name)
	}
	docs := ResourceTypeDocuments(s.BaseURL(siteID))
	return ListResponse(docs, len(docs), 1), nil
}

// Schemas answers GET /Schemas (a ListResponse) or, with an id, GET
// /Schemas/{id}.
func (s *Service) Schemas(siteID, id string) (map[string]any, error) {
	if id != "" {
		return SchemaDocument(s.BaseURL(siteID), id)
	}
	docs := SchemaDocuments(s.BaseURL(siteID))
	return ListResponse(docs, len(docs), 1), nil
}

// --- query parameters -----------------------------------------------------

// projection is attributes / excludedAttributes.
type projection struct {
	attrs, excluded []string
}

func (p projection) none() bool { return len(p.attrs) == 0 && len(p.excluded) == 0 }

// wants reports whether the answer includes the core attribute name, so
// that members and groups are only loaded when they will be shown.
func (p projection) wants(rt ResourceType, name string) bool {
	if len(p.attrs) > 0 {
		for _, a := range p.attrs {
			if ref, err := rt.Resolve(a); err == nil && !ref.Extension() && ref.Attr.Name == name {
				return true
			}
		}
		return false
	}
	for _, a := range p.excluded {
		if ref, err := rt.Resolve(a); err == nil && !ref.Extension() && ref.Attr.Name == name && ref.Sub == nil {
			return false
		}
	}
	return true
}

// listParams is a parsed list or search request.
type listParams struct {
	filter     string
	sortBy     string
	descending bool
	startIndex int // 1-based
	count      int
	projection
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

func projectionFrom(q url.Values) projection {
	a, _ := param(q, "attributes")
	e, _ := param(q, "excludedAttributes")
	return projection{attrs: ParseAttributeList(a), excluded: ParseAttributeList(e)}
}

func (s *Service) listParamsFrom(q url.Values) (listParams, error) {
	lp := listParams{startIndex: 1, count: defaultCount, projection: projectionFrom(q)}
	if err := checkProjection(lp.projection); err != nil {
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
			return 0, InvalidValue("%s must be an integer", name)
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
	return false, InvalidValue("sortOrder must be ascending or descending")
}

// sortColumn maps sortBy to a column the store sorts by. Only the core
// string attributes stored in their own columns are sortable, which is
// what /ServiceProviderConfig's sort.supported promises.
func sortColumn(rt ResourceType, sortBy string) (string, error) {
	if strings.TrimSpace(sortBy) == "" {
		return "", nil
	}
	ref, err := rt.Resolve(strings.TrimSpace(sortBy))
	if err != nil {
		return "", InvalidValue("sortBy %q is not an attribute of %s", sortBy, rt.Name)
	}
	if col := sortableColumn(rt, ref.Canonical); col != "" {
		return col, nil
	}
	return "", InvalidValue("sorting by %q is not supported", ref.Canonical)
}

// sortableColumn is the column a canonical attribute sorts by, "" when it
// is not sortable.
func sortableColumn(rt ResourceType, canonical string) string {
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
	if rt.Name == Groups.Name {
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
			out = append(out, ParseAttributeList(a)...)
		}
		return out, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, InvalidSyntax("attributes must be a list of attribute names")
	}
	return ParseAttributeList(one), nil
}

// Search answers POST /.search (endpoint "") and POST /Users/.search,
// /Groups/.search. A search at the root covers users, then groups.
func (s *Service) Search(ctx context.Context, siteID, endpoint string, body []byte) (any, error) {
	var req searchRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	lp := listParams{startIndex: 1, count: defaultCount, filter: req.Filter, sortBy: req.SortBy}
	var err error
	if lp.attrs, err = attributeList(req.Attributes); err != nil {
		return nil, err
	}
	if lp.excluded, err = attributeList(req.ExcludedAttributes); err != nil {
		return nil, err
	}
	if err := checkProjection(lp.projection); err != nil {
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
		return nil, InvalidValue("a search across resource types cannot be sorted")
	}
	page := newPage()
	total := 0
	offset, count := lp.startIndex-1, lp.count
	for _, rt := range ResourceTypes() {
		part := lp
		part.startIndex, part.count = offset+1, count
		if page.full {
			part.count = 0 // only the total
		}
		before := page.n
		n, err := s.query(ctx, siteID, rt, part, page)
		if err != nil {
			return nil, err
		}
		total += n
		count -= page.n - before
		offset = max(offset-n, 0)
	}
	return page.answer(total, lp.startIndex), nil
}

func (s *Service) list(ctx context.Context, siteID string, rt ResourceType, lp listParams) (any, error) {
	page := newPage()
	total, err := s.query(ctx, siteID, rt, lp, page)
	if err != nil {
		return nil, err
	}
	return page.answer(total, lp.startIndex), nil
}

// MaxListBytes is the byte budget of one list answer's resources: a page
// ends early when the next resource would pass it (at least one resource
// is always answered, so paging goes on), and itemsPerPage says how many
// it holds. Okta's pages of 100 users take a few hundred kilobytes; 20
// users of 1 MB made one 20 MB answer before.
const MaxListBytes = 4 << 20

// page assembles the Resources of a ListResponse as JSON, each resource
// rendered once, straight into the answer: no list of documents, no list
// of rendered resources, no second copy to join them. The store's rows are
// read into it and closed before the answer is written, so a slow client
// never holds a database connection.
type page struct {
	b    []byte
	n    int
	full bool
}

const pageHead = `{"schemas":["` + ListResponseSchema + `"],"Resources":[`

func newPage() *page { return &page{} }

// add appends a rendered resource (raw JSON or a map); false when the page
// is full and r was left out.
func (p *page) add(r any) (bool, error) {
	raw, ok := r.(json.RawMessage)
	if !ok {
		b, err := marshal(r)
		if err != nil {
			return false, err
		}
		raw = b
	}
	if p.full || p.n > 0 && len(p.b)+len(raw) > MaxListBytes {
		p.full = true
		return false, nil
	}
	if p.b == nil {
		// Sized for the first resource: a lookup's answer is one.
		p.b = make([]byte, 0, len(pageHead)+len(raw)+96)
		p.b = append(p.b, pageHead...)
	}
	if p.n > 0 {
		p.b = append(p.b, ',')
	}
	p.b = append(p.b, raw...)
	p.n++
	return true, nil
}

// answer closes the ListResponse with its counts.
func (p *page) answer(total, startIndex int) json.RawMessage {
	b := p.b
	if b == nil {
		b = append(make([]byte, 0, len(pageHead)+96), pageHead...)
	}
	b = append(b, `],"totalResults":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"startIndex":`...)
	b = strconv.AppendInt(b, int64(startIndex), 10)
	b = append(b, `,"itemsPerPage":`...)
	b = strconv.AppendInt(b, int64(p.n), 10)
	return json.RawMessage(append(b, '}'))
}

// directoryQuery compiles the filter, sort and paging of lp for rt.
func (s *Service) directoryQuery(rt ResourceType, lp listParams) (store.DirectoryQuery, error) {
	dq := store.DirectoryQuery{Offset: lp.startIndex - 1, Limit: lp.count, Desc: lp.descending}
	if strings.TrimSpace(lp.filter) != "" {
		expr, err := s.filters.parse(rt, lp.filter)
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
func (s *Service) query(ctx context.Context, siteID string, rt ResourceType, lp listParams, pg *page) (int, error) {
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
	if rt.Name == Users.Name {
		dq.WithGroups = lp.wants(rt, "groups")
		if dq.Key != nil {
			users, total, err := view.ListDirectoryUsers(siteID, dq)
			if err != nil {
				return 0, err
			}
			for i := range users {
				r, err := renderUser(base, &users[i], lp.projection)
				if err != nil {
					return 0, err
				}
				if _, err := pg.add(r); err != nil {
					return 0, err
				}
			}
			return total, nil
		}
		var renderErr error
		total, err := view.EachDirectoryUser(siteID, dq, func(u *models.DirectoryUser) bool {
			r, err := renderUser(base, u, lp.projection)
			if err != nil {
				renderErr = err
				return false
			}
			added, err := pg.add(r)
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
	withMembers := lp.wants(rt, "members")
	// Members are loaded a few groups at a time, so that a full page stops
	// loading them too.
	const membersChunk = 16
	for start := 0; start < len(groups) && !pg.full; start += membersChunk {
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
			r, err := renderGroup(base, &chunk[i], members[chunk[i].ID], lp.projection)
			if err != nil {
				return 0, err
			}
			if added, err := pg.add(r); err != nil || !added {
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
	if err := checkProjection(p); err != nil {
		return nil, err
	}
	slot := s.slot
	if rt.Name == Users.Name {
		slot = s.lookupSlot
	}
	ctx, release, err := slot(ctx, siteID)
	if err != nil {
		return nil, err
	}
	defer release()
	view := s.store.View(ctx)
	base := s.BaseURL(siteID)
	if rt.Name == Users.Name {
		users, _, err := view.ListDirectoryUsers(siteID, store.DirectoryQuery{
			Where: "id = ?", Args: []any{id}, Key: &store.DirectoryKey{Column: store.KeyID, Value: id},
			Limit: 1, WithGroups: p.wants(rt, "groups"),
		})
		if err != nil {
			return nil, err
		}
		if len(users) == 0 {
			return nil, NotFound("User %s not found", id)
		}
		body, err := renderUser(base, &users[0], p)
		if err != nil {
			return nil, err
		}
		return &models.SCIMDocument{Body: body, Version: etag(users[0].Version), Location: base + "/Users/" + users[0].ID}, nil
	}
	g, err := view.FindDirectoryGroup(siteID, id, false)
	if models.IsNotFound(err) {
		return nil, NotFound("Group %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	var members []models.GroupMember
	if p.wants(rt, "members") {
		m, err := view.FindGroupMembers(siteID, []string{g.ID})
		if err != nil {
			return nil, err
		}
		members = m[g.ID]
	}
	body, err := renderGroup(base, g, members, p)
	if err != nil {
		return nil, err
	}
	return &models.SCIMDocument{Body: body, Version: etag(g.Version), Location: base + "/Groups/" + g.ID}, nil
}

// --- rendering ----------------------------------------------------------------

// etag is the weak ETag (and meta.version) of a resource version.
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func metaJSON(resourceType, location string, created, updated time.Time, version int64) map[string]any {
	return map[string]any{
		"resourceType": resourceType,
		"created":      formatTime(created),
		"lastModified": formatTime(updated),
		"location":     location,
		"version":      etag(version),
	}
}

// renderUser renders a stored user. Without projection the stored JSON is
// spliced as is (the hot path of an identity provider's lookups); with
// one, the document is decoded and projected.
func renderUser(base string, u *models.DirectoryUser, p projection) (any, error) {
	location := base + "/Users/" + u.ID
	if p.none() {
		b := make([]byte, 0, len(u.Doc)+256+len(u.Groups)*160)
		b = appendHead(b, u.ID, "User", location, u.CreatedAt, u.UpdatedAt, u.Version)
		if len(u.Groups) > 0 {
			b = append(b, `,"groups":[`...)
			for i, g := range u.Groups {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendRef(b, g.ID, g.DisplayName, base+"/Groups/"+g.ID, "direct")
			}
			b = append(b, ']')
		}
		return spliceDoc(b, u.Doc), nil
	}
	extra := map[string]any{
		"id":   u.ID,
		"meta": metaJSON("User", location, u.CreatedAt, u.UpdatedAt, u.Version),
	}
	if len(u.Groups) > 0 {
		groups := make([]any, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = map[string]any{"value": g.ID, "display": g.DisplayName, "$ref": base + "/Groups/" + g.ID, "type": "direct"}
		}
		extra["groups"] = groups
	}
	return project(Users, u.Doc, extra, p)
}

// renderGroup renders a stored group with its members; a group without
// members answers none (RFC 7643 2.4: an empty multi-valued attribute is
// left out, not answered as []).
func renderGroup(base string, g *models.DirectoryGroup, members []models.GroupMember, p projection) (any, error) {
	location := base + "/Groups/" + g.ID
	if p.none() {
		b := make([]byte, 0, len(g.Doc)+256+len(members)*160)
		b = appendHead(b, g.ID, "Group", location, g.CreatedAt, g.UpdatedAt, g.Version)
		if len(members) > 0 {
			b = append(b, `,"members":[`...)
			for i, m := range members {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendRef(b, m.UserID, m.Display, base+"/Users/"+m.UserID, "User")
			}
			b = append(b, ']')
		}
		return spliceDoc(b, g.Doc), nil
	}
	extra := map[string]any{
		"id":   g.ID,
		"meta": metaJSON("Group", location, g.CreatedAt, g.UpdatedAt, g.Version),
	}
	if len(members) > 0 {
		list := make([]any, len(members))
		for i, m := range members {
			list[i] = map[string]any{"value": m.UserID, "display": m.Display, "$ref": base + "/Users/" + m.UserID, "type": "User"}
		}
		extra["members"] = list
	}
	return project(Groups, g.Doc, extra, p)
}

// appendHead starts a resource's JSON with the server's attributes: id and
// meta (same members as metaJSON).
func appendHead(b []byte, id, resourceType, location string, created, updated time.Time, version int64) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"meta":{"resourceType":`...)
	b = appendJSONString(b, resourceType)
	b = append(b, `,"created":"`...)
	b = created.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","lastModified":"`...)
	b = updated.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","location":`...)
	b = appendJSONString(b, location)
	b = append(b, `,"version":"W/\"`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `\""}`...)
	return b
}

// appendRef appends a member or group reference.
func appendRef(b []byte, value, display, ref, typ string) []byte {
	b = append(b, `{"value":`...)
	b = appendJSONString(b, value)
	b = append(b, `,"display":`...)
	b = appendJSONString(b, display)
	b = append(b, `,"$ref":`...)
	b = appendJSONString(b, ref)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	return append(b, '}')
}

// spliceDoc closes a head built by appendHead with the members of the
// stored document (a JSON object).
func spliceDoc(head, doc []byte) json.RawMessage {
	doc = bytes.TrimSpace(doc)
	if len(doc) >= 2 && doc[0] == '{' {
		if inner := bytes.TrimSpace(doc[1 : len(doc)-1]); len(inner) > 0 {
			head = append(head, ',')
			head = append(head, inner...)
		}
	}
	return json.RawMessage(append(head, '}'))
}

// appendJSONString appends s as a JSON string (no HTML escaping).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// project decodes a stored document, adds the server's attributes and
// applies attributes / excludedAttributes.
func project(rt ResourceType, doc []byte, extra map[string]any, p projection) (any, error) {
	m, err := decodeDoc(doc)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		m[k] = v
	}
	return Project(rt, m, p.attrs, p.excluded), nil
}

// marshal is json.Marshal without HTML escaping: values are stored and
// answered as sent ("R&D", not "R\u0026D").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// decodeDoc decodes a stored document, keeping numbers exact.
func decodeDoc(doc []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(bytes.TrimSpace(doc)) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeStrict decodes one JSON value from body into v: malformed JSON or
// trailing data is 400 invalidSyntax.
func decodeStrict(body []byte, v any) error {
	if hasNUL(string(body)) {
		return InvalidValue("the body holds the NUL character (\\u0000), which no attribute may hold")
	}
	if err := checkBody(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return InvalidSyntax("the body is not valid JSON for this request")
	}
	if dec.More() {
		return InvalidSyntax("the body has data after the JSON value")
	}
	return nil
}

// dropNulls removes null values and empty lists at every depth of v, in
// place: no answer ever carries a null (Entra sends "$ref": null; unknown
// attributes are kept as sent) or an empty multi-valued attribute (RFC 7643
// 2.4 leaves it out; "emails": [] in a PUT clears the emails).
func dropNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			if v[k] = dropNulls(e); isEmptyList(v[k]) {
				delete(v, k)
			}
		}
		return v
	case []any:
		out := v[:0]
		for _, e := range v {
			if e != nil {
				out = append(out, dropNulls(e))
			}
		}
		return out
	}
	return v
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}
