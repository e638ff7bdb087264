package store

import "slices"

// OnOutbox sets the hook that hears, after commit, which sites got new
// outbox items (or new service account credentials, which may let waiting
// items go), so the sync worker wakes at once (SPEC 6.1). Set it once,
// before the store is used concurrently.
func (s *Store) OnOutbox(hook func(siteIDs []string)) { s.outboxHook = hook }

// noteOutbox remembers that tx added an outbox item for siteID: announced
// at commit, or at once for a handle outside a transaction.
func (tx *Tx) noteOutbox(siteID string) {
	if !tx.inTx {
		tx.s.outboxAdded([]string{siteID})
		return
	}
	if !slices.Contains(tx.outboxSites, siteID) {
		tx.outboxSites = append(tx.outboxSites, siteID)
	}
}

func (s *Store) outboxAdded(siteIDs []string) {
	if s.outboxHook != nil && len(siteIDs) > 0 {
		s.outboxHook(siteIDs)
	}
}
