// Package authz decides whether a request may reach an MCP server, and mints
// and verifies the access tokens that decision relies on.
package authz
