package main

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/oidc-authenticator/oidc-authenticator/webhook/config"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/pki"
)

// Exit statuses of `certs check`, for scripts.
const (
	exitCertsExpiring = 2 // a certificate expires within --warn-within
	exitCertsExpired  = 3 // a certificate has expired, or is missing or unreadable
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func newCertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Inspect the certificates in the state directory",
	}
	cmd.AddCommand(newCertsCheckCommand(time.Now))
	return cmd
}

func newCertsCheckCommand(now func() time.Time) *cobra.Command {
	var (
		stateDir   string
		warnWithin time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check [--state-dir DIR] [--warn-within DURATION]",
		Short: "Print each certificate's subject, expiry and days left; exit 2 if one expires soon, 3 if one has expired or cannot be read",
		Long: `check reads the CA, the webhook's serving certificate and kube-apiserver's client
certificate in the state directory and prints, for each, its subject, when it expires and how
many days are left. Exit status: 0 when all are valid beyond --warn-within; 2 when one expires
within --warn-within (run ` + "`oidc-authenticator init`" + ` to renew the server and client
certificates; the CA is renewed by hand, docs/operations.md); 3 when one has expired or is
missing or unreadable; 1 for a usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return certsCheck(cmd.OutOrStdout(), pki.Files{Dir: stateDir}, now(), warnWithin)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", config.DefaultStateDir, "directory holding the certificates")
	cmd.Flags().DurationVar(&warnWithin, "warn-within", defaultRenewWithin, "exit 2 when a certificate expires within this window")
	return cmd
}

func certsCheck(out io.Writer, files pki.Files, now time.Time, warnWithin time.Duration) error {
	worst := 0
	for _, c := range []struct{ name, path string }{
		{"ca", files.CACert()}, {"serving", files.ServerCert()}, {"client", files.ClientCert()},
	} {
		cert, err := pki.ReadCertificate(c.path)
		if err != nil {
			fmt.Fprintf(out, "%-8s %s: UNREADABLE: %v\n", c.name, c.path, err)
			worst = max(worst, exitCertsExpired)
			continue
		}
		left := cert.NotAfter.Sub(now)
		days := int(math.Floor(left.Hours() / 24))
		state := "ok"
		switch {
		case left <= 0:
			state, worst = "EXPIRED", max(worst, exitCertsExpired)
		case left <= warnWithin:
			state, worst = "EXPIRES SOON", max(worst, exitCertsExpiring)
		}
		fmt.Fprintf(out, "%-8s %s: subject %q, expires %s, %d days left: %s\n",
			c.name, c.path, cert.Subject.String(), cert.NotAfter.UTC().Format(time.RFC3339), days, state)
	}
	switch worst {
	case exitCertsExpiring:
		return &exitError{code: worst, msg: fmt.Sprintf("a certificate expires within %s: run `oidc-authenticator init --state-dir %s` to renew the server and client certificates", warnWithin, files.Dir)}
	case exitCertsExpired:
		return &exitError{code: worst, msg: "a certificate has expired or cannot be read"}
	}
	return nil
}
