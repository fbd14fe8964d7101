// Package authz decides whether a request may reach an MCP server, and mints
// and verifies the access tokens that decision relies on.
//
// The pieces, each in its own file:
//
//   - Config (config.go): the issuer, the protected resources and token
//     lifetimes, with WithDefaults to normalise and Validate to check it, and
//     ResourceMetadataURL for RFC 9728 discovery.
//   - Keys (keys.go): ES256 signing keys kept in the registry, created on
//     first start, rotated with an overlap and published as a JWKS. Readers
//     see an immutable key set through an atomic pointer.
//   - Tokens (token.go): RFC 9068 JWT access tokens ("typ" at+jwt), minted
//     with a jti and a grant id so one token or a whole grant can be
//     revoked, and verified strictly: ES256 only, a known kid, the exact
//     issuer, exp and nbf with a small leeway.
//   - Decider (decision.go): the ext_authz decision. It finds the resource
//     of a request (resource.go), extracts exactly one bearer token
//     (bearer.go), verifies it through a cache of verified tokens
//     (cache.go), and checks the audience, the client, revocations and
//     scopes against the registry's in-memory index on every call. It does
//     no I/O and answers every request with a Decision carrying a stable
//     Reason, never an error.
package authz
