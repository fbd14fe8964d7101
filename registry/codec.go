package registry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Entry kinds of a batch record and of a snapshot. They are stable: a number
// is never reused for another meaning. A put carries the record as JSON; a
// delete carries the record's primary key as a JSON array of strings.
const (
	kindClientPut        uint8 = 1
	kindClientDelete     uint8 = 2
	kindCodePut          uint8 = 3
	kindCodeDelete       uint8 = 4
	kindRefreshPut       uint8 = 5
	kindRefreshDelete    uint8 = 6
	kindConsentPut       uint8 = 7
	kindConsentDelete    uint8 = 8
	kindKeyPut           uint8 = 9
	kindKeyDelete        uint8 = 10
	kindUserPut          uint8 = 11
	kindUserDelete       uint8 = 12
	kindRevocationPut    uint8 = 13
	kindRevocationDelete uint8 = 14

	maxKind = kindRevocationDelete
)

// tableCodec ties a memdb table to its entry kinds.
type tableCodec struct {
	table    string
	put, del uint8
	// decode unmarshals a put entry's JSON into a new record.
	decode func([]byte) (any, error)
	// key returns the primary key of a record; keyObj builds a record
	// holding only that key, which memdb's Delete accepts.
	key    func(any) []string
	keyObj func([]string) (any, error)
}

var codecs = []*tableCodec{
	{
		table: tableClients, put: kindClientPut, del: kindClientDelete,
		decode: decodeJSON[Client],
		key:    func(o any) []string { return []string{o.(*Client).ID} },
		keyObj: oneKey(func(k string) any { return &Client{ID: k} }),
	},
	{
		table: tableCodes, put: kindCodePut, del: kindCodeDelete,
		decode: decodeJSON[AuthCode],
		key:    func(o any) []string { return []string{o.(*AuthCode).Hash} },
		keyObj: oneKey(func(k string) any { return &AuthCode{Hash: k} }),
	},
	{
		table: tableRefreshTokens, put: kindRefreshPut, del: kindRefreshDelete,
		decode: decodeJSON[RefreshToken],
		key:    func(o any) []string { return []string{o.(*RefreshToken).Hash} },
		keyObj: oneKey(func(k string) any { return &RefreshToken{Hash: k} }),
	},
	{
		table: tableConsents, put: kindConsentPut, del: kindConsentDelete,
		decode: decodeJSON[Consent],
		key: func(o any) []string {
			c := o.(*Consent)
			return []string{c.Subject, c.ClientID}
		},
		keyObj: func(k []string) (any, error) {
			if len(k) != 2 || k[0] == "" || k[1] == "" {
				return nil, fmt.Errorf("consent key %q is not a subject and a client id", k)
			}
			return &Consent{Subject: k[0], ClientID: k[1]}, nil
		},
	},
	{
		table: tableSigningKeys, put: kindKeyPut, del: kindKeyDelete,
		decode: decodeJSON[SigningKey],
		key:    func(o any) []string { return []string{o.(*SigningKey).ID} },
		keyObj: oneKey(func(k string) any { return &SigningKey{ID: k} }),
	},
	{
		table: tableUsers, put: kindUserPut, del: kindUserDelete,
		decode: decodeJSON[User],
		key:    func(o any) []string { return []string{o.(*User).Name} },
		keyObj: oneKey(func(k string) any { return &User{Name: k} }),
	},
	{
		table: tableRevocations, put: kindRevocationPut, del: kindRevocationDelete,
		decode: decodeJSON[Revocation],
		key:    func(o any) []string { return []string{o.(*Revocation).Key} },
		keyObj: oneKey(func(k string) any { return &Revocation{Key: k} }),
	},
}

var (
	codecByTable = func() map[string]*tableCodec {
		m := map[string]*tableCodec{}
		for _, c := range codecs {
			m[c.table] = c
		}
		return m
	}()
	codecByKind = func() (a [maxKind + 1]*tableCodec) {
		for _, c := range codecs {
			a[c.put], a[c.del] = c, c
		}
		return a
	}()
)

func decodeJSON[T any](b []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

func oneKey(mk func(string) any) func([]string) (any, error) {
	return func(k []string) (any, error) {
		if len(k) != 1 || k[0] == "" {
			return nil, fmt.Errorf("key %q is not one non-empty string", k)
		}
		return mk(k[0]), nil
	}
}

// entry is one change of a batch, or one record of a snapshot.
type entry struct {
	kind uint8
	body []byte
}

// encodeBatch encodes the changes of one transaction as a version 1 batch
// payload: a uvarint entry count, then for each entry its kind and the length
// of its body as uvarints, then the body.
func encodeBatch(changes memdb.Changes) ([]byte, error) {
	b := binary.AppendUvarint(make([]byte, 0, 256*len(changes)), uint64(len(changes)))
	for _, ch := range changes {
		c := codecByTable[ch.Table]
		var (
			kind uint8
			body []byte
			err  error
		)
		if ch.After != nil {
			kind = c.put
			body, err = json.Marshal(ch.After)
		} else {
			kind = c.del
			body, err = json.Marshal(c.key(ch.Before))
		}
		if err != nil {
			return nil, fmt.Errorf("encoding %s change: %w", ch.Table, err)
		}
		b = appendEntry(b, kind, body)
	}
	return b, nil
}

func appendEntry(b []byte, kind uint8, body []byte) []byte {
	b = binary.AppendUvarint(b, uint64(kind))
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

var errBadEntry = errors.New("malformed entry")

// decodeBatch splits a version 1 batch payload into its entries. The bodies
// alias payload.
func decodeBatch(payload []byte) ([]entry, error) {
	n, k := binary.Uvarint(payload)
	if k <= 0 || n > uint64(len(payload)) {
		return nil, fmt.Errorf("batch entry count: %w", errBadEntry)
	}
	p := payload[k:]
	out := make([]entry, 0, n)
	for i := uint64(0); i < n; i++ {
		e, rest, err := readEntry(p)
		if err != nil {
			return nil, fmt.Errorf("batch entry %d: %w", i, err)
		}
		out = append(out, e)
		p = rest
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d bytes after the last batch entry: %w", len(p), errBadEntry)
	}
	return out, nil
}

// readEntry reads one entry from p and returns the rest.
func readEntry(p []byte) (entry, []byte, error) {
	kind, k := binary.Uvarint(p)
	if k <= 0 {
		return entry{}, nil, errBadEntry
	}
	p = p[k:]
	if kind == 0 || kind > uint64(maxKind) {
		return entry{}, nil, fmt.Errorf("unknown entry kind %d: %w", kind, errBadEntry)
	}
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return entry{}, nil, fmt.Errorf("entry length: %w", errBadEntry)
	}
	p = p[k:]
	return entry{kind: uint8(kind), body: p[:n:n]}, p[n:], nil
}

// apply makes the change of e in tx. A delete of a record that is not there
// is not an error, so that replaying an entry twice is harmless.
func apply(st layers, e entry) error {
	c := codecByKind[e.kind]
	if e.kind == c.put {
		obj, err := c.decode(e.body)
		if err != nil {
			return fmt.Errorf("decoding %s entry: %w", c.table, err)
		}
		if err := st.put(c.table, obj); err != nil {
			return fmt.Errorf("inserting %s entry: %w", c.table, err)
		}
		return nil
	}
	var key []string
	if err := json.Unmarshal(e.body, &key); err != nil {
		return fmt.Errorf("decoding %s delete: %w", c.table, err)
	}
	obj, err := c.keyObj(key)
	if err != nil {
		return fmt.Errorf("decoding %s delete: %w", c.table, err)
	}
	cur := st.current(c.table, obj)
	if cur == nil {
		return nil
	}
	if err := st.remove(c.table, cur); err != nil {
		return fmt.Errorf("deleting %s entry: %w", c.table, err)
	}
	return nil
}
