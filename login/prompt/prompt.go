// Package prompt asks the person at the terminal for a username or a password.
package prompt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// ErrNoTerminal is returned when there is nobody to ask: the input is not a terminal.
var ErrNoTerminal = errors.New("the input is not a terminal")

// Terminal asks on Out (standard error, since standard output carries the credential) and reads
// the answer from In, which must be a terminal.
type Terminal struct {
	In  *os.File // nil means there is no terminal
	Out io.Writer
}

func (t Terminal) interactive() bool {
	return t.In != nil && term.IsTerminal(int(t.In.Fd()))
}

// Ask reads a line, echoed.
func (t Terminal) Ask(question string) (string, error) {
	if !t.interactive() {
		return "", ErrNoTerminal
	}
	fmt.Fprint(t.Out, question)
	line, err := bufio.NewReader(t.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read the answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// AskSecret reads a line without echoing it.
func (t Terminal) AskSecret(question string) (string, error) {
	if !t.interactive() {
		return "", ErrNoTerminal
	}
	fmt.Fprint(t.Out, question)
	b, err := term.ReadPassword(int(t.In.Fd()))
	fmt.Fprintln(t.Out)
	if err != nil {
		return "", fmt.Errorf("cannot read the password: %w", err)
	}
	return string(b), nil
}
