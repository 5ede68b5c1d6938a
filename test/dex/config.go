package dex

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
)

// User is a static Dex user that can log in with the password grant.
type User struct {
	Email         string   // login name and "email" claim
	Password      string   // plain-text password; Dex is given its bcrypt hash
	Username      string   // "name" and "preferred_username" claims
	Groups        []string // "groups" claim
	EmailVerified bool     // "email_verified" claim
}

// DefaultUsers returns the users Dex gets when Options.Users is nil: alice, whose email is
// verified and who is in the developers and admins groups, and bob, whose email is not verified
// and who is in the developers group.
func DefaultUsers() []User {
	return []User{
		{
			Email:         "alice@example.com",
			Password:      "alice-password",
			Username:      "alice",
			Groups:        []string{"developers", "admins"},
			EmailVerified: true,
		},
		{
			Email:         "bob@example.com",
			Password:      "bob-password",
			Username:      "bob",
			Groups:        []string{"developers"},
			EmailVerified: false,
		},
	}
}

// Options configure the Dex instance started by Start. The zero value is usable.
type Options struct {
	Users              []User        // nil means DefaultUsers()
	IDTokenExpiry      time.Duration // Dex expiry.idTokens; 0 means 10 minutes
	KeysRotationPeriod time.Duration // signing-key rotation period; 0 means 6 hours
	ClientID           string        // static client ID; "" means "kubernetes"
	ClientSecret       string        // static client secret; "" means "kubernetes-secret"
	RedirectURIs       []string      // nil means ["http://127.0.0.1:8000/callback"]
	ExtraClients       []Client      // more static clients, e.g. to mint tokens for another audience
	GrantTypes         []string      // Dex oauth2.grantTypes; nil means DefaultGrantTypes()
	Dir                string        // directory for config, certificates and log; "" means a new temporary one
	Port               int           // HTTPS port on 127.0.0.1; 0 means a free one
}

// Client is an additional static OAuth2 client.
type Client struct {
	ID, Secret string
	// Public makes it a public client (RFC 6749 2.1): no secret, and any loopback redirect URI
	// (http://127.0.0.1:PORT/...) is accepted, as for command-line tools. Dex's device flow
	// works with public clients only.
	Public bool
}

// DefaultGrantTypes are the grants Dex allows when Options.GrantTypes is nil.
func DefaultGrantTypes() []string {
	return []string{"authorization_code", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:device_code"}
}

// withDefaults returns o with every zero field replaced by its default.
func (o Options) withDefaults() Options {
	if o.Users == nil {
		o.Users = DefaultUsers()
	}
	if o.IDTokenExpiry == 0 {
		o.IDTokenExpiry = 10 * time.Minute
	}
	if o.KeysRotationPeriod == 0 {
		o.KeysRotationPeriod = 6 * time.Hour
	}
	if o.ClientID == "" {
		o.ClientID = "kubernetes"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "kubernetes-secret"
	}
	if o.RedirectURIs == nil {
		o.RedirectURIs = []string{"http://127.0.0.1:8000/callback"}
	}
	if o.GrantTypes == nil {
		o.GrantTypes = DefaultGrantTypes()
	}
	return o
}

// listenConfig says where and with which certificate Dex serves.
type listenConfig struct {
	issuerURL string // exact issuer URL
	address   string // host:port for web.https
	certFile  string // serving certificate (PEM)
	keyFile   string // serving key (PEM)
	telemetry string // host:port of the telemetry listener (/metrics)
}

// writeConfig writes the Dex configuration for opts and l to path.
func writeConfig(path string, opts Options, l listenConfig) error {
	cfg, err := dexConfig(opts, l)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("cannot encode the Dex configuration as YAML: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("cannot write the Dex configuration: %w", err)
	}
	return nil
}

// dexConfig builds the Dex configuration document for opts and l.
func dexConfig(opts Options, l listenConfig) (map[string]any, error) {
	passwords := make([]any, 0, len(opts.Users))
	for _, u := range opts.Users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("cannot hash the password of %s: %w", u.Email, err)
		}
		groups := u.Groups
		if groups == nil {
			groups = []string{}
		}
		passwords = append(passwords, map[string]any{
			"email":             u.Email,
			"hash":              string(hash),
			"username":          u.Username,
			"preferredUsername": u.Username,
			"userID":            userID(u.Email),
			"groups":            groups,
			"emailVerified":     u.EmailVerified,
		})
	}
	clients := []any{map[string]any{
		"id":           opts.ClientID,
		"secret":       opts.ClientSecret,
		"name":         "oidc-authenticator tests",
		"redirectURIs": opts.RedirectURIs,
	}}
	for _, c := range opts.ExtraClients {
		if c.Public {
			clients = append(clients, map[string]any{"id": c.ID, "name": c.ID, "public": true})
			continue
		}
		clients = append(clients, map[string]any{"id": c.ID, "secret": c.Secret, "name": c.ID, "redirectURIs": opts.RedirectURIs})
	}
	return map[string]any{
		"issuer":  l.issuerURL,
		"storage": map[string]any{"type": "memory"},
		"web": map[string]any{
			"https":   l.address,
			"tlsCert": l.certFile,
			"tlsKey":  l.keyFile,
		},
		"telemetry": map[string]any{"http": l.telemetry},
		"logger":    map[string]any{"level": "debug", "format": "text"},
		"oauth2": map[string]any{
			"grantTypes":         opts.GrantTypes,
			"passwordConnector":  "local",
			"skipApprovalScreen": true,
		},
		"enablePasswordDB": true,
		"staticPasswords":  passwords,
		"staticClients":    clients,
		"expiry":           map[string]any{"idTokens": opts.IDTokenExpiry.String()},
		"signer": map[string]any{
			"type":   "local",
			"config": map[string]any{"keysRotationPeriod": opts.KeysRotationPeriod.String()},
		},
	}, nil
}

// userID derives a stable Dex user ID from an email address, so each user gets a distinct,
// reproducible "sub" claim.
func userID(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:16])
}
