package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"idbridge/app/secret"
)

// sealedColumn names a column holding values sealed with the key ring, and
// the key columns whose values (joined with "/") are the row ID bound into
// each value's associated data. Every sealed column is listed here so that
// key rotation reaches all of them.
type sealedColumn struct {
	Table  string
	Keys   []string
	Column string
}

var sealedColumns = []sealedColumn{
	{Table: sitesTable, Keys: []string{"id"}, Column: sharedSecretColumn},
	{Table: serviceAccountsTable, Keys: []string{"site_id"}, Column: accountTokenColumn},
	{Table: serviceAccountsTable, Keys: []string{"site_id"}, Column: accountClientSecretColumn},
	{Table: serviceAccountsTable, Keys: []string{"site_id"}, Column: accountOrgAdminKeyColumn},
	{Table: ssoSettingsTable, Keys: []string{"site_id"}, Column: ssoSPKeyColumn},
	{Table: identityProviderTable, Keys: []string{"site_id", "id"}, Column: idpClientSecretColumn},
}

const (
	keyChecksTable  = "key_checks"
	keyCheckColumn  = "sealed"
	keyCheckPayload = "idbridge key check v1"
)

// CheckKeyRing refuses a key ring that does not match the database: a
// configured key whose check value fails to open (a different key under the
// same ID, or a corrupted one), or data sealed under a key ID the ring lacks.
// It then records a check value for the primary key if there is none yet,
// or marks it live again if the key had been retired. It never overwrites an
// existing check value.
func (s *Store) CheckKeyRing(ctx context.Context) error {
	type checkRow struct {
		KeyID     string
		Sealed    []byte
		RetiredAt *string
	}
	var rows []checkRow
	if err := s.db.WithContext(ctx).Raw(`SELECT key_id, sealed, CAST(retired_at AS TEXT) AS retired_at FROM key_checks ORDER BY key_id`).Scan(&rows).Error; err != nil {
		return fmt.Errorf("read key checks: %w", err)
	}
	inRing := map[string]bool{}
	for _, id := range s.ring.IDs() {
		inRing[id] = true
	}
	var problems []string
	primaryChecked, primaryRetired := false, false
	for _, r := range rows {
		if !inRing[r.KeyID] {
			if r.RetiredAt == nil {
				problems = append(problems, fmt.Sprintf("data in this database is sealed with encryption key %q, which IDBRIDGE_ENCRYPTION_KEYS does not contain", r.KeyID))
			}
			continue
		}
		plain, err := s.ring.Open(r.Sealed, secret.AD(keyChecksTable, keyCheckColumn, r.KeyID))
		if err != nil || !bytes.Equal(plain, []byte(keyCheckPayload)) {
			problems = append(problems, fmt.Sprintf("encryption key %q is not the key this database was sealed with (its check value does not open)", r.KeyID))
			continue
		}
		if r.KeyID == s.ring.PrimaryID() {
			primaryChecked = true
			primaryRetired = r.RetiredAt != nil
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	if primaryRetired {
		// A retired key put back in front seals again; while marked retired,
		// a ring without it would pass this check and fail to open its data.
		if err := s.db.WithContext(ctx).Exec(`UPDATE key_checks SET retired_at = NULL WHERE key_id = ?`, s.ring.PrimaryID()).Error; err != nil {
			return fmt.Errorf("record key check: %w", err)
		}
	}
	if primaryChecked {
		return nil
	}
	return s.recordKeyCheck(ctx)
}

func (s *Store) recordKeyCheck(ctx context.Context) error {
	primary := s.ring.PrimaryID()
	sealed, err := s.ring.Seal([]byte(keyCheckPayload), secret.AD(keyChecksTable, keyCheckColumn, primary))
	if err != nil {
		return fmt.Errorf("seal key check: %w", err)
	}
	// A concurrent replica may insert the same row; ON CONFLICT keeps the
	// first and never overwrites.
	err = s.db.WithContext(ctx).Exec(
		`INSERT INTO key_checks (key_id, sealed, created_at) VALUES (?, ?, ?) ON CONFLICT (key_id) DO NOTHING`,
		primary, sealed, s.Now()).Error
	if err != nil {
		return fmt.Errorf("record key check: %w", err)
	}
	return nil
}

// RotationResult counts what RotateKeys did.
type RotationResult struct {
	Scanned   int
	Rotated   int
	Retired   []string // key IDs no value is sealed with any more
	PrimaryID string
}

// RotateKeys re-seals every sealed value under the ring's primary key, in
// batches of batchSize rows per transaction. It is resumable: values already
// under the primary key are skipped, so a run stopped half-way simply
// continues on the next call. When every column is done, the check rows of
// the other keys are marked retired so the ring may drop them.
func (s *Store) RotateKeys(ctx context.Context, batchSize int, progress func(table string, rotated int)) (RotationResult, error) {
	if batchSize <= 0 {
		batchSize = 500
	}
	res := RotationResult{PrimaryID: s.ring.PrimaryID()}
	if err := s.recordKeyCheck(ctx); err != nil {
		return res, err
	}
	for _, col := range sealedColumns {
		var after []any
		for {
			n, rotated, last, err := s.rotateBatch(ctx, col, after, batchSize)
			if err != nil {
				return res, err
			}
			res.Scanned += n
			res.Rotated += rotated
			if progress != nil && rotated > 0 {
				progress(col.Table, rotated)
			}
			if n < batchSize {
				break
			}
			after = last
		}
	}
	var stale []string
	if err := s.db.WithContext(ctx).Raw(`SELECT key_id FROM key_checks WHERE key_id <> ? AND retired_at IS NULL`, res.PrimaryID).Scan(&stale).Error; err != nil {
		return res, fmt.Errorf("read key checks: %w", err)
	}
	if len(stale) > 0 {
		if err := s.db.WithContext(ctx).Exec(`UPDATE key_checks SET retired_at = ? WHERE key_id IN ? AND retired_at IS NULL`, s.Now(), stale).Error; err != nil {
			return res, fmt.Errorf("retire keys: %w", err)
		}
	}
	res.Retired = stale
	return res, nil
}

// rotateBatch re-seals up to limit rows after the key tuple `after`, in one
// transaction, and returns how many rows it read and the last key tuple.
func (s *Store) rotateBatch(ctx context.Context, col sealedColumn, after []any, limit int) (n, rotated int, last []any, err error) {
	keyList := strings.Join(col.Keys, ", ")
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s IS NOT NULL`, keyList, col.Column, col.Table, col.Column)
		args := []any{}
		if after != nil {
			q += fmt.Sprintf(` AND (%s) > (%s)`, keyList, placeholders(len(col.Keys)))
			args = append(args, after...)
		}
		q += fmt.Sprintf(` ORDER BY %s LIMIT %d`, keyList, limit)
		rows, err := tx.Raw(q, args...).Rows()
		if err != nil {
			return fmt.Errorf("read %s.%s: %w", col.Table, col.Column, err)
		}
		type item struct {
			keys   []any
			sealed []byte
		}
		var items []item
		for rows.Next() {
			keys := make([]string, len(col.Keys))
			dest := make([]any, 0, len(keys)+1)
			for i := range keys {
				dest = append(dest, &keys[i])
			}
			var sealed []byte
			dest = append(dest, &sealed)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
			k := make([]any, len(keys))
			for i := range keys {
				k[i] = keys[i]
			}
			items = append(items, item{keys: k, sealed: sealed})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		n = len(items)
		for _, it := range items {
			last = it.keys
			if !s.ring.NeedsRotation(it.sealed) {
				continue
			}
			rowID := joinKeys(it.keys)
			ad := secret.AD(col.Table, col.Column, rowID)
			plain, err := s.ring.Open(it.sealed, ad)
			if err != nil {
				return fmt.Errorf("open %s.%s of row %s: %w", col.Table, col.Column, rowID, err)
			}
			resealed, err := s.ring.Seal(plain, ad)
			if err != nil {
				return err
			}
			where := make([]string, len(col.Keys))
			for i, k := range col.Keys {
				where[i] = k + " = ?"
			}
			upd := fmt.Sprintf(`UPDATE %s SET %s = ? WHERE %s`, col.Table, col.Column, strings.Join(where, " AND "))
			if err := tx.Exec(upd, append([]any{resealed}, it.keys...)...).Error; err != nil {
				return fmt.Errorf("re-seal %s.%s of row %s: %w", col.Table, col.Column, rowID, err)
			}
			rotated++
		}
		return nil
	})
	return n, rotated, last, err
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func joinKeys(keys []any) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprint(k)
	}
	return strings.Join(parts, "/")
}
