package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
)

func newMappingCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Work with the identity mapping ConfigMap",
	}
	cmd.AddCommand(newMappingValidateCommand())
	return cmd
}

func newMappingValidateCommand() *cobra.Command {
	var (
		configFile string
		issuers    []string
		merge      bool
	)
	cmd := &cobra.Command{
		Use:   "validate [--config FILE | --issuer URL...] [--merge] MANIFEST|DIR|-...",
		Short: "Check identity mapping ConfigMaps offline, before kubectl apply",
		Long: `validate checks each ConfigMap manifest (YAML or JSON, as kubectl apply takes it), or
each directory where the ConfigMap is mounted (one file per key, as kubelet mounts it), with
the same rules the server applies before it accepts a new version, and lists every problem
with its key, entry index and field.

With --merge, the ConfigMaps are checked as one mapping, as the server reads the ConfigMaps
of mapping.configMapSelector: merged in the order of their names (a directory's name is its
path), an entry for the same identity in two of them refused as within one.

With --config (the server's configuration) or --issuer URLs, an entry's issuer field must
also name one of those issuers; without them, that one check is left out and a note says so.
Exit status: 0 when every one is valid (with --merge: the merged mapping), 1 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				cfg, err := config.Load(configFile)
				if err != nil {
					return err
				}
				for _, j := range cfg.JWT {
					issuers = append(issuers, j.Issuer.URL)
				}
			}
			opts := mapping.ParseOptions{Issuers: issuers, AnyIssuer: configFile == "" && len(issuers) == 0}
			out := cmd.OutOrStdout()
			if opts.AnyIssuer {
				fmt.Fprintln(out, "note: issuer fields are not checked; pass --config FILE (the server's configuration) or --issuer URL to check them")
			}
			if merge {
				return validateMerged(cmd.InOrStdin(), out, args, opts)
			}
			failed := 0
			for _, path := range args {
				if err := validateMapping(cmd.InOrStdin(), out, path, opts); err != nil {
					fmt.Fprintln(out, err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d mappings invalid", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "the server's configuration file, whose jwt[].issuer.url entries may name")
	cmd.Flags().StringArrayVar(&issuers, "issuer", nil, "a configured issuer URL (repeatable), instead of --config")
	cmd.Flags().BoolVar(&merge, "merge", false, "check the ConfigMaps as one mapping, merged in name order, as mapping.configMapSelector reads them")
	return cmd
}

// readInput reads a manifest file, mounted directory or - (stdin), and names it for messages.
func readInput(stdin io.Reader, path string) (mapping.Input, string, error) {
	var (
		in  mapping.Input
		err error
	)
	if path == "-" {
		var b []byte
		if b, err = readManifest(stdin, path); err == nil {
			in, err = mapping.DecodeManifest(b)
		}
	} else {
		in, err = mapping.ReadPath(path)
	}
	name := path
	if in.Object.Name != "" {
		name = "ConfigMap " + in.Object.String() + " (" + path + ")"
	}
	if err != nil {
		return in, name, fmt.Errorf("%s: %w", name, err)
	}
	return in, name, nil
}

// validateMerged checks the ConfigMaps at paths as one mapping, merged in the order of their
// names (a directory's is its path), and prints the outcome.
func validateMerged(stdin io.Reader, out io.Writer, paths []string, opts mapping.ParseOptions) error {
	parts := make([]mapping.Part, 0, len(paths))
	byName := map[string]string{}
	for _, path := range paths {
		in, name, err := readInput(stdin, path)
		if err != nil {
			fmt.Fprintln(out, err)
			return fmt.Errorf("%s cannot be read", name)
		}
		id := path
		if in.Object.Name != "" {
			id = in.Object.String()
		}
		if other, dup := byName[id]; dup {
			return fmt.Errorf("%s and %s are both ConfigMap %s; a namespace holds one ConfigMap of a name", other, path, id)
		}
		byName[id] = path
		parts = append(parts, mapping.Part{Name: id, Data: in.Data, BinaryData: in.BinaryData})
	}
	slices.SortFunc(parts, func(a, b mapping.Part) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = p.Name
	}
	set := fmt.Sprintf("the mapping merged from %d ConfigMaps (%s, in this order)", len(parts), strings.Join(names, ", "))
	m, err := mapping.ParseSet(parts, opts)
	return reportValidation(out, set, m, err)
}

// validateMapping checks one manifest file, mounted directory or - (stdin) and prints the
// outcome; the error says in one line why it is invalid.
func validateMapping(stdin io.Reader, out io.Writer, path string, opts mapping.ParseOptions) error {
	in, name, err := readInput(stdin, path)
	if err != nil {
		return err
	}
	opts.BinaryData = in.BinaryData
	m, err := mapping.ParseWith(in.Data, opts)
	return reportValidation(out, name, m, err)
}

// reportValidation prints what parsing what (a file, or a merged set) gave: every problem of
// an invalid mapping, or the size of a valid one; the error says in one line why it is invalid.
func reportValidation(out io.Writer, what string, m *mapping.Mapping, err error) error {
	if err != nil {
		var inv *mapping.InvalidError
		if !errors.As(err, &inv) {
			return fmt.Errorf("%s: %w", what, err)
		}
		fmt.Fprintf(out, "%s is invalid; the server would refuse it and keep the mapping in force:\n", what)
		for _, p := range inv.Problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		return fmt.Errorf("%s: %d problems", what, len(inv.Problems))
	}
	fmt.Fprintf(out, "%s is valid: %d %s entries, %d %s entries\n", what, len(m.Users), mapping.KeyUsers, len(m.Groups), mapping.KeyGroups)
	return nil
}

// maxManifestBytes bounds what validate reads; a ConfigMap holds at most 1 MiB.
const maxManifestBytes = 4 << 20

func readManifest(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read the manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the manifest %s: %w", path, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("the manifest %s is larger than %d MiB; a ConfigMap holds at most 1 MiB", path, maxManifestBytes>>20)
	}
	return b, nil
}
