package registry

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/hashicorp/go-memdb"
)

// Table names of the memdb schema.
const (
	tableClients       = "clients"
	tableCodes         = "codes"
	tableRefreshTokens = "refresh_tokens"
	tableConsents      = "consents"
	tableSigningKeys   = "signing_keys"
	tableUsers         = "users"
	tableRevocations   = "revocations"
)

// Index names of the memdb schema. memdb requires the primary index of every
// table to be called "id".
const (
	indexID      = "id"        // primary key of every table
	indexGrantID = "grant_id"  // refresh_tokens by GrantID
	indexClient  = "client_id" // codes, refresh_tokens, consents by ClientID
)

// schema returns the memdb schema of the registry. Keys are built by the
// indexers below rather than memdb's reflection-based ones: they are faster
// to build during rehydration and unique keys cost no allocation to look up.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableClients: {
			Name: tableClients,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*Client).ID }),
			},
		},
		tableCodes: {
			Name: tableCodes,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*AuthCode).Hash }),
				indexClient: multiIndex(indexClient,
					func(o any) string { return o.(*AuthCode).ClientID }),
			},
		},
		tableRefreshTokens: {
			Name: tableRefreshTokens,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*RefreshToken).Hash }),
				indexGrantID: multiIndex(indexGrantID,
					func(o any) string { return o.(*RefreshToken).GrantID }),
				indexClient: multiIndex(indexClient,
					func(o any) string { return o.(*RefreshToken).ClientID }),
			},
		},
		tableConsents: {
			Name: tableConsents,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: consentIndexer{}},
				indexClient: multiIndex(indexClient,
					func(o any) string { return o.(*Consent).ClientID }),
			},
		},
		tableSigningKeys: {
			Name: tableSigningKeys,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*SigningKey).ID }),
			},
		},
		tableUsers: {
			Name: tableUsers,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*User).Name }),
			},
		},
		tableRevocations: {
			Name: tableRevocations,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: uniqueIndex(func(o any) string { return o.(*Revocation).Key }),
			},
		},
	}}
}

func uniqueIndex(field func(any) string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: indexID, Unique: true, Indexer: rawIndexer{field}}
}

func multiIndex(name string, field func(any) string) *memdb.IndexSchema {
	return &memdb.IndexSchema{
		Name: name, AllowMissing: true, Indexer: prefixedIndexer{field},
	}
}

// rawIndexer keys a unique index by the bytes of a string field. The key
// aliases the string (strings and stored records are immutable), so neither
// inserting nor looking up allocates. Only exact lookups are made on it.
type rawIndexer struct{ field func(any) string }

func (r rawIndexer) FromObject(obj any) (bool, []byte, error) {
	if t, ok := obj.(*tombstone); ok {
		return true, unsafe.Slice(unsafe.StringData(t.key), len(t.key)), nil
	}
	s := r.field(obj)
	if s == "" {
		return false, nil, nil
	}
	return true, unsafe.Slice(unsafe.StringData(s), len(s)), nil
}

func (rawIndexer) FromArgs(args ...any) ([]byte, error) {
	s, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice(unsafe.StringData(s), len(s)), nil
}

// prefixedIndexer keys an index by a string field preceded by its length as
// a uvarint, so that one value is never a prefix of another: memdb appends
// the primary key to non-unique keys and finds them by prefix.
type prefixedIndexer struct{ field func(any) string }

func (p prefixedIndexer) FromObject(obj any) (bool, []byte, error) {
	if _, ok := obj.(*tombstone); ok {
		return false, nil, nil // a tombstone is only in the primary index
	}
	s := p.field(obj)
	if s == "" {
		return false, nil, nil
	}
	return true, appendPrefixed(nil, s), nil
}

func (prefixedIndexer) FromArgs(args ...any) ([]byte, error) {
	s, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return appendPrefixed(nil, s), nil
}

// consentIndexer keys consents by (Subject, ClientID), each length-prefixed.
// PrefixFromArgs with the subject alone lists a subject's consents.
type consentIndexer struct{}

func (consentIndexer) FromObject(obj any) (bool, []byte, error) {
	if t, ok := obj.(*tombstone); ok {
		return true, []byte(t.key), nil
	}
	c := obj.(*Consent)
	if c.Subject == "" || c.ClientID == "" {
		return false, nil, nil
	}
	return true, appendPrefixed(appendPrefixed(nil, c.Subject), c.ClientID), nil
}

func (consentIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("consent key needs 2 arguments, got %d", len(args))
	}
	sub, ok1 := args[0].(string)
	cid, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("consent key arguments must be strings")
	}
	return appendPrefixed(appendPrefixed(nil, sub), cid), nil
}

func (consentIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	s, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return appendPrefixed(nil, s), nil
}

func appendPrefixed(b []byte, s string) []byte {
	if b == nil {
		// Room for a second key or the primary key memdb appends.
		b = make([]byte, 0, binary.MaxVarintLen64+len(s)+64)
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// oneString returns the single string argument (a string or a *string) of
// a lookup.
func oneString(args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("index needs 1 argument, got %d", len(args))
	}
	switch s := args[0].(type) {
	case string:
		return s, nil
	case *string:
		return *s, nil
	}
	return "", fmt.Errorf("index argument must be a string, got %T", args[0])
}
