package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Load reads, defaults and validates a configuration file. The error names the file and,
// for invalid values, every offending field.
func Load(path string) (*Configuration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML or JSON strictly (unknown or duplicate fields are errors), applies
// defaults and validates the result.
func Parse(data []byte) (*Configuration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("the file is empty")
	}
	var cfg Configuration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	cfg.setDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return &cfg, nil
}

func (c *Configuration) setDefaults() {
	if c.Server.Address == "" {
		c.Server.Address = DefaultAddress
	}
	if c.Server.StateDir == "" {
		c.Server.StateDir = DefaultStateDir
	}
	if c.Server.CertFile == "" && c.Server.KeyFile == "" {
		c.Server.CertFile = filepath.Join(c.Server.StateDir, "server.crt")
		c.Server.KeyFile = filepath.Join(c.Server.StateDir, "server.key")
	}
	if c.Server.ClientAuth == "" {
		c.Server.ClientAuth = ClientAuthRequired
	}
	if c.Server.MetricsAddress == nil {
		addr := DefaultMetricsAddress
		c.Server.MetricsAddress = &addr
	}
	if c.Server.MaxInFlightVerifications == nil {
		n := DefaultMaxInFlightVerifications
		c.Server.MaxInFlightVerifications = &n
	}
	if c.Cache.TTL == nil {
		ttl, _ := time.ParseDuration(DefaultCacheTTL)
		c.Cache.TTL = &metav1.Duration{Duration: ttl}
	}
	if c.Cache.MaxEntries == nil {
		n := DefaultCacheMaxEntries
		c.Cache.MaxEntries = &n
	}
	if c.Cache.MaxBytes == nil {
		q := resource.MustParse(DefaultCacheMaxBytes)
		c.Cache.MaxBytes = &q
	}
}

// ClientCAFile is the CA client certificates must be signed by: clientCAFile, else the state
// directory's ca.crt; "" with clientAuth none.
func (c *Configuration) ClientCAFile() string {
	switch {
	case c.Server.ClientAuth == ClientAuthNone:
		return ""
	case c.Server.ClientCAFile != "":
		return c.Server.ClientCAFile
	default:
		return filepath.Join(c.Server.StateDir, "ca.crt")
	}
}

// GeneratesServingCert reports whether the serving certificate is the default one in the
// state directory, which the server creates when it is missing.
func (c *Configuration) GeneratesServingCert() bool {
	return c.Server.CertFile == filepath.Join(c.Server.StateDir, "server.crt") &&
		c.Server.KeyFile == filepath.Join(c.Server.StateDir, "server.key")
}
