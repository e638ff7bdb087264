package connect

import (
	"idbridge/models"
)

// Reasons of an [AuthError]. They are stable: metrics count failures by them
// and tests match them.
const (
	ReasonMissingToken          = "missing_token"
	ReasonTokenInQueryAndHeader = "token_in_query_and_header"
	ReasonBadAuthScheme         = "bad_auth_scheme"
	ReasonMalformed             = "malformed"
	ReasonBadAlg                = "bad_alg"
	ReasonBadSignature          = "bad_signature"
	ReasonExpired               = "expired"
	ReasonNoExp                 = "no_exp"
	ReasonNotYetValid           = "not_yet_valid"
	ReasonBadQSH                = "bad_qsh"
	ReasonContextQSHOnURLRoute  = "context_qsh_on_url_route"
	ReasonURLQSHOnContextRoute  = "url_qsh_on_context_route"
	ReasonNoSub                 = "no_sub"
	ReasonBadSub                = "bad_sub"
	ReasonTooLongLived          = "too_long_lived"
	ReasonIssuedInFuture        = "iat_in_future"
	ReasonBadKid                = "bad_kid"
	ReasonUnknownKid            = "unknown_kid"
	ReasonKeyServerUnavailable  = "key_server_unavailable"
	ReasonKeyFetchLimited       = "key_fetch_limited"
	ReasonUntrustedSite         = "untrusted_site"
	ReasonBadAud                = "bad_aud"
	ReasonBadIss                = "bad_iss"
)

// AuthError is the error of every failed verification. Reason is one of the
// Reason constants; Message is a single client-safe line and never contains
// the token.
type AuthError struct {
	Reason  string
	Message string
}

func (e *AuthError) Error() string {
	return "connect jwt " + e.Reason + ": " + e.Message
}

// Unwrap lets errors.As find a *models.Error with code unauthorized, which
// the HTTP layer maps to 401 with Message as the answer.
func (e *AuthError) Unwrap() error {
	return &models.Error{Code: models.CodeUnauthorized, Message: e.Message}
}

func authErr(reason, message string) *AuthError {
	return &AuthError{Reason: reason, Message: message}
}
