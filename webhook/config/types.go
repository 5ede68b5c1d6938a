// Package config holds the server's configuration file: its schema, its defaults and the
// validation that turns a file into typed values the rest of the server can trust.
//
// The jwt[] section has the same schema and meaning as kube-apiserver's
// AuthenticationConfiguration (apiserver.config.k8s.io/v1), so an entry can move between the
// two without edits.
package config

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind identify the configuration file format.
const (
	APIVersion = "oidc-authenticator.io/v1alpha1"
	Kind       = "AuthenticatorConfiguration"
)

// Defaults applied to fields left empty.
const (
	DefaultAddress         = "127.0.0.1:21362"
	DefaultStateDir        = "/var/lib/oidc-authenticator"
	DefaultCacheTTL        = "2m"
	DefaultCacheMaxEntries = 100000
	// DefaultCacheMaxBytes bounds the cache's memory well inside the DaemonSet's memory limit,
	// whatever the size of the identities (a token with hundreds of group GUIDs packs to tens
	// of KB).
	DefaultCacheMaxBytes = "64Mi"
	// DefaultMaxInFlightVerifications bounds the signature checks running at once: enough to
	// keep every core busy and to wait on a slow issuer, small enough that a flood is
	// answered 429 rather than queued without end.
	DefaultMaxInFlightVerifications = 256
	// DefaultMetricsAddress is the plain-HTTP metrics and probes listener: loopback, reachable
	// from the node (kubelet's probes, a Prometheus on the host network) and nowhere else.
	DefaultMetricsAddress = "127.0.0.1:21363"
)

// ClientAuth says whether /authenticate requires a client certificate.
type ClientAuth string

// Values of server.clientAuth.
const (
	// ClientAuthRequired (the default) requires a client certificate signed by clientCAFile,
	// or by the state directory's ca.crt when clientCAFile is not set.
	ClientAuthRequired ClientAuth = "required"
	// ClientAuthNone lets anyone who reaches the port ask; the server warns at start.
	ClientAuthNone ClientAuth = "none"
)

// Configuration is the whole configuration file.
type Configuration struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Server     Server             `json:"server"`
	JWT        []JWTAuthenticator `json:"jwt"`
	Mapping    Mapping            `json:"mapping"`
	Cache      Cache              `json:"cache"`
}

// Server configures the HTTPS listener.
type Server struct {
	// Address is host:port to listen on.
	Address string `json:"address"`
	// CertFile and KeyFile are the serving certificate; they default to files in StateDir,
	// which are generated when absent.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile is the CA a client certificate must be signed by; it defaults to the
	// state directory's ca.crt (which init writes).
	ClientCAFile string `json:"clientCAFile"`
	// ClientAuth is required (the default) or none: running without mTLS is an explicit choice.
	ClientAuth ClientAuth `json:"clientAuth,omitempty"`
	// MetricsAddress is host:port of the plain-HTTP listener for /metrics, /healthz and
	// /readyz; it defaults to DefaultMetricsAddress, and "" turns the listener off.
	MetricsAddress *string `json:"metricsAddress,omitempty"`
	// StateDir holds generated certificates and keys.
	StateDir string `json:"stateDir"`
	// MaxInFlightVerifications bounds the tokens being verified at once (cache misses);
	// beyond it a TokenReview is answered 429, which kube-apiserver retries with backoff.
	MaxInFlightVerifications *int `json:"maxInFlightVerifications,omitempty"`
}

// Mapping says where the identity mapping comes from: at most one of ConfigMap,
// ConfigMapSelector and File.
type Mapping struct {
	// ConfigMap is namespace/name of a ConfigMap watched through the Kubernetes API.
	ConfigMap string `json:"configMap,omitempty"`
	// ConfigMapSelector names the ConfigMaps of one namespace that a label selector matches,
	// watched through the Kubernetes API and merged in name order into one mapping: for a
	// mapping larger than one ConfigMap holds.
	ConfigMapSelector *ConfigMapSelector `json:"configMapSelector,omitempty"`
	// File is a ConfigMap manifest file or a directory where a ConfigMap is mounted.
	File string `json:"file,omitempty"`
	// RequireMatch denies tokens that match no mapping entry.
	RequireMatch bool `json:"requireMatch,omitempty"`
}

// ConfigMapSelector selects the ConfigMaps of a mapping made of several.
type ConfigMapSelector struct {
	// Namespace holds the ConfigMaps.
	Namespace string `json:"namespace"`
	// LabelSelector selects them, e.g. oidc-authenticator.io/mapping=true; never empty.
	LabelSelector string `json:"labelSelector"`
}

// Cache configures the cache of verified tokens.
type Cache struct {
	// TTL bounds how long a verified token is remembered; each entry also expires with its
	// token. Zero disables the cache.
	TTL *metav1.Duration `json:"ttl,omitempty"`
	// MaxEntries bounds how many verified tokens are remembered at once.
	MaxEntries *int `json:"maxEntries,omitempty"`
	// MaxBytes bounds the memory the remembered tokens take (a quantity: 64Mi), most of it
	// outside the Go heap and so beside GOMEMLIMIT (docs/install.md); the oldest are evicted
	// to make room.
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`
}

// JWTAuthenticator is one trusted issuer, as in kube-apiserver's AuthenticationConfiguration.
type JWTAuthenticator struct {
	Issuer               Issuer                `json:"issuer"`
	ClaimValidationRules []ClaimValidationRule `json:"claimValidationRules,omitempty"`
	ClaimMappings        ClaimMappings         `json:"claimMappings"`
	UserValidationRules  []UserValidationRule  `json:"userValidationRules,omitempty"`

	// Expressions are the entry's CEL expressions, compiled by Validate (or
	// ValidateJWTAuthenticator); nil when the entry has none. They are never read from the
	// file. Validate again after changing the entry.
	Expressions *Expressions `json:"-"`
}

// Issuer says whom to trust and for which audiences.
type Issuer struct {
	// URL must equal the iss claim of the tokens, exactly.
	URL string `json:"url"`
	// DiscoveryURL, when set, is where the discovery document is fetched from instead of
	// URL + "/.well-known/openid-configuration". The document's issuer must still equal URL.
	DiscoveryURL string `json:"discoveryURL,omitempty"`
	// CertificateAuthority is PEM to trust for the discovery and JWKS fetches.
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// Audiences the token's aud must contain (one of them, per AudienceMatchPolicy).
	Audiences []string `json:"audiences"`
	// AudienceMatchPolicy is MatchAny; required when there is more than one audience.
	AudienceMatchPolicy AudienceMatchPolicy `json:"audienceMatchPolicy,omitempty"`
	// EgressSelectorType is accepted so that an entry pasted from kube-apiserver's
	// AuthenticationConfiguration loads as it is. The webhook runs on the control plane and
	// reaches the issuer directly, which is what "controlplane" means; "cluster" (through
	// the konnectivity proxy) is refused, since the webhook has no egress selector.
	EgressSelectorType EgressSelectorType `json:"egressSelectorType,omitempty"`
}

// EgressSelectorType is kube-apiserver's issuer.egressSelectorType.
type EgressSelectorType string

// EgressSelectorControlPlane is the only egress the webhook has: direct, from the control
// plane.
const EgressSelectorControlPlane EgressSelectorType = "controlplane"

// AudienceMatchPolicy says how the token's aud is matched against Audiences.
type AudienceMatchPolicy string

// AudienceMatchPolicyMatchAny accepts a token whose aud contains any configured audience.
const AudienceMatchPolicyMatchAny AudienceMatchPolicy = "MatchAny"

// ClaimValidationRule is a requirement on the token's claims.
type ClaimValidationRule struct {
	Claim         string `json:"claim,omitempty"`
	RequiredValue string `json:"requiredValue,omitempty"`
	Expression    string `json:"expression,omitempty"`
	Message       string `json:"message,omitempty"`
}

// ClaimMappings turn claims into the Kubernetes user.
type ClaimMappings struct {
	Username PrefixedClaimOrExpression `json:"username"`
	Groups   PrefixedClaimOrExpression `json:"groups,omitempty"`
	UID      ClaimOrExpression         `json:"uid,omitempty"`
	Extra    []ExtraMapping            `json:"extra,omitempty"`
}

// PrefixedClaimOrExpression takes a value from a claim (with a prefix) or an expression.
type PrefixedClaimOrExpression struct {
	Claim string `json:"claim,omitempty"`
	// Prefix is required whenever Claim is set; "" is a valid, explicit choice.
	Prefix     *string `json:"prefix,omitempty"`
	Expression string  `json:"expression,omitempty"`
}

// ClaimOrExpression takes a value from a claim or an expression.
type ClaimOrExpression struct {
	Claim      string `json:"claim,omitempty"`
	Expression string `json:"expression,omitempty"`
}

// ExtraMapping fills one key of the user's extra attributes.
type ExtraMapping struct {
	Key             string `json:"key"`
	ValueExpression string `json:"valueExpression"`
}

// UserValidationRule is a requirement on the final user.
type UserValidationRule struct {
	Expression string `json:"expression"`
	Message    string `json:"message,omitempty"`
}
