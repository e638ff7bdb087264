package provisioning

import (
	"slices"
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"idbridge/app/scim"
	"idbridge/app/store"
	"idbridge/models"
)

// memberOp is a PATCH operation on a group's members that maps directly to
// the membership table, without loading the group's members: what Entra
// and Okta send (add and remove with value lists, remove of
// members[value eq "id"], replace of the whole list).
type memberOp struct {
	kind string // add, remove, replace, clear
	ids  []string
}

// planGroupPatch plans a PATCH of a group, before the write transaction:
// the new document and the membership changes in order. Member operations
// of the shapes identity providers send become changes of the membership
// table without loading the members (a group may have many thousands);
// anything else about members falls back to applying the whole PATCH to the
// group with its members loaded and planning the difference. Every member
// added is checked to be a user of the site.
func planGroupPatch(view *store.Tx, g *models.DirectoryGroup, stored map[string]any, req *scim.PatchRequest) (map[string]any, []memberOp, error) {
	var (
		rest    scim.PatchRequest
		restIdx []int
		ops     []memberOp
	)
	for i, op := range req.Operations {
		mo, other, ok, err := splitMemberOp(op)
		if err != nil {
			return nil, nil, scim.OperationError(i, op, err)
		}
		if !ok {
			return planGroupPatchLoaded(view, g, stored, req)
		}
		if mo != nil {
			ops = append(ops, *mo)
		}
		if other != nil {
			rest.Operations = append(rest.Operations, *other)
			restIdx = append(restIdx, i)
		}
	}
	doc := stored
	if len(rest.Operations) > 0 {
		res, err := scim.ApplyPatch(scim.Groups, stored, &rest)
		if err != nil {
			return nil, nil, scim.Renumber(err, restIdx)
		}
		doc = res.Resource
	}
	var toAdd []string
	for _, op := range ops {
		if op.kind == "add" || op.kind == "replace" {
			toAdd = append(toAdd, op.ids...)
		}
	}
	if len(toAdd) > scim.MaxMembers {
		return nil, nil, scim.InvalidValue("the PATCH adds more than %d members; at most %d are taken in one request", scim.MaxMembers, scim.MaxMembers)
	}
	if err := checkMembers(view, g.SiteID, toAdd); err != nil {
		return nil, nil, err
	}
	return doc, mergeMemberOps(ops), nil
}

// mergeMemberOps joins neighbouring adds, and neighbouring removes, into
// one change each (adds commute with adds, removes with removes): Entra
// and Okta send one operation per member, and the write transaction then
// runs one statement per thousand members instead of one per operation.
func mergeMemberOps(ops []memberOp) []memberOp {
	var out []memberOp
	for _, op := range ops {
		if n := len(out); n > 0 && op.kind == out[n-1].kind && (op.kind == "add" || op.kind == "remove") {
			out[n-1].ids = append(out[n-1].ids, op.ids...)
			continue
		}
		op.ids = slices.Clone(op.ids)
		out = append(out, op)
	}
	return out
}

// planGroupPatchLoaded applies the PATCH to the group document with all its
// members and plans the membership difference.
func planGroupPatchLoaded(view *store.Tx, g *models.DirectoryGroup, stored map[string]any, req *scim.PatchRequest) (map[string]any, []memberOp, error) {
	current, err := view.FindGroupMembers(g.SiteID, []string{g.ID})
	if err != nil {
		return nil, nil, err
	}
	doc := make(map[string]any, len(stored)+1)
	for k, v := range stored {
		doc[k] = v
	}
	if list := current[g.ID]; len(list) > 0 {
		members := make([]any, len(list))
		for i, m := range list {
			members[i] = map[string]any{"value": m.UserID, "display": m.Display, "type": "User"}
		}
		doc["members"] = members
	}
	res, err := scim.ApplyPatch(scim.Groups, doc, req)
	if err != nil {
		return nil, nil, err
	}
	for _, el := range scim.AsList(scim.LookupCI(res.Resource, "members")) {
		if em, ok := el.(map[string]any); ok {
			if t, ok := scim.LookupCI(em, "type").(string); ok && t != "" && !strings.EqualFold(t, "User") {
				return nil, nil, scim.InvalidValue("members must be users of this site: nested groups are not supported")
			}
		}
	}
	if err := checkMembers(view, g.SiteID, res.MembersAdded); err != nil {
		return nil, nil, err
	}
	var ops []memberOp
	if len(res.MembersRemoved) > 0 {
		ops = append(ops, memberOp{kind: "remove", ids: res.MembersRemoved})
	}
	if len(res.MembersAdded) > 0 {
		ops = append(ops, memberOp{kind: "add", ids: res.MembersAdded})
	}
	return res.Resource, ops, nil
}

// splitMemberOp classifies one operation: a direct member operation (mo),
// an operation for the rest of the group (other), both (a no-path value
// object with members and other attributes), or ok false when it touches
// members in a way that needs the members loaded.
func splitMemberOp(op scim.PatchOperation) (mo *memberOp, other *scim.PatchOperation, ok bool, err error) {
	kind := strings.ToLower(strings.TrimSpace(op.Op))
	path := strings.TrimSpace(op.Path)
	if path == "" {
		obj, isObj := op.Value.(map[string]any)
		if !isObj || kind == "remove" {
			return nil, &op, true, nil // ApplyPatch answers these
		}
		var membersKey string
		for k := range obj {
			if strings.EqualFold(k, "members") || strings.EqualFold(k, scim.GroupSchema+":members") {
				if membersKey != "" {
					return nil, nil, false, nil
				}
				membersKey = k
			}
		}
		if membersKey == "" {
			return nil, &op, true, nil
		}
		ids, simple, err := memberValues(obj[membersKey])
		if err != nil || !simple {
			return nil, nil, simple, err
		}
		mo = &memberOp{kind: kind, ids: ids}
		if kind == "replace" && ids == nil {
			mo.kind = "clear"
		}
		if len(obj) > 1 {
			restObj := make(map[string]any, len(obj)-1)
			for k, v := range obj {
				if k != membersKey {
					restObj[k] = v
				}
			}
			other = &scim.PatchOperation{Op: op.Op, Value: restObj}
		}
		return mo, other, true, nil
	}
	lower := strings.ToLower(path)
	lower = strings.TrimPrefix(lower, strings.ToLower(scim.GroupSchema)+":")
	switch {
	case lower == "members":
		switch kind {
		case "remove":
			if op.Value == nil {
				return &memberOp{kind: "clear"}, nil, true, nil
			}
			ids, simple, err := memberValues(op.Value)
			if err != nil || !simple {
				return nil, nil, simple, err
			}
			return &memberOp{kind: "remove", ids: ids}, nil, true, nil
		case "add", "replace":
			ids, simple, err := memberValues(op.Value)
			if err != nil || !simple {
				return nil, nil, simple, err
			}
			if kind == "replace" && len(ids) == 0 {
				return &memberOp{kind: "clear"}, nil, true, nil
			}
			return &memberOp{kind: kind, ids: ids}, nil, true, nil
		}
		return nil, &op, true, nil // an unknown op: ApplyPatch names it
	case strings.HasPrefix(lower, "members[") && kind == "remove":
		p, err := scim.ParsePath(scim.Groups, path)
		if err != nil {
			return nil, nil, false, err
		}
		if p.Sub != nil {
			return nil, nil, false, nil
		}
		ids, ok := valueEqualities(p.Filter)
		if !ok {
			return nil, nil, false, nil
		}
		return &memberOp{kind: "remove", ids: ids}, nil, true, nil
	case strings.HasPrefix(lower, "members"):
		return nil, nil, false, nil
	}
	return nil, &op, true, nil
}

// memberValues reads a list of members ([{"value": id, …}], one such
// object, or null) as IDs. simple is false for shapes the direct path does
// not take (no value, a bare string): the loaded path handles those.
func memberValues(v any) (ids []string, simple bool, err error) {
	var list []any
	switch v := v.(type) {
	case nil:
		return nil, true, nil
	case []any:
		list = v
	case map[string]any:
		list = []any{v}
	default:
		return nil, false, nil
	}
	ids = make([]string, 0, len(list))
	for _, el := range list {
		if el == nil {
			continue
		}
		m, ok := el.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		id, ok := scim.LookupCI(m, "value").(string)
		if !ok || strings.TrimSpace(id) == "" {
			return nil, false, nil
		}
		if t, ok := scim.LookupCI(m, "type").(string); ok && t != "" && !strings.EqualFold(t, "User") {
			return nil, true, scim.InvalidValue("members must be users of this site: nested groups are not supported")
		}
		ids = append(ids, id)
	}
	return ids, true, nil
}

// valueEqualities reads `value eq "a"` or an or-chain of such as IDs.
func valueEqualities(e filter.Expression) ([]string, bool) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		id, isString := e.CompareValue.(string)
		if e.Operator != filter.EQ || !isString || e.AttributePath.URIPrefix != nil || e.AttributePath.SubAttribute != nil ||
			!strings.EqualFold(e.AttributePath.AttributeName, "value") {
			return nil, false
		}
		return []string{id}, true
	case *filter.LogicalExpression:
		if !strings.EqualFold(string(e.Operator), "or") {
			return nil, false
		}
		l, ok := valueEqualities(e.Left)
		if !ok {
			return nil, false
		}
		r, ok := valueEqualities(e.Right)
		if !ok {
			return nil, false
		}
		return append(l, r...), true
	}
	return nil, false
}

// memberTracker applies membership changes to the database in order and
// keeps their net effect: a member added and removed again in one request
// is no change.
type memberTracker struct {
	siteID, groupID string
	added, removed  map[string]bool
	order           []string
}

func newMemberTracker(siteID, groupID string) *memberTracker {
	return &memberTracker{siteID: siteID, groupID: groupID, added: map[string]bool{}, removed: map[string]bool{}}
}

func (mt *memberTracker) noteAdded(ids []string) {
	for _, id := range ids {
		if mt.removed[id] {
			delete(mt.removed, id)
			continue
		}
		mt.added[id] = true
		mt.order = append(mt.order, id)
	}
}

func (mt *memberTracker) noteRemoved(ids []string) {
	for _, id := range ids {
		if mt.added[id] {
			delete(mt.added, id)
			continue
		}
		mt.removed[id] = true
		mt.order = append(mt.order, id)
	}
}

func (mt *memberTracker) add(tx *store.Tx, ids []string) error {
	added, err := tx.AddGroupMembers(mt.siteID, mt.groupID, ids)
	if err != nil {
		return err
	}
	mt.noteAdded(added)
	return nil
}

func (mt *memberTracker) remove(tx *store.Tx, ids []string) error {
	removed, err := tx.RemoveGroupMembers(mt.siteID, mt.groupID, ids)
	if err != nil {
		return err
	}
	mt.noteRemoved(removed)
	return nil
}

func (mt *memberTracker) removeAll(tx *store.Tx) error {
	removed, err := tx.RemoveAllGroupMembers(mt.siteID, mt.groupID)
	if err != nil {
		return err
	}
	mt.noteRemoved(removed)
	return nil
}

// replace makes ids the members: it removes the others and adds the new.
func (mt *memberTracker) replace(tx *store.Tx, ids []string) error {
	current, err := tx.GroupMemberIDs(mt.siteID, mt.groupID)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var gone []string
	for _, id := range current {
		if !want[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		if err := mt.remove(tx, gone); err != nil {
			return err
		}
	}
	return mt.add(tx, ids)
}

// net returns the members added and removed overall, in the order first seen.
func (mt *memberTracker) net() (added, removed []string) {
	seen := map[string]bool{}
	for _, id := range mt.order {
		if seen[id] {
			continue
		}
		seen[id] = true
		switch {
		case mt.added[id]:
			added = append(added, id)
		case mt.removed[id]:
			removed = append(removed, id)
		}
	}
	return added, removed
}

// apply runs a plan of membership changes in order.
func (mt *memberTracker) apply(tx *store.Tx, ops []memberOp) error {
	for _, op := range ops {
		var err error
		switch op.kind {
		case "add":
			err = mt.add(tx, op.ids)
		case "remove":
			err = mt.remove(tx, op.ids)
		case "clear":
			err = mt.removeAll(tx)
		case "replace":
			err = mt.replace(tx, op.ids)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
