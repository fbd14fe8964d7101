package cimd

import "errors"

// Kinds of resolution failure; every error of Resolve is an *Error whose
// Kind is one of them, so errors.Is(err, ErrAddressRefused) works.
var (
	// ErrInvalidURL: the client id is not a valid client id URL.
	ErrInvalidURL = errors.New("invalid client id URL")
	// ErrDomainRefused: the allow or deny list refuses the URL's host.
	ErrDomainRefused = errors.New("client id domain not allowed")
	// ErrAddressRefused: the host resolves to an address that is never
	// contacted (loopback, private, link-local and the like).
	ErrAddressRefused = errors.New("client id host resolves to a refused address")
	// ErrFetch: the document could not be fetched (lookup, connection,
	// timeout, status, size, content type or redirect).
	ErrFetch = errors.New("client metadata document could not be fetched")
	// ErrInvalidDocument: the document was fetched but is not acceptable.
	ErrInvalidDocument = errors.New("invalid client metadata document")
)

// Error is a resolution failure. Kind and Detail are safe to show the
// client; Err, the underlying cause (a network error, say), is for the log.
type Error struct {
	Kind   error
	Detail string
	Err    error
}

// Error returns the kind, the detail and the cause.
func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Public returns the kind and the detail, without the cause: the text to
// show the client.
func (e *Error) Public() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
