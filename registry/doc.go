// Package registry keeps mcp-authz's clients, authorization codes, refresh
// tokens, consents, signing keys, users and revocations in an in-memory index
// made durable by a write-ahead log and snapshots.
package registry
