package authz

import (
	"sync"
	"time"
)

// DefaultTokenCacheSize is how many verified tokens a Decider remembers.
const DefaultTokenCacheSize = 16384

const cacheShards = 16

// tokenCache remembers tokens whose signature, type, issuer and times were
// verified, keyed by the token's SHA-256 (the cache never holds a token), so
// a repeated token skips the ECDSA verification. Entries are used only until
// the token expires. It is sharded to keep lock contention low; when a shard
// is full its expired entries are swept and, if that is not enough, an
// eighth of it is dropped at random.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*verified
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*verified)
	}
	return c
}

func (c *tokenCache) shard(key *[32]byte) *cacheShard {
	return &c.shards[key[0]%cacheShards]
}

// get returns the verified token of key if it is cached and not expired.
func (c *tokenCache) get(key *[32]byte, now time.Time) *verified {
	s := c.shard(key)
	s.mu.RLock()
	v := s.m[*key]
	s.mu.RUnlock()
	if v == nil || !now.Before(v.validTo) {
		return nil
	}
	return v
}

// put remembers a verified token.
func (c *tokenCache) put(key *[32]byte, v *verified, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.perShard {
		for k, e := range s.m {
			if !now.Before(e.validTo) {
				delete(s.m, k)
			}
		}
	}
	if len(s.m) >= c.perShard {
		drop := max(c.perShard/8, 1)
		for k := range s.m { // map order is random enough for eviction
			delete(s.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	s.m[*key] = v
}

// len returns the number of cached tokens.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
