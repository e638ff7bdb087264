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

	filter "github.com/scim2/filter-parser/v2"

	"idbridge/app/scim"
	"idbridge/app/store"
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
// the store coalesces (PostgreSQL) need none, and a create gives its slot
// back before it waits for its batch (users.create). The work gets a
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

// coalesced reports whether the store answers key lookups in shared
// statements (PostgreSQL), which hold no connection per request. (User
// creates are batched on both databases.)
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

// directoryOf is the directory of a resource type: the one place that
// tells users from groups.
func (s *Service) directoryOf(rt *scim.ResourceType) (directory, error) {
	switch {
	case rt == nil:
		return nil, scim.NotFound("no resource type")
	case rt.Name == scim.Users.Name:
		return users{s}, nil
	case rt.Name == scim.Groups.Name:
		return groups{s}, nil
	}
	return nil, scim.NotFound("no resource type %q", rt.Name)
}

// resource resolves the request's directory and checks the resource ID's
// shape: an ID idbridge cannot have issued is a 404 at once, without a
// lookup (and its bytes, which may be NUL or invalid UTF-8, never reach the
// database).
func (s *Service) resource(r *scim.Request) (directory, error) {
	d, err := s.directoryOf(r.Type)
	if err != nil {
		return nil, err
	}
	if !store.ValidID(d.idPrefix(), r.ID) {
		return nil, scim.NotFound("%s %s not found", d.target().rt.Name, shown(r.ID))
	}
	return d, nil
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
func (s *Service) ServiceProviderConfig(siteID string) (*scim.Answer, error) {
	return scim.Document(scim.ServiceProviderConfigDocument(s.BaseURL(siteID), scim.ServiceProviderOptions{
		MaxResults: s.cfg.MaxResults, ETag: true, Sort: true,
		Limits: map[string]any{
			"maxConcurrentRequestsPerSite": s.cap.siteRequests,
			"maxListResponseBytes":         scim.MaxListBytes,
		},
	}))
}

// ResourceTypes answers GET /ResourceTypes (a ListResponse) or, with a
// name, GET /ResourceTypes/{name}.
func (s *Service) ResourceTypes(siteID, name string) (*scim.Answer, error) {
	if name != "" {
		doc, err := scim.ResourceTypeDocument(s.BaseURL(siteID), name)
		if err != nil {
			return nil, err
		}
		return scim.Document(doc)
	}
	docs := scim.ResourceTypeDocuments(s.BaseURL(siteID))
	return scim.Document(scim.ListResponse(docs, len(docs), 1))
}

// Schemas answers GET /Schemas (a ListResponse) or, with an id, GET
// /Schemas/{id}.
func (s *Service) Schemas(siteID, id string) (*scim.Answer, error) {
	if id != "" {
		doc, err := scim.SchemaDocument(s.BaseURL(siteID), id)
		if err != nil {
			return nil, err
		}
		return scim.Document(doc)
	}
	docs := scim.SchemaDocuments(s.BaseURL(siteID))
	return scim.Document(scim.ListResponse(docs, len(docs), 1))
}

// --- query parameters -----------------------------------------------------

// listParams is a parsed list or search request.
type listParams struct {
	filter string
	// parsed, when set, is filter already parsed for the resource type
	// (a search across resource types parses it for each, see searchAll).
	parsed     filter.Expression
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

// sortColumn maps sortBy to what the store sorts by. Only the core string
// attributes stored in their own columns are sortable (the store's table
// description says which), which is what /ServiceProviderConfig's
// sort.supported promises.
func sortColumn(t sqlTarget, sortBy string) (string, error) {
	if strings.TrimSpace(sortBy) == "" {
		return "", nil
	}
	ref, err := t.rt.Resolve(strings.TrimSpace(sortBy))
	if err != nil {
		return "", scim.InvalidValue("sortBy %q is not an attribute of %s", sortBy, t.rt.Name)
	}
	if col, ok := t.table.Column(ref.Canonical); ok && col.Sort != "" {
		return col.Sort, nil
	}
	return "", scim.InvalidValue("sorting by %q is not supported", ref.Canonical)
}

// --- lists and reads ---------------------------------------------------------

// List answers GET /Users and GET /Groups: always a ListResponse, also
// when nothing matches.
func (s *Service) List(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	d, err := s.directoryOf(r.Type)
	if err != nil {
		return nil, err
	}
	lp, err := s.listParamsFrom(r.Query)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, r.SiteID, d, lp)
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

// Search answers POST /.search (no resource type) and POST /Users/.search,
// /Groups/.search. A search at the root covers users, then groups.
func (s *Service) Search(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	var req searchRequest
	if err := scim.DecodeStrict(r.Body, &req); err != nil {
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
	if r.Type != nil {
		d, err := s.directoryOf(r.Type)
		if err != nil {
			return nil, err
		}
		return s.list(ctx, r.SiteID, d, lp)
	}
	return s.searchAll(ctx, r.SiteID, lp)
}

// searchAll pages over users followed by groups, within one answer's
// byte budget. The filter applies to each type as RFC 7644 3.4.2.1 says
// (scim.ParseFilterAcross): a type that lacks an attribute the filter
// compares treats it as absent, so userName eq "…" finds users and no
// groups rather than being refused by the groups.
func (s *Service) searchAll(ctx context.Context, siteID string, lp listParams) (*scim.Answer, error) {
	if lp.sortBy != "" {
		return nil, scim.InvalidValue("a search across resource types cannot be sorted")
	}
	rts := scim.ResourceTypes()
	var filters []scim.TypeFilter
	if strings.TrimSpace(lp.filter) != "" {
		var err error
		if filters, err = scim.ParseFilterAcross(rts, lp.filter); err != nil {
			return nil, err
		}
	}
	page := scim.NewPage()
	total := 0
	offset, count := lp.startIndex-1, lp.count
	for i, rt := range rts {
		d, err := s.directoryOf(&rt)
		if err != nil {
			return nil, err
		}
		part := lp
		if filters != nil {
			switch f := filters[i]; {
			case f.Expr != nil:
				part.parsed = f.Expr
			case f.All:
				part.filter = ""
			default:
				continue // no resource of this type can match: none to count or skip
			}
		}
		part.startIndex, part.count = offset+1, count
		if page.Full() {
			part.count = 0 // only the total
		}
		before := page.Len()
		n, err := s.query(ctx, siteID, d, part, page)
		if err != nil {
			return nil, err
		}
		total += n
		count -= page.Len() - before
		offset = max(offset-n, 0)
	}
	return &scim.Answer{Body: page.Answer(total, lp.startIndex)}, nil
}

func (s *Service) list(ctx context.Context, siteID string, d directory, lp listParams) (*scim.Answer, error) {
	page := scim.NewPage()
	total, err := s.query(ctx, siteID, d, lp, page)
	if err != nil {
		return nil, err
	}
	return &scim.Answer{Body: page.Answer(total, lp.startIndex)}, nil
}

// directoryQuery compiles the filter, sort and paging of lp for t.
func (s *Service) directoryQuery(t sqlTarget, lp listParams) (store.DirectoryQuery, error) {
	dq := store.DirectoryQuery{Offset: lp.startIndex - 1, Limit: lp.count, Desc: lp.descending}
	if lp.parsed != nil || strings.TrimSpace(lp.filter) != "" {
		expr := lp.parsed
		if expr == nil {
			var err error
			if expr, err = s.filters.Parse(t.rt, lp.filter); err != nil {
				return dq, err
			}
		}
		f, err := compileFilter(t, s.store.Dialect(), expr)
		if err != nil {
			return dq, err
		}
		dq.Where, dq.Args, dq.Key = f.Where, f.Args, f.Key
	}
	col, err := sortColumn(t, lp.sortBy)
	if err != nil {
		return dq, err
	}
	dq.OrderBy = col
	return dq, nil
}

// query runs one list and renders its page into pg, within its byte
// budget, and returns the total number of matches.
func (s *Service) query(ctx context.Context, siteID string, d directory, lp listParams, pg *scim.Page) (int, error) {
	dq, err := s.directoryQuery(d.target(), lp)
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
	return d.page(s.store.View(ctx), siteID, dq, lp.Projection, pg)
}

// Get answers GET /Users/{id} and GET /Groups/{id}.
func (s *Service) Get(ctx context.Context, r *scim.Request) (*scim.Answer, error) {
	d, err := s.resource(r)
	if err != nil {
		return nil, err
	}
	p := projectionFrom(r.Query)
	if err := scim.CheckProjection(p); err != nil {
		return nil, err
	}
	return d.get(ctx, r.SiteID, r.ID, p)
}
