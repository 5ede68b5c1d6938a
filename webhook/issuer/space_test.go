package issuer

import (
	"testing"
	"unicode"
)

// Every rune go-jose's ParseSigned strips (unicode.IsSpace) makes the key set parse with it,
// and a token in the compact alphabet is parsed as it is.
func TestMayHoldSpaceCoversUnicodeSpace(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.IsSpace(r) && !mayHoldSpace("a."+string(r)+".b") {
			t.Errorf("%U is a space go-jose strips, but the token was taken as having none", r)
		}
	}
	if mayHoldSpace("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln-_") {
		t.Error("a compact token was taken as holding a space")
	}
}
