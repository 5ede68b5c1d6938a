package main

import (
	"fmt"
	"io"
	"strings"
)

// narrator writes the demo's transcript.
type narrator struct {
	out   io.Writer
	steps int
}

// newNarrator returns a narrator writing to out.
func newNarrator(out io.Writer) *narrator {
	return &narrator{out: out}
}

// step starts a new numbered section of the transcript.
func (n *narrator) step(title string) {
	n.steps++
	fmt.Fprintf(n.out, "\n== %d. %s\n", n.steps, title)
}

// say prints one line of narration.
func (n *narrator) say(format string, args ...any) {
	fmt.Fprintf(n.out, format+"\n", args...)
}

// block prints text indented, as the verbatim output of a command or a file's contents.
func (n *narrator) block(text string) {
	for line := range strings.Lines(strings.TrimRight(text, "\n")) {
		fmt.Fprintf(n.out, "    %s", line)
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(n.out)
		}
	}
}
