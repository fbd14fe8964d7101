package oauth

import (
	"slices"
	"sync"
	"time"
)

// Bounds on the in-memory login state, so that a flood of page loads cannot
// exhaust memory: past them the entries closest to expiry are dropped.
const (
	maxPending     = 10000
	maxSessions    = 10000
	maxLoginErrors = 5
)

// session is a browser's login on the authorization pages. Before login its
// subject is empty; it still binds pending authorizations to the browser.
type session struct {
	id      string
	subject string
	expires time.Time
}

// pendingAuth is an authorization request waiting for the user's login or
// consent, found by the id carried in the page's form.
type pendingAuth struct {
	id        string
	csrf      string
	sessionID string
	req       authRequest
	expires   time.Time
	failures  int
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

// newSession starts a session for subject ("" before login), replacing the
// session oldID if any (a new id on login prevents session fixation).
func (f *flowStore) newSession(oldID, subject string, now time.Time, ttl time.Duration) *session {
	s := &session{id: randomToken(sessionBytes), subject: subject, expires: now.Add(ttl)}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, oldID)
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

// addPending stores a new pending authorization for the session.
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

// loginFailed counts a failed login on pending id and reports whether the
// pending authorization may still be tried (it is dropped after too many).
func (f *flowStore) loginFailed(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[id]
	if p == nil {
		return false
	}
	p.failures++
	if p.failures >= maxLoginErrors {
		delete(f.pending, id)
		return false
	}
	return true
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
