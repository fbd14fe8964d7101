package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The snapshot record encoding (version 1). Every record is its fields in
// the order of the Go struct, each encoded by its type:
//
//	string      uvarint byte length, bytes
//	[]string    uvarint count, then each string (a nil and an empty list
//	            are both count 0, read back as nil)
//	[]byte      like string
//	time.Time   one byte 0 for the zero time, else 1, varint Unix seconds,
//	            uvarint nanoseconds; read back in UTC
//
// Adding a field to a record type changes this encoding, so it needs a new
// snapshot format version; TestBinaryCodecCoversEveryField catches a field
// added without one.

type binWriter struct{ b []byte }

func (w *binWriter) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *binWriter) strs(ss []string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *binWriter) bytes(b []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(b)))
	w.b = append(w.b, b...)
}

func (w *binWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.b = binary.AppendVarint(w.b, t.Unix())
	w.b = binary.AppendUvarint(w.b, uint64(t.Nanosecond()))
}

// binReader decodes a record from s. Strings it returns share s's memory,
// so one allocation holds all the strings of a record.
type binReader struct {
	s   string
	err error
}

var errShortRecord = errors.New("record ends early")

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if c < 0x80 {
			r.s = r.s[i+1:]
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	r.err = errShortRecord
	return 0
}

func (r *binReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)) {
		r.err = errShortRecord
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

func (r *binReader) strs() []string {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.s)) {
		r.err = errShortRecord
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *binReader) bytes() []byte {
	s := r.str()
	if s == "" {
		return nil
	}
	return []byte(s)
}

func (r *binReader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	if len(r.s) == 0 {
		r.err = errShortRecord
		return time.Time{}
	}
	flag := r.s[0]
	r.s = r.s[1:]
	switch flag {
	case 0:
		return time.Time{}
	case 1:
	default:
		r.err = fmt.Errorf("time flag %d", flag)
		return time.Time{}
	}
	u := r.uvarint()
	sec := int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.err = fmt.Errorf("time nanoseconds %d", nsec)
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// end reports the first error, or bytes left over.
func (r *binReader) end() error {
	if r.err == nil && len(r.s) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.s))
	}
	return r.err
}

// encodeBinary appends the snapshot encoding of obj, a pointer to a record.
func encodeBinary(b []byte, obj any) []byte {
	w := binWriter{b: b}
	switch o := obj.(type) {
	case *Client:
		w.str(o.ID)
		w.str(o.SecretHash)
		w.time(o.SecretExpiresAt)
		w.strs(o.RedirectURIs)
		w.str(o.TokenEndpointAuthMethod)
		w.strs(o.GrantTypes)
		w.strs(o.ResponseTypes)
		w.str(o.Name)
		w.str(o.URI)
		w.str(o.LogoURI)
		w.str(o.Scope)
		w.str(o.ApplicationType)
		w.strs(o.Contacts)
		w.str(o.SoftwareID)
		w.str(o.SoftwareVersion)
		w.str(o.RegistrationTokenHash)
		w.time(o.CreatedAt)
		w.time(o.UpdatedAt)
		w.time(o.RevokedAt)
	case *AuthCode:
		w.str(o.Hash)
		w.str(o.ClientID)
		w.str(o.RedirectURI)
		w.str(o.Subject)
		w.str(o.Scope)
		w.str(o.Resource)
		w.str(o.CodeChallenge)
		w.str(o.GrantID)
		w.time(o.CreatedAt)
		w.time(o.ExpiresAt)
		w.time(o.UsedAt)
	case *RefreshToken:
		w.str(o.Hash)
		w.str(o.GrantID)
		w.str(o.ClientID)
		w.str(o.Subject)
		w.str(o.Scope)
		w.str(o.Resource)
		w.time(o.CreatedAt)
		w.time(o.ExpiresAt)
		w.time(o.RotatedAt)
		w.time(o.RevokedAt)
	case *Consent:
		w.str(o.Subject)
		w.str(o.ClientID)
		w.str(o.Scope)
		w.time(o.GrantedAt)
		w.str(o.Resource) // since snapshot version 2
	case *SigningKey:
		w.str(o.ID)
		w.str(o.Algorithm)
		w.bytes(o.PrivateKey)
		w.time(o.CreatedAt)
		w.time(o.RetireAt)
	case *User:
		w.str(o.Name)
		w.str(o.PasswordHash)
		w.time(o.CreatedAt)
	case *Revocation:
		w.str(o.Key)
		w.time(o.ExpiresAt)
		w.time(o.CreatedAt)
	default:
		panic(fmt.Sprintf("registry: no binary encoding for %T", obj))
	}
	return w.b
}

// decodeBinary decodes the record of table kind (a put kind) from s, written
// by snapshot format version.
func decodeBinary(kind uint8, s string, version uint32) (any, error) {
	r := binReader{s: s}
	var obj any
	switch kind {
	case kindClientPut:
		obj = &Client{
			ID: r.str(), SecretHash: r.str(), SecretExpiresAt: r.time(),
			RedirectURIs: r.strs(), TokenEndpointAuthMethod: r.str(), GrantTypes: r.strs(),
			ResponseTypes: r.strs(), Name: r.str(), URI: r.str(), LogoURI: r.str(),
			Scope: r.str(), ApplicationType: r.str(), Contacts: r.strs(), SoftwareID: r.str(),
			SoftwareVersion: r.str(), RegistrationTokenHash: r.str(), CreatedAt: r.time(),
			UpdatedAt: r.time(), RevokedAt: r.time(),
		}
	case kindCodePut:
		obj = &AuthCode{
			Hash: r.str(), ClientID: r.str(), RedirectURI: r.str(), Subject: r.str(),
			Scope: r.str(), Resource: r.str(), CodeChallenge: r.str(), GrantID: r.str(),
			CreatedAt: r.time(), ExpiresAt: r.time(), UsedAt: r.time(),
		}
	case kindRefreshPut:
		obj = &RefreshToken{
			Hash: r.str(), GrantID: r.str(), ClientID: r.str(), Subject: r.str(),
			Scope: r.str(), Resource: r.str(), CreatedAt: r.time(), ExpiresAt: r.time(),
			RotatedAt: r.time(), RevokedAt: r.time(),
		}
	case kindConsentPut:
		c := &Consent{Subject: r.str(), ClientID: r.str(), Scope: r.str(), GrantedAt: r.time()}
		if version >= 2 {
			c.Resource = r.str()
		}
		obj = c
	case kindKeyPut:
		obj = &SigningKey{
			ID: r.str(), Algorithm: r.str(), PrivateKey: r.bytes(), CreatedAt: r.time(),
			RetireAt: r.time(),
		}
	case kindUserPut:
		obj = &User{Name: r.str(), PasswordHash: r.str(), CreatedAt: r.time()}
	case kindRevocationPut:
		obj = &Revocation{Key: r.str(), ExpiresAt: r.time(), CreatedAt: r.time()}
	default:
		return nil, fmt.Errorf("entry kind %d in a snapshot: %w", kind, ErrCorrupt)
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decoding %s: %w: %w", codecByKind[kind].table, ErrCorrupt, err)
	}
	return obj, nil
}
