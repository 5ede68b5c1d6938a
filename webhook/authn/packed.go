package authn

import (
	"encoding/binary"
	"errors"
	"time"
)

// The cache keeps each identity packed into one string: its fields one after the other, each
// string as its length and its bytes, as a reference to an equal field before it (a username
// that is the email, a uid that is the subject), or as the number of a string the whole cache
// shares (interned.go: group names and extra values). One string is one allocation that the
// garbage collector never scans, a fraction of the memory an Identity and its parts take
// (docs/performance.md). Unpacking makes strings that share the packed bytes.
//
// Layout: issuer index, subject, email, email_verified (0 absent, 1 false, 2 true), exp (Unix
// seconds), raw groups, user name, uid, user groups, extra (key, values) pairs. Lists are a
// count followed by their strings. A string starts with a tag: packedRef and the position of
// an equal string before it, packedInterned and its number in the shared table, or
// packedLiteral plus its length and then its bytes.

const (
	packedNoEmailVerified = iota
	packedUnverified
	packedVerified
)

// The tags of a packed string.
const (
	packedRef = iota
	packedInterned
	packedLiteral
)

// errCorruptEntry means a packed identity does not decode: a bug, never a token's doing.
var errCorruptEntry = errors.New("a cached identity does not decode")

// packer writes an identity's fields, remembering the strings written so far so that an
// equal one is written as a reference to it. The few strings of most identities are compared
// one by one; past indexAfter of them (a token with many groups) they are looked up in a map,
// so that packing costs what the strings' bytes cost, not their number squared.
type packer struct {
	b       []byte
	written []string
	index   map[string]int // of written, once there are more than indexAfter
	shared  *interned      // nil: every string is packed into the identity
	// compared counts string comparisons, for the test that keeps packing linear.
	compared int
}

// indexAfter is how many strings are compared one by one before the packer indexes them.
const indexAfter = 16

func (p *packer) uint(v uint64) { p.b = binary.AppendUvarint(p.b, v) }

// str writes s as a reference to an equal string written before, or as its bytes.
func (p *packer) str(s string) {
	if i, ok := p.find(s); ok {
		p.uint(packedRef)
		p.uint(uint64(i))
		return
	}
	if p.index != nil {
		p.index[s] = len(p.written)
	} else if len(p.written) == indexAfter {
		p.index = make(map[string]int, 2*indexAfter)
		for i, w := range p.written {
			if _, dup := p.index[w]; !dup {
				p.index[w] = i
			}
		}
		p.index[s] = len(p.written)
	}
	p.written = append(p.written, s)
	p.uint(packedLiteral + uint64(len(s)))
	p.b = append(p.b, s...)
}

// common writes s as the number of the cache's shared copy, when it has or can make one.
func (p *packer) common(s string) {
	if p.shared != nil {
		if i, ok := p.shared.id(s); ok {
			p.uint(packedInterned)
			p.uint(uint64(i))
			return
		}
	}
	p.str(s)
}

// find returns the position of a written string equal to s.
func (p *packer) find(s string) (int, bool) {
	if p.index != nil {
		p.compared++
		i, ok := p.index[s]
		return i, ok
	}
	for i, w := range p.written {
		p.compared++
		if w == s {
			return i, true
		}
	}
	return 0, false
}

// commons writes a list of strings that identities share (groups, extra values).
func (p *packer) commons(list []string) {
	p.uint(uint64(len(list)))
	for _, s := range list {
		p.common(s)
	}
}

// pack encodes id without its claim set, after prefix; issuer is the position of id.Issuer
// among the Authenticator's issuers, and shared, when not nil, the table of strings the
// cache's identities share.
func (id *Identity) pack(prefix string, issuer int, shared *interned) string {
	s, _ := id.packCounted(prefix, issuer, shared)
	return s
}

// packCounted is pack, also returning how many string comparisons it made.
func (id *Identity) packCounted(prefix string, issuer int, shared *interned) (string, int) {
	p := packer{b: make([]byte, 0, 128), written: make([]string, 0, 8), shared: shared}
	p.b = append(p.b, prefix...)
	p.uint(uint64(issuer))
	p.str(id.Subject)
	p.str(id.Email)
	switch {
	case id.EmailVerified == nil:
		p.uint(packedNoEmailVerified)
	case *id.EmailVerified:
		p.uint(packedVerified)
	default:
		p.uint(packedUnverified)
	}
	p.uint(uint64(id.Expiry.Unix()))
	p.commons(id.Groups)
	p.str(id.User.Name)
	p.str(id.User.UID)
	p.commons(id.User.Groups)
	p.uint(uint64(len(id.User.Extra)))
	for k, v := range id.User.Extra {
		p.common(k)
		p.commons(v)
	}
	return string(p.b), p.compared
}

// unpacker reads what a packer wrote; the first error sticks.
type unpacker struct {
	s      string
	read   []string
	shared []string // the cache's interned strings
	err    error
}

func (u *unpacker) uint() uint64 {
	if u.err != nil {
		return 0
	}
	v, n := binary.Uvarint([]byte(u.s[:min(len(u.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		u.err = errCorruptEntry
		return 0
	}
	u.s = u.s[n:]
	return v
}

func (u *unpacker) str() string {
	switch tag := u.uint(); tag {
	case packedRef, packedInterned:
		from := u.read
		if tag == packedInterned {
			from = u.shared
		}
		i := u.uint()
		if u.err != nil || i >= uint64(len(from)) {
			u.err = errCorruptEntry
			return ""
		}
		return from[i]
	default:
		n := tag - packedLiteral
		if u.err != nil || n > uint64(len(u.s)) {
			u.err = errCorruptEntry
			return ""
		}
		s := u.s[:n]
		u.s = u.s[n:]
		u.read = append(u.read, s)
		return s
	}
}

func (u *unpacker) strs() []string {
	n := u.uint()
	if n > uint64(len(u.s)) {
		u.err = errCorruptEntry // each string takes a byte at least
	}
	if n == 0 || u.err != nil {
		return nil
	}
	list := make([]string, n)
	for i := range list {
		list[i] = u.str()
	}
	return list
}

// unpackIdentity decodes what pack wrote (after its prefix); issuers are the Authenticator's
// issuers, in the order pack was given, and shared the strings of the table pack was given.
func unpackIdentity(s string, issuers, shared []string) (*Identity, error) {
	u := unpacker{s: s, read: make([]string, 0, 8), shared: shared}
	id := &Identity{}
	if i := u.uint(); i < uint64(len(issuers)) {
		id.Issuer = issuers[i]
	} else {
		u.err = errCorruptEntry
	}
	id.Subject = u.str()
	id.Email = u.str()
	switch u.uint() {
	case packedVerified:
		id.EmailVerified = Verified(true)
	case packedUnverified:
		id.EmailVerified = Verified(false)
	}
	id.Expiry = time.Unix(int64(u.uint()), 0)
	id.Groups = u.strs()
	id.User.Name = u.str()
	id.User.UID = u.str()
	id.User.Groups = u.strs()
	switch n := u.uint(); {
	case n > uint64(len(u.s)):
		u.err = errCorruptEntry
	case n > 0:
		id.User.Extra = make(map[string][]string, n)
		for range n {
			k := u.str()
			id.User.Extra[k] = u.strs()
		}
	}
	if u.err == nil && u.s != "" {
		u.err = errCorruptEntry
	}
	if u.err != nil {
		return nil, u.err
	}
	return id, nil
}
