package authn

import (
	"encoding/binary"
	"errors"
	"time"
)

// The cache keeps each identity packed into one string: its fields one after the other, each
// string as its length and its bytes, or as a reference to an equal field before it (a
// username that is the email, a uid that is the subject). One string is one allocation that
// the garbage collector never scans, a third of the memory an Identity and its parts take
// (docs/performance.md). Unpacking makes strings that share the packed bytes.
//
// Layout: issuer index, subject, email, email_verified (0 absent, 1 false, 2 true), exp (Unix
// seconds), raw groups, user name, uid, user groups, extra (key, values) pairs. Lists are a
// count followed by their strings.

const (
	packedNoEmailVerified = iota
	packedUnverified
	packedVerified
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
	// compared counts string comparisons, for the test that keeps packing linear.
	compared int
}

// indexAfter is how many strings are compared one by one before the packer indexes them.
const indexAfter = 16

func (p *packer) uint(v uint64) { p.b = binary.AppendUvarint(p.b, v) }

// str writes s as 0 and the index of an equal string written before, or as len(s)+1 and s.
func (p *packer) str(s string) {
	if i, ok := p.find(s); ok {
		p.uint(0)
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
	p.uint(uint64(len(s)) + 1)
	p.b = append(p.b, s...)
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

func (p *packer) strs(list []string) {
	p.uint(uint64(len(list)))
	for _, s := range list {
		p.str(s)
	}
}

// pack encodes id without its claim set; issuer is the position of id.Issuer among the
// Authenticator's issuers.
func (id *Identity) pack(issuer int) string {
	s, _ := id.packCounted(issuer)
	return s
}

// packCounted is pack, also returning how many string comparisons it made.
func (id *Identity) packCounted(issuer int) (string, int) {
	p := packer{b: make([]byte, 0, 128), written: make([]string, 0, 8)}
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
	p.strs(id.Groups)
	p.str(id.User.Name)
	p.str(id.User.UID)
	p.strs(id.User.Groups)
	p.uint(uint64(len(id.User.Extra)))
	for k, v := range id.User.Extra {
		p.str(k)
		p.strs(v)
	}
	return string(p.b), p.compared
}

// unpacker reads what a packer wrote; the first error sticks.
type unpacker struct {
	s    string
	read []string
	err  error
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
	n := u.uint()
	if n == 0 {
		i := u.uint()
		if u.err != nil || i >= uint64(len(u.read)) {
			u.err = errCorruptEntry
			return ""
		}
		return u.read[i]
	}
	if u.err != nil || n-1 > uint64(len(u.s)) {
		u.err = errCorruptEntry
		return ""
	}
	s := u.s[:n-1]
	u.s = u.s[n-1:]
	u.read = append(u.read, s)
	return s
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

// unpackIdentity decodes what pack wrote; issuers are the Authenticator's issuers, in the
// order pack was given.
func unpackIdentity(s string, issuers []string) (*Identity, error) {
	u := unpacker{s: s, read: make([]string, 0, 8)}
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
