package oauth

import (
	"slices"
	"sync"
	"time"
)

// Bounds on the in-memory login state. Only a signed-in browser holds any:
// a sign-in needs a password and passes the login rate limit, so a flood
// of page loads costs no memory (the login page keeps the request in its
// form, pages.go). Each subject keeps its newest sessions and each session
// its newest pending authorizations; past the global bounds, which only
// many signed-in users together can reach, the entries closest to expiry
// are dropped.
const (
	maxPending            = 10000
	maxSessions           = 10000
	maxPendingPerSession  = 16
	maxSessionsPerSubject = 32
)

// session is a signed-in browser on the authorization pages.
type session struct {
	id      string
	subject string
	prev    string // the cookie value this session replaced at sign-in
	expires time.Time
}

// pendingAuth is an authorization request of a signed-in browser waiting
// for the user's consent, found by the id carried in the page's form.
type pendingAuth struct {
	id        string
	csrf      string
	sessionID string
	req       authRequest
	expires   time.Time
}

// flowStore keeps sessions and pending authorizations in memory.
type flowStore struct {
	mu       sync.Mutex
	pending  map[string]*pendingAuth
	sessions map[string]*session
}

func newFlowStore() *flowStore {
	return &flowStore{pending: map[string]*pendingAuth{}, sessions: map[string]*session{}}
}

// session returns a copy of the live session with the given id, or nil.
func (f *flowStore) session(id string, now time.Time) *session {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	if s == nil || !now.Before(s.expires) {
		return nil
	}
	c := *s
	return &c
}

// newSession signs subject in, replacing the session or anonymous cookie
// value oldID (a new id on sign-in prevents session fixation); pending
// authorizations of a replaced session move to the new one. A subject's
// oldest session ends when it has too many.
func (f *flowStore) newSession(oldID, subject string, now time.Time, ttl time.Duration) *session {
	s := &session{id: randomToken(sessionBytes), subject: subject, prev: oldID,
		expires: now.Add(ttl)}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, oldID)
	dropOldest(f.sessions, maxSessionsPerSubject-1,
		func(o *session) bool { return o.subject == subject },
		func(o *session) time.Time { return o.expires })
	if len(f.sessions) >= maxSessions {
		evict(f.sessions, now, func(s *session) time.Time { return s.expires })
	}
	f.sessions[s.id] = s
	for _, p := range f.pending {
		if p.sessionID == oldID && oldID != "" {
			p.sessionID = s.id
		}
	}
	c := *s
	return &c
}

// endSession removes a session.
func (f *flowStore) endSession(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, id)
}

// addPending stores a new pending authorization for the session, dropping
// the session's oldest when it has too many.
func (f *flowStore) addPending(req authRequest, sessionID string, now time.Time,
	ttl time.Duration) pendingAuth {
	p := &pendingAuth{
		id:        randomToken(flowIDBytes),
		csrf:      randomToken(csrfBytes),
		sessionID: sessionID,
		req:       req,
		expires:   now.Add(ttl),
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dropOldest(f.pending, maxPendingPerSession-1,
		func(o *pendingAuth) bool { return o.sessionID == sessionID },
		func(o *pendingAuth) time.Time { return o.expires })
	if len(f.pending) >= maxPending {
		evict(f.pending, now, func(p *pendingAuth) time.Time { return p.expires })
	}
	f.pending[p.id] = p
	return *p
}

// pendingAuth returns a copy of the live pending authorization id, or nil.
func (f *flowStore) pendingAuth(id string, now time.Time) *pendingAuth {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[id]
	if p == nil || !now.Before(p.expires) {
		delete(f.pending, id)
		return nil
	}
	c := *p
	return &c
}

// take removes pending id and returns it, so that a consent is acted on once.
func (f *flowStore) take(id string, now time.Time) *pendingAuth {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[id]
	delete(f.pending, id)
	if p == nil || !now.Before(p.expires) {
		return nil
	}
	return p
}

// dropOldest deletes the entries of m that match, those closest to expiry
// first, until at most keep of them are left.
func dropOldest[V any](m map[string]V, keep int, match func(V) bool,
	expires func(V) time.Time) {
	var keys []string
	for k, v := range m {
		if match(v) {
			keys = append(keys, k)
		}
	}
	if len(keys) <= keep {
		return
	}
	slices.SortFunc(keys, func(a, b string) int { return expires(m[a]).Compare(expires(m[b])) })
	for _, k := range keys[:len(keys)-keep] {
		delete(m, k)
	}
}

// evict drops the expired entries of m and, when none had expired, the
// tenth of the entries closest to expiry. It runs only when m is full.
func evict[V any](m map[string]V, now time.Time, expires func(V) time.Time) {
	n := len(m)
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	if len(m) < n || n == 0 {
		return
	}
	times := make([]time.Time, 0, n)
	for _, v := range m {
		times = append(times, expires(v))
	}
	slices.SortFunc(times, time.Time.Compare)
	cut := times[n/10]
	for k, v := range m {
		if !expires(v).After(cut) {
			delete(m, k)
		}
	}
}
