package authn

import (
	"errors"
	"fmt"
)

// Reason is a short, stable name for why a token was not accepted. It is a metric label and
// a log field; it is never sent to the caller.
type Reason string

// Reasons a token is denied (or, for the retryable ones, not decided yet).
const (
	ReasonMalformed        Reason = "malformed_token"
	ReasonUnknownIssuer    Reason = "unknown_issuer"
	ReasonIssuerNotReady   Reason = "issuer_not_ready"
	ReasonKeysUnavailable  Reason = "keys_unavailable"
	ReasonUnknownKey       Reason = "unknown_key"
	ReasonBadSignature     Reason = "bad_signature"
	ReasonAlgorithm        Reason = "unsupported_algorithm"
	ReasonExpired          Reason = "expired"
	ReasonNotYetValid      Reason = "not_yet_valid"
	ReasonAudience         Reason = "audience_mismatch"
	ReasonInvalidClaims    Reason = "invalid_claims"
	ReasonClaimRule        Reason = "claim_rule_failed"
	ReasonUsername         Reason = "invalid_username"
	ReasonEmailNotVerified Reason = "email_not_verified"
	ReasonReservedUsername Reason = "reserved_username"
	ReasonGroups           Reason = "invalid_groups"
	ReasonUID              Reason = "invalid_uid"
	ReasonExtra            Reason = "invalid_extra"
	ReasonUserRule         Reason = "user_rule_failed"
	ReasonNoMapping        Reason = "no_mapping"
	ReasonMapping          Reason = "mapping_failed"
	ReasonMappingPending   Reason = "mapping_not_loaded"
	ReasonInternal         Reason = "internal_error"
	ReasonOverloaded       Reason = "overloaded"
)

// Denial is the error for a token that is not accepted.
type Denial struct {
	Reason Reason
	// Retryable is true when the token could not be judged now (an issuer not yet
	// discovered, keys that cannot be fetched): the caller must not cache the answer.
	Retryable bool
	// Err holds the details, for the log.
	Err error
}

func (d *Denial) Error() string { return fmt.Sprintf("%s: %v", d.Reason, d.Err) }

func (d *Denial) Unwrap() error { return d.Err }

// Deny returns a definitive denial.
func Deny(reason Reason, format string, args ...any) *Denial {
	return &Denial{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Undecided returns a denial the caller should retry rather than cache.
func Undecided(reason Reason, err error) *Denial {
	return &Denial{Reason: reason, Retryable: true, Err: err}
}

// AsDenial returns err as a *Denial, wrapping anything else as an internal, retryable error.
func AsDenial(err error) *Denial {
	if d, ok := err.(*Denial); ok {
		return d
	}
	if err == nil {
		return nil
	}
	var d *Denial
	if errors.As(err, &d) {
		return d
	}
	return Undecided(ReasonInternal, err)
}
