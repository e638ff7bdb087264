package connect

import (
	"idbridge/models"
)

// Reasons of a failed verification ([Unauthorized]). They are stable:
// metrics count failures by them and tests match them.
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
	// ReasonUnknownSite is a token whose issuer is no installed site, and
	// ReasonUninstalledSite one whose site has uninstalled the app
	// (app/sites decides both; they are counted with the others).
	ReasonUnknownSite     = "unknown_site"
	ReasonUninstalledSite = "uninstalled_site"
)

// Unauthorized is the error of every failed verification: a models.Error
// with code unauthorized (the HTTP layer answers 401), reason one of the
// Reason constants, and message a single client-safe line that never
// contains the token.
func Unauthorized(reason, message string) *models.Error {
	return &models.Error{Code: models.CodeUnauthorized, Reason: reason, Message: message}
}

// ReasonOf returns the reason of the failed verification in err's chain,
// or "" when err is not one.
func ReasonOf(err error) string {
	if e, ok := models.AsError(err); ok {
		return e.Reason
	}
	return ""
}

func authErr(reason, message string) *models.Error { return Unauthorized(reason, message) }
