package cimd

import (
	"container/list"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

// entry is a cached resolution: a client, or the error of a failed fetch.
type entry struct {
	id      string
	client  *registry.Client // nil when err is set
	err     error
	fetched time.Time
	expires time.Time
	stale   time.Time // until when the client may stand in for a failed fetch
}

// cache is a bounded LRU map of resolutions. Expired entries stay until
// they are evicted, so that a stale document can stand in when a fetch
// fails.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front is the most recently used; values are *entry
	items map[string]*list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// get returns the entry for id, live or expired, or nil.
func (c *cache) get(id string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[id]
	if el == nil {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry)
}

// put stores e, evicting the least recently used entries beyond max.
func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[e.id]; el != nil {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.items[e.id] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*entry).id)
	}
}

// remove drops id.
func (c *cache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[id]; el != nil {
		c.order.Remove(el)
		delete(c.items, id)
	}
}

// len returns the number of entries.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// ttlOf returns how long a response may be cached: 0 for no-store,
// no-cache or max-age=0; else s-maxage, max-age, or Expires relative to
// Date (or now), else def. ok is false when the headers gave no lifetime.
func ttlOf(h http.Header, now time.Time) (ttl time.Duration, ok bool) {
	var maxAge, sMaxAge = -1, -1
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				maxAge = parseSeconds(val)
			case "s-maxage":
				sMaxAge = parseSeconds(val)
			}
		}
	}
	switch {
	case sMaxAge >= 0:
		return time.Duration(sMaxAge) * time.Second, true
	case maxAge >= 0:
		return time.Duration(maxAge) * time.Second, true
	}
	if h.Get("Expires") == "" {
		return 0, false
	}
	exp, err := http.ParseTime(h.Get("Expires"))
	if err != nil {
		return 0, true // an invalid Expires means already expired (RFC 9111 §5.3)
	}
	base := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		base = d
	}
	if ttl = exp.Sub(base); ttl < 0 {
		ttl = 0
	}
	return ttl, true
}

// parseSeconds parses a delta-seconds value, saturating at a year; -1 when
// it is not a number.
func parseSeconds(s string) int {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 365 * 24 * 3600
		}
		return -1
	}
	return int(min(n, 365*24*3600))
}
