package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxIssuers is the most jwt[] entries accepted, as in kube-apiserver.
const MaxIssuers = 64

// Validate checks the whole configuration and returns every problem, each naming its field.
// It compiles the CEL expressions of each jwt[] entry into the entry's Expressions: a
// compile or type error is a problem naming the field and the expression.
func (c *Configuration) Validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	errs = append(errs, validateServer(c.Server, field.NewPath("server"))...)
	errs = append(errs, validateJWT(c.JWT, field.NewPath("jwt"))...)
	errs = append(errs, validateMapping(c.Mapping, field.NewPath("mapping"))...)
	errs = append(errs, validateCache(c.Cache, field.NewPath("cache"))...)
	return errs
}

func validateServer(s Server, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if _, port, err := net.SplitHostPort(s.Address); err != nil || port == "" {
		errs = append(errs, field.Invalid(p.Child("address"), s.Address, "must be host:port, e.g. 127.0.0.1:21362"))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, field.Required(p.Child("keyFile"), "certFile and keyFile must be set together"))
	}
	if s.StateDir == "" {
		errs = append(errs, field.Required(p.Child("stateDir"), ""))
	}
	switch s.ClientAuth {
	case ClientAuthRequired:
	case ClientAuthNone:
		if s.ClientCAFile != "" {
			errs = append(errs, field.Invalid(p.Child("clientAuth"), s.ClientAuth, "clientAuth none contradicts clientCAFile: remove one of them"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("clientAuth"), s.ClientAuth, []ClientAuth{ClientAuthRequired, ClientAuthNone}))
	}
	if m := s.MetricsAddress; m != nil && *m != "" {
		if _, port, err := net.SplitHostPort(*m); err != nil || port == "" {
			errs = append(errs, field.Invalid(p.Child("metricsAddress"), *m, `must be host:port, e.g. 127.0.0.1:21363, or "" to turn the listener off`))
		} else if *m == s.Address {
			errs = append(errs, field.Duplicate(p.Child("metricsAddress"), *m))
		}
	}
	if n := s.MaxInFlightVerifications; n != nil && *n < 1 {
		errs = append(errs, field.Invalid(p.Child("maxInFlightVerifications"), *n, "must be at least 1"))
	}
	return errs
}

func validateJWT(jwts []JWTAuthenticator, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(jwts) == 0 {
		errs = append(errs, field.Required(p, "at least one issuer is required"))
	}
	if len(jwts) > MaxIssuers {
		errs = append(errs, field.TooMany(p, len(jwts), MaxIssuers))
	}
	seenURL, seenDiscovery := sets.New[string](), sets.New[string]()
	var cs compilers
	for i := range jwts {
		j, jp := &jwts[i], p.Index(i)
		errs = append(errs, validateJWTAuthenticator(j, jp, &cs)...)
		ip := jp.Child("issuer")
		if j.Issuer.URL != "" {
			if seenURL.Has(j.Issuer.URL) {
				errs = append(errs, field.Duplicate(ip.Child("url"), j.Issuer.URL))
			}
			seenURL.Insert(j.Issuer.URL)
		}
		if j.Issuer.DiscoveryURL != "" {
			if seenDiscovery.Has(j.Issuer.DiscoveryURL) {
				errs = append(errs, field.Duplicate(ip.Child("discoveryURL"), j.Issuer.DiscoveryURL))
			}
			seenDiscovery.Insert(j.Issuer.DiscoveryURL)
		}
	}
	return errs
}

// ValidateJWTAuthenticator checks one jwt[] entry on its own (Validate also checks that
// issuer URLs are unique across entries) and compiles its CEL expressions into
// j.Expressions. p is where the entry is, e.g. jwt[0]; errors name the field under it.
func ValidateJWTAuthenticator(j *JWTAuthenticator, p *field.Path) field.ErrorList {
	var cs compilers
	return validateJWTAuthenticator(j, p, &cs)
}

func validateJWTAuthenticator(j *JWTAuthenticator, p *field.Path, cs *compilers) field.ErrorList {
	var errs field.ErrorList
	x := &Expressions{}
	errs = append(errs, validateIssuer(j.Issuer, p.Child("issuer"))...)
	errs = append(errs, validateClaimRules(j.ClaimValidationRules, p.Child("claimValidationRules"), cs, x)...)
	errs = append(errs, validateClaimMappings(j.ClaimMappings, p.Child("claimMappings"), cs, x)...)
	errs = append(errs, validateUserRules(j.UserValidationRules, p.Child("userValidationRules"), cs, x)...)
	j.Expressions = nil
	if len(errs) == 0 && !x.empty() {
		j.Expressions = x
	}
	return errs
}

func validateIssuer(is Issuer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if is.URL == "" {
		errs = append(errs, field.Required(p.Child("url"), ""))
	} else {
		errs = append(errs, validateHTTPSURL(is.URL, p.Child("url"))...)
	}
	if is.DiscoveryURL != "" {
		dp := p.Child("discoveryURL")
		errs = append(errs, validateHTTPSURL(is.DiscoveryURL, dp)...)
		if strings.TrimRight(is.DiscoveryURL, "/") == strings.TrimRight(is.URL, "/") {
			errs = append(errs, field.Invalid(dp, is.DiscoveryURL, "must differ from issuer.url; leave it empty to use the issuer's own discovery document"))
		}
	}
	ap := p.Child("audiences")
	if len(is.Audiences) == 0 {
		errs = append(errs, field.Required(ap, "at least one audience (the OIDC client ID the tokens are issued for)"))
	}
	seenAud := sets.New[string]()
	for i, a := range is.Audiences {
		switch {
		case a == "":
			errs = append(errs, field.Required(ap.Index(i), "an audience must not be empty"))
		case seenAud.Has(a):
			errs = append(errs, field.Duplicate(ap.Index(i), a))
		}
		seenAud.Insert(a)
	}
	switch es := p.Child("egressSelectorType"); is.EgressSelectorType {
	case "", EgressSelectorControlPlane:
	case "cluster":
		errs = append(errs, field.Invalid(es, is.EgressSelectorType, "the webhook fetches discovery and keys directly from the control-plane node it runs on and has no egress selector (konnectivity); use controlplane, or omit it"))
	default:
		errs = append(errs, field.NotSupported(es, is.EgressSelectorType, []string{string(EgressSelectorControlPlane)}))
	}
	mp := p.Child("audienceMatchPolicy")
	switch {
	case len(is.Audiences) > 1 && is.AudienceMatchPolicy != AudienceMatchPolicyMatchAny:
		errs = append(errs, field.Invalid(mp, is.AudienceMatchPolicy, "must be MatchAny when more than one audience is set"))
	case is.AudienceMatchPolicy != "" && is.AudienceMatchPolicy != AudienceMatchPolicyMatchAny:
		errs = append(errs, field.NotSupported(mp, is.AudienceMatchPolicy, []string{string(AudienceMatchPolicyMatchAny)}))
	}
	if is.CertificateAuthority != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(is.CertificateAuthority)) {
			errs = append(errs, field.Invalid(p.Child("certificateAuthority"), "<PEM>", "holds no PEM certificate that parses"))
		}
	}
	return errs
}

func validateHTTPSURL(raw string, p *field.Path) field.ErrorList {
	u, err := url.Parse(raw)
	if err != nil {
		return field.ErrorList{field.Invalid(p, raw, fmt.Sprintf("not a URL: %v", err))}
	}
	var errs field.ErrorList
	if u.Scheme != "https" {
		errs = append(errs, field.Invalid(p, raw, "must use the https scheme"))
	}
	if u.Host == "" {
		errs = append(errs, field.Invalid(p, raw, "must have a host"))
	}
	if u.User != nil {
		errs = append(errs, field.Invalid(p, raw, "must not contain a username or password"))
	}
	if u.RawQuery != "" || u.ForceQuery {
		errs = append(errs, field.Invalid(p, raw, "must not contain a query"))
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		errs = append(errs, field.Invalid(p, raw, "must not contain a fragment"))
	}
	return errs
}

func validateMapping(m Mapping, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var set []string
	if m.ConfigMap != "" {
		set = append(set, "configMap")
	}
	if m.ConfigMapSelector != nil {
		set = append(set, "configMapSelector")
	}
	if m.File != "" {
		set = append(set, "file")
	}
	if len(set) > 1 {
		errs = append(errs, field.Forbidden(p, "set one of configMap, configMapSelector and file, not "+strings.Join(set, " and ")))
	}
	if m.RequireMatch && len(set) == 0 {
		errs = append(errs, field.Invalid(p.Child("requireMatch"), true, "needs configMap, configMapSelector or file: without a mapping every token would be denied"))
	}
	if m.ConfigMap != "" {
		if _, _, err := SplitConfigMap(m.ConfigMap); err != nil {
			errs = append(errs, field.Invalid(p.Child("configMap"), m.ConfigMap, err.Error()))
		}
	}
	if s := m.ConfigMapSelector; s != nil {
		sp := p.Child("configMapSelector")
		if s.Namespace == "" {
			errs = append(errs, field.Required(sp.Child("namespace"), "the namespace of the ConfigMaps, e.g. kube-system"))
		} else {
			for _, msg := range validation.IsDNS1123Label(s.Namespace) {
				errs = append(errs, field.Invalid(sp.Child("namespace"), s.Namespace, msg))
			}
		}
		if strings.TrimSpace(s.LabelSelector) == "" {
			errs = append(errs, field.Required(sp.Child("labelSelector"), "a label selector, e.g. oidc-authenticator.io/mapping=true; an empty one would merge every ConfigMap of the namespace"))
		} else if sel, err := labels.Parse(s.LabelSelector); err != nil {
			errs = append(errs, field.Invalid(sp.Child("labelSelector"), s.LabelSelector, err.Error()))
		} else if sel.Empty() {
			errs = append(errs, field.Invalid(sp.Child("labelSelector"), s.LabelSelector, "selects every ConfigMap of the namespace; name a label, e.g. oidc-authenticator.io/mapping=true"))
		}
	}
	return errs
}

// SplitConfigMap splits "namespace/name".
func SplitConfigMap(ref string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("must be namespace/name, e.g. kube-system/oidc-auth")
	}
	return ns, n, nil
}

func validateCache(c Cache, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.TTL != nil && c.TTL.Duration < 0 {
		errs = append(errs, field.Invalid(p.Child("ttl"), c.TTL.Duration.String(), "must not be negative; 0 disables the cache"))
	}
	if c.MaxEntries != nil && *c.MaxEntries < 1 {
		errs = append(errs, field.Invalid(p.Child("maxEntries"), *c.MaxEntries, "must be at least 1"))
	}
	if c.MaxBytes != nil && c.MaxBytes.Value() < 1<<20 {
		errs = append(errs, field.Invalid(p.Child("maxBytes"), c.MaxBytes.String(), "must be at least 1Mi"))
	}
	return errs
}
