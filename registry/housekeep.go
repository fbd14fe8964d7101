package registry

import (
	"context"
	"fmt"
	"time"
)

// Swept counts the records Housekeep removed.
type Swept struct {
	Codes         int
	RefreshTokens int
	Revocations   int
}

// housekeepBatch bounds the deletions made by one Update of Housekeep.
const housekeepBatch = 1000

// Housekeep removes authorization codes, refresh tokens and revocation
// entries that expired before now. Clients are never removed for expiry or
// idleness: a connector keeps its registration however long it sleeps.
// Candidates are found on the read view without blocking writers, then
// deleted in Updates of at most a thousand records, each checking again.
func (s *Store) Housekeep(ctx context.Context, now time.Time) (Swept, error) {
	var sw Swept
	view := s.layers()
	tables := []struct {
		table   string
		count   *int
		expired func(any) bool
	}{
		{tableCodes, &sw.Codes,
			func(o any) bool { return o.(*AuthCode).ExpiresAt.Before(now) }},
		{tableRefreshTokens, &sw.RefreshTokens,
			func(o any) bool { return o.(*RefreshToken).ExpiresAt.Before(now) }},
		{tableRevocations, &sw.Revocations,
			func(o any) bool { return o.(*Revocation).ExpiresAt.Before(now) }},
	}
	for _, tb := range tables {
		keys, err := expiredKeys(view, tb.table, tb.expired)
		if err != nil {
			return sw, err
		}
		for len(keys) > 0 {
			n := min(len(keys), housekeepBatch)
			deleted, err := s.deleteExpired(ctx, tb.table, keys[:n], tb.expired)
			*tb.count += deleted
			if err != nil {
				return sw, fmt.Errorf("removing expired %s: %w", tb.table, err)
			}
			keys = keys[n:]
		}
	}
	return sw, nil
}

// expiredKeys lists the records of table that expired, as key objects.
func expiredKeys(st layers, table string, expired func(any) bool) ([]any, error) {
	var out []any
	st.scan(table, func(obj any) bool {
		if expired(obj) {
			out = append(out, obj)
		}
		return true
	})
	return out, nil
}

// deleteExpired deletes the records whose keys are those of objs if they are
// still there and still expired.
func (s *Store) deleteExpired(ctx context.Context, table string, objs []any,
	expired func(any) bool) (int, error) {
	var n int
	err := s.Update(ctx, func(tx *Txn) error {
		n = 0
		for _, o := range objs {
			cur := tx.layers().current(table, o)
			if cur == nil || !expired(cur) {
				continue
			}
			if err := tx.deleteObj(table, cur); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) housekeepLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.HousekeepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sw, err := s.Housekeep(ctx, s.opts.Now())
		if err != nil && ctx.Err() == nil {
			s.log.Warn("housekeeping failed", "err", err)
		}
		if sw != (Swept{}) {
			s.log.Info("removed expired records", "codes", sw.Codes,
				"refresh_tokens", sw.RefreshTokens, "revocations", sw.Revocations)
		}
	}
}
