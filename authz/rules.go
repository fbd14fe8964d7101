package authz

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// MethodAny is the ScopeRule method that matches every JSON-RPC message.
const MethodAny = "*"

// ScopeRule requires scopes for some MCP messages sent to a resource. A
// message matches when Method is its JSON-RPC method (or MethodAny) and Tool
// is empty or equals the name the message addresses: params.name for
// tools/call and prompts/get (and any other method), params.uri for
// resources/read, resources/subscribe and resources/unsubscribe. Names are
// compared exactly (case-sensitive, no patterns).
//
// Every matching rule applies: a request needs the resource's
// RequiredScopes and the Scopes of all rules it matches, so adding a rule
// never lowers what a request needs.
type ScopeRule struct {
	// Method is an MCP method such as "tools/call" or "resources/read", or
	// "*" for every message.
	Method string `yaml:"method" json:"method"`
	// Tool is the tool, prompt or resource URI the rule is about; "" means
	// any (or none).
	Tool string `yaml:"tool,omitempty" json:"tool,omitempty"`
	// Scopes are all required by a matching message.
	Scopes []string `yaml:"scopes" json:"scopes"`
}

// validate checks one rule of resource res.
func (r ScopeRule) validate(res string) error {
	switch {
	case r.Method == "":
		return fmt.Errorf("resource %q: rule without method", res)
	case !validMethod(r.Method):
		return fmt.Errorf("resource %q: rule method %q: not printable ASCII without spaces "+
			"or commas", res, r.Method)
	case !utf8.ValidString(r.Tool) || strings.ContainsFunc(r.Tool, isControl):
		return fmt.Errorf("resource %q: rule %s tool %q: control character or invalid UTF-8",
			res, r.Method, r.Tool)
	case len(r.Scopes) == 0:
		return fmt.Errorf("resource %q: rule %s %q names no scope", res, r.Method, r.Tool)
	}
	for _, s := range r.Scopes {
		if !validScopeToken(s) {
			return fmt.Errorf("resource %q: rule %s %q: invalid scope %q", res, r.Method,
				r.Tool, s)
		}
	}
	return nil
}

// validMethod reports whether m can be an MCP method in a rule or header:
// printable ASCII without space or comma (a comma is how proxies join
// repeated headers).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// need is a set of scopes a request needs, with the denials that name it.
// Needs are built once per distinct scope set when the Decider is made.
type need struct {
	scopes  []string
	denials map[Reason]*Decision
}

// denial returns the denial of reason that names n's scopes. A reason
// without one (a programming error) still denies, as a malformed token.
func (n *need) denial(reason Reason) *Decision {
	if d := n.denials[reason]; d != nil {
		return d
	}
	d := *n.denials[ReasonMalformed]
	d.Reason = reason
	return &d
}

// satisfiedBy reports whether the space-separated scope list has every
// scope of n.
func (n *need) satisfiedBy(scope string) bool {
	for _, s := range n.scopes {
		if !hasScope(scope, s) {
			return false
		}
	}
	return true
}

// methodNeeds are the needs of messages of one method.
type methodNeeds struct {
	byName      map[string]*need // names some rule of the method names
	anyName     *need            // every other name, and none
	unknownName *need            // the name could not be learned
}

// ruleTable answers, in a few map lookups and without allocating, what a
// message to a resource needs.
type ruleTable struct {
	methods map[string]*methodNeeds // methods some rule names
	other   *methodNeeds            // methods no rule names: "*" rules only
	unknown *need                   // the method could not be learned
	ns      *needs                  // for the unions of batches
}

// needs interns the needs of one resource by scope set. It is filled when
// the resource is prepared and, for batches, while deciding.
type needs struct {
	res   Resource
	mu    sync.Mutex
	byKey map[string]*need
}

func newNeeds(r Resource) *needs {
	return &needs{res: r, byKey: map[string]*need{}}
}

// get returns the need for the resource's required scopes plus extra,
// named in the order of the resource's Scopes.
func (ns *needs) get(extra ...[]string) *need {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	scopes := slices.Clone(ns.res.RequiredScopes)
	for _, e := range extra {
		for _, s := range e {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	// Name scopes in the order the resource lists them, so that a set
	// always reads the same.
	rank := func(s string) int {
		if i := slices.Index(ns.res.Scopes, s); i >= 0 {
			return i
		}
		return len(ns.res.Scopes)
	}
	slices.SortStableFunc(scopes, func(a, b string) int { return rank(a) - rank(b) })
	k := strings.Join(scopes, " ")
	if n := ns.byKey[k]; n != nil {
		return n
	}
	n := &need{scopes: scopes, denials: denials(ns.res, scopes)}
	if len(ns.byKey) < maxNeeds {
		ns.byKey[k] = n
	}
	return n
}

// maxNeeds bounds the scope sets interned per resource, so that batches
// combining many rules cannot grow memory without limit; past it a batch's
// need is built for the request alone.
const maxNeeds = 1024

// newRuleTable prepares the rules of r; it returns nil when r has none.
func newRuleTable(r Resource, ns *needs) *ruleTable {
	if len(r.Rules) == 0 {
		return nil
	}
	var all [][]string
	var methods []string
	for _, rule := range r.Rules {
		all = append(all, rule.Scopes)
		if rule.Method != MethodAny && !slices.Contains(methods, rule.Method) {
			methods = append(methods, rule.Method)
		}
	}
	t := &ruleTable{
		methods: make(map[string]*methodNeeds, len(methods)),
		other:   newMethodNeeds(r.Rules, MethodAny, ns),
		unknown: ns.get(all...),
		ns:      ns,
	}
	for _, m := range methods {
		t.methods[m] = newMethodNeeds(r.Rules, m, ns)
	}
	return t
}

// newMethodNeeds prepares the needs of messages of method m: the rules for
// m and the "*" rules apply (for m == "*", the "*" rules only).
func newMethodNeeds(rules []ScopeRule, m string, ns *needs) *methodNeeds {
	var anyName, all [][]string
	var names []string
	for _, r := range rules {
		if r.Method != m && r.Method != MethodAny {
			continue
		}
		all = append(all, r.Scopes)
		if r.Tool == "" {
			anyName = append(anyName, r.Scopes)
		} else if !slices.Contains(names, r.Tool) {
			names = append(names, r.Tool)
		}
	}
	mn := &methodNeeds{
		byName:      make(map[string]*need, len(names)),
		anyName:     ns.get(anyName...),
		unknownName: ns.get(all...),
	}
	for _, name := range names {
		scopes := slices.Clone(anyName)
		for _, r := range rules {
			if (r.Method == m || r.Method == MethodAny) && r.Tool == name {
				scopes = append(scopes, r.Scopes)
			}
		}
		mn.byName[name] = ns.get(scopes...)
	}
	return mn
}

// lookup returns what a message needs. A method or name that could not be
// learned needs what any message (of that method) could need.
func (t *ruleTable) lookup(c *mcpCall) *need {
	if !c.methodKnown {
		return t.unknown
	}
	mn := t.methods[c.method]
	if mn == nil {
		mn = t.other
	}
	if !c.nameKnown {
		return mn.unknownName
	}
	if n := mn.byName[c.name]; n != nil {
		return n
	}
	return mn.anyName
}

// lookupBatch returns what a batch of messages needs: the union of what
// each needs. Unions are interned, so a repeated batch shape allocates only
// to find its need.
func (t *ruleTable) lookupBatch(calls []mcpCall) *need {
	first := t.lookup(&calls[0])
	var scopes [][]string
	for i := range calls[1:] {
		if n := t.lookup(&calls[i+1]); n != first {
			scopes = append(scopes, n.scopes)
		}
	}
	if scopes == nil {
		return first
	}
	return t.ns.get(append(scopes, first.scopes)...)
}
