package main

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	)
	cmd := &cobra.Command{
		Use:   "validate (--config FILE | --issuer URL...) MANIFEST|-",
		Short: "Check an identity mapping ConfigMap manifest offline, before kubectl apply",
		Long: `validate checks a ConfigMap manifest (YAML or JSON, as kubectl apply takes it) with the
same rules the server applies before it accepts a new version, and lists every problem with
its key, entry index and field. Issuer fields are checked against the issuers of --config, or
the --issuer URLs. Exit status: 0 valid, 1 invalid.`,
		Args: cobra.ExactArgs(1),
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
			if len(issuers) == 0 {
				return errors.New("name the configured issuers: --config FILE (the server's configuration) or --issuer URL")
			}
			b, err := readManifest(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			m, obj, err := mapping.ParseManifest(b, issuers)
			name := args[0]
			if obj.Name != "" {
				name = "ConfigMap " + obj.String()
			}
			out := cmd.OutOrStdout()
			if err != nil {
				var inv *mapping.InvalidError
				if !errors.As(err, &inv) {
					return fmt.Errorf("%s: %w", name, err)
				}
				fmt.Fprintf(out, "%s is invalid; the server would refuse it and keep the mapping in force:\n", name)
				for _, p := range inv.Problems {
					fmt.Fprintf(out, "  %s\n", p)
				}
				return fmt.Errorf("%s: %d problems", name, len(inv.Problems))
			}
			fmt.Fprintf(out, "%s is valid: %d %s entries, %d %s entries\n", name, len(m.Users), mapping.KeyUsers, len(m.Groups), mapping.KeyGroups)
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "the server's configuration file, whose jwt[].issuer.url entries may name")
	cmd.Flags().StringArrayVar(&issuers, "issuer", nil, "a configured issuer URL (repeatable), instead of --config")
	return cmd
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
