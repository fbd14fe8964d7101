// Package ratelimit bounds how often one client address may call an
// endpoint, locks out a user name at an address after repeated failed
// logins, and finds the client address of a request behind trusted proxies.
//
// Limiter is a set of token buckets keyed by a string (usually Key of a
// client address). Each bucket holds up to Limit.Burst tokens and refills
// at Limit.PerMinute; a request takes one token or is refused with the time
// until the next token. Lockout counts failures per key within a window and
// locks the key for a while once they reach a threshold, doubling the lock
// on each consecutive lockout up to a maximum.
//
// Memory is bounded: each keeps at most a fixed number of keys. When full,
// entries that carry no information any more (a refilled bucket, an expired
// failure count) are dropped first, then the least recently seen half. An
// attacker who spreads requests over many addresses can therefore evict
// other addresses' state; that costs him nothing he could not get by using
// new addresses anyway.
//
// State is kept in process memory: every instance of a deployment limits on
// its own, and a restart forgets every bucket and lockout.
//
// ClientAddr trusts X-Forwarded-For only when the connection comes from a
// configured proxy, and then only the hops appended by trusted proxies: it
// walks the header from the right and takes the first address that is not a
// trusted proxy. IPv6 clients are keyed by their /64 prefix (Key), since one
// host usually holds a whole /64.
package ratelimit
