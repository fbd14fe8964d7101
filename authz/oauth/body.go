package oauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Request bodies. Every endpoint that reads a body reads it here: forms
// (token, revocation, introspection, the authorization pages) through
// parseFormBody, JSON (registration and its management) through
// readBodyLimited. A body over the limit gets the same answer everywhere:
// HTTP 413 with the endpoint's generic OAuth error code and a description
// naming the limit in bytes. 413 rather than the 400 that RFC 6749 §5.2
// makes the default, because the request is refused for its size alone,
// which HTTP names exactly; the JSON body keeps the OAuth shape, so a
// client that reads only the body still learns what went wrong.

// maxFormBody bounds a form body: a token, revocation or introspection
// request, or a post of the authorization and consent pages.
const maxFormBody = 64 << 10

// bodyError is the answer to a request body that could not be read: 413
// naming limit when it is too large, else 400 with desc. code is the
// endpoint's OAuth error code (invalid_request, or invalid_client_metadata
// at registration).
func bodyError(err error, limit int64, code, desc string) *oauthError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return newError(http.StatusRequestEntityTooLarge, code,
			fmt.Sprintf("the request body is larger than %d bytes", limit))
	}
	return newError(http.StatusBadRequest, code, desc)
}

// parseFormBody parses r's query and, for a POST, its form body of at most
// maxFormBody bytes (r.Form, r.PostForm).
func parseFormBody(w http.ResponseWriter, r *http.Request) *oauthError {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return bodyError(err, maxFormBody, errInvalidRequest,
			"the request body is not a valid form")
	}
	return nil
}

// readBodyLimited reads r's whole body, of at most limit bytes; code is the
// endpoint's OAuth error code for a body that cannot be read.
func readBodyLimited(w http.ResponseWriter, r *http.Request, limit int64,
	code string) ([]byte, *oauthError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, bodyError(err, limit, code, "the request body could not be read")
	}
	return body, nil
}
