package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/oidc-authenticator/oidc-authenticator/mapping"
	"github.com/oidc-authenticator/oidc-authenticator/webhook/authn"
)

// MaxRequestBytes bounds a TokenReview request body.
const MaxRequestBytes = 1 << 20

// Results of a TokenReview, as metric labels.
const (
	resultAllowed    = "allowed"
	resultDenied     = "denied"
	resultUndecided  = "undecided"
	resultBadRequest = "bad_request"
)

type errorBody struct {
	Message string `json:"message"`
}

// authenticate answers POST /authenticate.
//
// A token that is not accepted gets 200 with authenticated=false and an empty status.error:
// a clean deny, which kube-apiserver caches. A token that cannot be judged now gets a short
// status.error, so kube-apiserver neither caches the answer nor shows our details to the caller.
func (s *Server) authenticate(c echo.Context) error {
	start := time.Now()
	req := c.Request()
	if s.requireClientCert && (req.TLS == nil || len(req.TLS.VerifiedChains) == 0) {
		s.observe(start, resultBadRequest, "no_client_certificate")
		return c.JSON(http.StatusUnauthorized, errorBody{"a client certificate signed by the configured clientCAFile is required"})
	}
	buf := s.buffer()
	defer s.release(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(c.Response(), req.Body, MaxRequestBytes)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.observe(start, resultBadRequest, "body_too_large")
			return c.JSON(http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("the request body is larger than %d bytes", MaxRequestBytes)})
		}
		s.observe(start, resultBadRequest, "unreadable_body")
		return c.JSON(http.StatusBadRequest, errorBody{"could not read the request body: " + err.Error()})
	}
	review, err := decodeReview(buf.Bytes())
	if err != nil {
		s.observe(start, resultBadRequest, "malformed_request")
		s.logMalformed(req.RemoteAddr, err)
		return c.JSON(http.StatusBadRequest, errorBody{err.Error()})
	}

	var applied mapping.Applied // which mapping version and entries made the user, for the log
	ctx := mapping.WithApplied(req.Context(), &applied)
	res, err := s.auth.Authenticate(ctx, review.Spec.Token)
	if err != nil {
		return s.refuse(c, start, review.APIVersion, res, &applied, authn.AsDenial(err))
	}
	s.logDecision(ctx, res, &applied, resultAllowed, "", nil)
	s.observe(start, resultAllowed, "")
	buf.Reset() // the review is decoded: its strings no longer share the buffer
	if err := json.NewEncoder(buf).Encode(reviewResponse(review.APIVersion, allowed(res.User))); err != nil {
		return fmt.Errorf("encode the TokenReview answer: %w", err)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf.Bytes())
}

// maxPooledBuffer is the largest buffer kept for reuse: a request or answer of a normal size.
const maxPooledBuffer = 64 << 10

// buffer returns a buffer for one request's body and answer. Reusing them spares the garbage
// collector a few KiB per review.
func (s *Server) buffer() *bytes.Buffer {
	if b, ok := s.buffers.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// release keeps b for reuse unless an unusually large request grew it.
func (s *Server) release(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		s.buffers.Put(b)
	}
}

// refuse answers a token that was not accepted: the clean deny (made once, at start) when it
// is invalid, a 429 when too many tokens are being verified (kube-apiserver retries it with
// backoff and caches neither), else the undecided answer for its reason.
func (s *Server) refuse(c echo.Context, start time.Time, apiVersion string, res authn.Result, applied *mapping.Applied, d *authn.Denial) error {
	result := resultDenied
	if d.Retryable {
		result = resultUndecided
	}
	s.logDecision(c.Request().Context(), res, applied, result, string(d.Reason), d)
	s.observe(start, result, string(d.Reason))
	switch {
	case !d.Retryable:
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.denied[apiVersion])
	case d.Reason == authn.ReasonOverloaded:
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusTooManyRequests, errorBody{"oidc-authenticator is verifying as many tokens as it may at once (server.maxInFlightVerifications); retry shortly"})
	default:
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.undecidedAnswer(apiVersion, d.Reason))
	}
}

// allowed is the status of an accepted token.
func allowed(u authn.User) authenticationv1.TokenReviewStatus {
	st := authenticationv1.TokenReviewStatus{Authenticated: true,
		User: authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}}
	if len(u.Extra) > 0 {
		st.User.Extra = make(map[string]authenticationv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			st.User.Extra[k] = authenticationv1.ExtraValue(v)
		}
	}
	return st
}

func (s *Server) observe(start time.Time, result, reason string) {
	if s.metrics == nil {
		return
	}
	s.metrics.Requests.WithLabelValues(result, reason).Inc()
	s.metrics.Duration.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

type undecidedKey struct {
	apiVersion string
	reason     authn.Reason
}

// undecidedAnswer is the answer for a token that cannot be judged now: authenticated false
// with a short status.error, so that kube-apiserver neither caches it nor shows our details.
// It depends only on the version and the reason, and is made once for each.
func (s *Server) undecidedAnswer(apiVersion string, reason authn.Reason) []byte {
	key := undecidedKey{apiVersion, reason}
	if b, ok := s.undecided.Load(key); ok {
		return b.([]byte)
	}
	b, _ := json.Marshal(reviewResponse(apiVersion, authenticationv1.TokenReviewStatus{
		Error: fmt.Sprintf("oidc-authenticator cannot verify the token right now (%s); try again", reason),
	}))
	s.undecided.Store(key, b)
	return b
}

// KnownResults are the TokenReview results and reasons known in advance, for metrics that
// exist from the start at 0.
func KnownResults() map[string][]string {
	denied := []string{}
	for _, r := range []authn.Reason{authn.ReasonMalformed, authn.ReasonUnknownIssuer, authn.ReasonUnknownKey,
		authn.ReasonBadSignature, authn.ReasonAlgorithm, authn.ReasonExpired, authn.ReasonNotYetValid,
		authn.ReasonAudience, authn.ReasonInvalidClaims, authn.ReasonClaimRule, authn.ReasonUsername,
		authn.ReasonEmailNotVerified, authn.ReasonReservedUsername, authn.ReasonGroups, authn.ReasonUID,
		authn.ReasonExtra, authn.ReasonUserRule, authn.ReasonNoMapping, authn.ReasonMapping} {
		denied = append(denied, string(r))
	}
	undecided := []string{}
	for _, r := range []authn.Reason{authn.ReasonIssuerNotReady, authn.ReasonKeysUnavailable, authn.ReasonUnknownKey,
		authn.ReasonBadSignature, authn.ReasonInvalidClaims, authn.ReasonMappingPending, authn.ReasonInternal, authn.ReasonOverloaded} {
		undecided = append(undecided, string(r))
	}
	return map[string][]string{
		resultAllowed:    {""},
		resultDenied:     denied,
		resultUndecided:  undecided,
		resultBadRequest: {"no_client_certificate", "body_too_large", "unreadable_body", "malformed_request"},
	}
}
