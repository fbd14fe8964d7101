package authz

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth bounds the nesting of arrays and objects in a body the
// decision reads; a deeper body is unknown.
const maxJSONDepth = 64

// parseMCPBody reads the JSON-RPC message, or batch of messages, of an MCP
// request body and appends what it names to calls. It validates the whole
// body as strict JSON (RFC 8259) in one pass, without recursion deeper than
// maxJSONDepth, and looks only at the members "method" and "params", and in
// params at "name" and "uri".
//
// It reports false, so that the message counts as unknown, for a body that
// is not strict JSON; that is nested deeper than maxJSONDepth; that is not
// an object or a non-empty array of at most maxBatch objects; whose method,
// or the name or uri its method addresses, is not a string; and for a body
// that different JSON-RPC servers could read differently: a member among
// those four sent twice, sent under another case or spelling that a
// case-insensitive decoder (Go's encoding/json, for one) would take for it
// ("Method", "paramſ"), or a string holding invalid UTF-8 or a lone UTF-16
// surrogate.
//
// The strings of the result alias body unless they held escapes. batch
// reports whether the body is an array (of one message, maybe).
func parseMCPBody(body []byte, calls []mcpCall) (_ []mcpCall, batch, ok bool) {
	s := jsonScan{b: body}
	s.ws()
	switch s.peek() {
	case '{':
		c, ok := s.message()
		if !ok {
			return nil, false, false
		}
		calls = append(calls, c)
	case '[':
		batch = true
		s.i++
		s.ws()
		for {
			if len(calls) == maxBatch || s.peek() != '{' {
				return nil, false, false
			}
			c, ok := s.message()
			if !ok {
				return nil, false, false
			}
			calls = append(calls, c)
			s.ws()
			if s.peek() == ']' {
				s.i++
				break
			}
			if !s.consume(',') {
				return nil, false, false
			}
			s.ws()
		}
	default:
		return nil, false, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false, false
	}
	return calls, batch, true
}

// strField is a member the parser looks for.
type strField struct {
	val      string
	present  bool
	isString bool
}

// jsonScan is a strict JSON scanner over a byte slice.
type jsonScan struct {
	b     []byte
	i     int
	depth int
}

func (s *jsonScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScan) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// enter opens an array or object, enforcing maxJSONDepth.
func (s *jsonScan) enter() bool {
	s.depth++
	s.i++
	return s.depth <= maxJSONDepth
}

// message reads one JSON-RPC message object.
func (s *jsonScan) message() (mcpCall, bool) {
	var method, name, uri strField
	var params bool
	ok := s.object(func(key string) bool {
		switch {
		case key == "method":
			return s.field(&method)
		case key == "params":
			if params {
				return false
			}
			params = true
			if s.peek() != '{' {
				return s.value()
			}
			return s.object(func(key string) bool {
				switch {
				case key == "name":
					return s.field(&name)
				case key == "uri":
					return s.field(&uri)
				case foldsTo(key, "name"), foldsTo(key, "uri"):
					return false
				}
				return s.value()
			})
		case foldsTo(key, "method"), foldsTo(key, "params"):
			return false
		}
		return s.value()
	})
	if !ok {
		return mcpCall{}, false
	}
	return callOf(&method, &name, &uri)
}

// callOf builds the call from a message's members.
func callOf(method, name, uri *strField) (mcpCall, bool) {
	if !method.present {
		// A response (or a malformed message, which the server refuses):
		// it has no method and addresses nothing.
		return mcpCall{methodKnown: true, nameKnown: true}, true
	}
	if !method.isString {
		return mcpCall{}, false
	}
	c := mcpCall{method: method.val, methodKnown: true}
	f := name
	if nameIsURI(c.method) {
		f = uri
	}
	switch {
	case f.present && !f.isString:
		return mcpCall{}, false
	case f.present:
		c.name, c.nameKnown, c.nameSent = f.val, true, true
	default:
		c.nameKnown = !requiresName(c.method)
	}
	return c, true
}

// field reads the value of a member the parser looks for; a member seen
// before makes the body ambiguous.
func (s *jsonScan) field(f *strField) bool {
	if f.present {
		return false
	}
	f.present = true
	if s.peek() != '"' {
		return s.value()
	}
	v, ok := s.str()
	f.val, f.isString = v, true
	return ok
}

// object reads an object, calling member with each decoded key with the
// scanner at the member's value, which member must consume.
func (s *jsonScan) object(member func(key string) bool) bool {
	if !s.enter() {
		return false
	}
	s.ws()
	if s.consume('}') {
		s.depth--
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.consume(':') {
			return false
		}
		s.ws()
		if !member(key) {
			return false
		}
		s.ws()
		if s.consume('}') {
			s.depth--
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.ws()
	}
}

// value skips any JSON value, checking its syntax.
func (s *jsonScan) value() bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func(string) bool { return s.value() })
	case c == '[':
		return s.array()
	case c == '"':
		return s.skipStr()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *jsonScan) array() bool {
	if !s.enter() {
		return false
	}
	s.ws()
	if s.consume(']') {
		s.depth--
		return true
	}
	for {
		if !s.value() {
			return false
		}
		s.ws()
		if s.consume(']') {
			s.depth--
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.ws()
	}
}

func (s *jsonScan) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScan) number() bool {
	s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') && !s.digits() {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more digits, reporting false when there is none.
func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// scanStr finds the end of the string starting at s.i (a quote), checking
// its escapes and that it holds no control character. It returns the
// content between the quotes and whether it holds an escape, and moves past
// the closing quote.
func (s *jsonScan) scanStr() (content []byte, escaped, ok bool) {
	s.i++
	start := s.i
	for s.i < len(s.b) {
		for s.i < len(s.b) && !strSpecial[s.b[s.i]] {
			s.i++
		}
		if s.i == len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			content = s.b[start:s.i]
			s.i++
			return content, escaped, true
		case c < ' ':
			return nil, false, false
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return nil, false, false
				}
				s.i += 6
			default:
				return nil, false, false
			}
		default:
			s.i++
		}
	}
	return nil, false, false
}

// strSpecial marks the bytes that end the plain run of a JSON string: the
// quote, the backslash and control characters.
var strSpecial = func() (t [256]bool) {
	for c := range ' ' {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func (s *jsonScan) skipStr() bool {
	_, _, ok := s.scanStr()
	return ok
}

// str reads a string and decodes it. It refuses invalid UTF-8 and lone
// surrogates, which decoders replace in different ways.
func (s *jsonScan) str() (string, bool) {
	content, escaped, ok := s.scanStr()
	if !ok {
		return "", false
	}
	if !escaped {
		if !utf8.Valid(content) {
			return "", false
		}
		return unsafe.String(unsafe.SliceData(content), len(content)), true
	}
	return unescape(content)
}

// unescape decodes the content of a JSON string that holds escapes (already
// checked by scanStr).
func unescape(b []byte) (string, bool) {
	if !utf8.Valid(b) {
		return "", false
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		e := b[i+1]
		i += 2
		switch e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[i : i+4])
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
					return "", false
				}
				r2 := hex4(b[i+2 : i+6])
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
	}
	return string(out), true
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// foldsTo reports whether key, which is not target, could be read as the
// lower-case ASCII member name target by a decoder that matches names
// without regard to case: under Unicode simple case folding (strings.EqualFold,
// which maps "ſ" to "s" and the Kelvin sign to "k"), or under upper- or
// lower-casing (Go's encoding/json upper-cases the lower case, which maps
// "ı" and "İ" to "i").
func foldsTo(key, target string) bool {
	if len(key) < len(target) || len(key) > 3*len(target) {
		return false
	}
	j := 0
	for _, r := range key {
		if j == len(target) || !runeFoldsTo(r, rune(target[j])) {
			return false
		}
		j++
	}
	return j == len(target)
}

// runeFoldsTo reports whether r could be read as the lower-case ASCII
// letter t.
func runeFoldsTo(r, t rune) bool {
	if r == t {
		return true
	}
	up := unicode.ToUpper(t)
	if unicode.ToUpper(r) == up || unicode.ToLower(r) == t ||
		unicode.ToUpper(unicode.ToLower(r)) == up {
		return true
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == t {
			return true
		}
	}
	return false
}
