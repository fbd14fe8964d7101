// Package cimd resolves OAuth Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document, used by the MCP
// authorization specification from revision 2025-11-25): a client_id that is
// an https URL names a JSON document, hosted by the client, that holds its
// registration metadata. The authorization server fetches the document
// instead of keeping a registration.
//
// Fetching a URL that any caller of /authorize chooses is a server-side
// request forgery risk, so a Resolver is deliberately narrow:
//
//   - The URL must be https, with a host, a path other than "/", no user
//     info, no fragment and no "." or ".." segments (also percent-encoded);
//     a query is allowed. Plain http is never fetched, not even when
//     private addresses are allowed: tests serve the document over TLS and
//     trust the test certificate through Options.RootCAs.
//   - The host is looked up first, and the fetch is refused before any
//     connection is made when any of its addresses is loopback, private
//     (RFC 1918, IPv6 unique local), link-local, unspecified, multicast,
//     shared (CGNAT, 100.64.0.0/10), reserved or used for documentation.
//     IPv4 addresses inside NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
//     addresses are judged by the IPv4 address they carry. The connection
//     then goes to exactly the vetted addresses, so a second DNS answer
//     (DNS rebinding) cannot redirect it. Options.AllowPrivate lifts the
//     address check for tests and private deployments.
//   - No proxy from the environment is used. Redirects are followed only
//     within the same origin (scheme, host and port), at most three times;
//     a redirect to another host fails the fetch.
//   - The whole fetch (lookup, connection, TLS, headers and body) has one
//     deadline (Options.Timeout), the body a size limit (Options.MaxBytes),
//     and only status 200 with a JSON (or absent) content type counts.
//   - Operators can allow or deny domains (exact names or "*.example.com"
//     for every subdomain, not the apex) and pre-seed documents that are
//     never fetched, for clients whose documents a data centre cannot
//     reach. The deny list applies to seeded documents too; the allow list
//     does not need to name them.
//
// A fetched document is validated before use: client_id must equal the URL
// exactly (no normalisation), redirect_uris must be present and valid
// (Options.ValidateRedirectURI), and the client must be public: a shared
// secret cannot be published in a document, so client_secret and the
// client_secret_* methods are refused, and private_key_jwt, which this
// server does not support, is refused with a message saying so. A missing
// token_endpoint_auth_method means none. Unknown members are ignored;
// descriptive members that are malformed (a client_name with control
// characters, a logo_uri that is not a URL) are dropped rather than failing
// the client, since they are shown only as unverified text.
//
// Documents are cached in a bounded LRU cache for as long as the response
// allows: Cache-Control no-store, no-cache or max-age=0 are not cached,
// s-maxage or max-age set the lifetime, else Expires (relative to Date),
// else Options.DefaultTTL; the result is clamped to [MinTTL, MaxTTL].
// Failed fetches are remembered for Options.ErrorTTL so that a broken host
// is not fetched on every request, and when a fetch fails for a network
// reason an expired document no older than Options.StaleIfError is used
// instead, so that a document host's outage does not break token refreshes.
// Concurrent resolutions of one URL share a single fetch, and at most
// Options.MaxConcurrent fetches run at once.
package cimd
