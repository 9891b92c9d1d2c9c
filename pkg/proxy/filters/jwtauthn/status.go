package jwtauthn

// Status is the outcome of verifying a request's tokens: Envoy's
// JwtVerify::Status (source/common/jwt/status.h), with the same texts
// (getStatusString, status.cc), which are the bodies of the filter's 401
// and 403 answers. Only the statuses this implementation can produce are
// listed.
type Status uint8

const (
	StatusOk Status = iota
	JwtMissed
	JwtNotYetValid
	JwtExpired
	JwtBadFormat
	JwtHeaderParseErrorBadBase64
	JwtHeaderParseErrorBadJSON
	JwtHeaderBadAlg
	JwtHeaderNotImplementedAlg
	JwtHeaderBadKid
	JwtPayloadParseErrorBadBase64
	JwtEd25519SignatureWrongLength
	JwtPayloadParseErrorBadJSON
	JwtPayloadParseErrorIssNotString
	JwtPayloadParseErrorSubNotString
	JwtPayloadParseErrorIatNotInteger
	JwtPayloadParseErrorIatOutOfRange
	JwtPayloadParseErrorNbfNotInteger
	JwtPayloadParseErrorNbfOutOfRange
	JwtPayloadParseErrorExpNotInteger
	JwtPayloadParseErrorExpOutOfRange
	JwtPayloadParseErrorJtiNotString
	JwtPayloadParseErrorAudNotString
	JwtSignatureParseErrorBadBase64
	JwtUnknownIssuer
	JwtAudienceNotAllowed
	JwtVerificationFail
	JwksNoValidKeys
	JwksKidAlgMismatch
)

var statusText = [...]string{
	StatusOk:                          "OK",
	JwtMissed:                         "Jwt is missing",
	JwtNotYetValid:                    "Jwt not yet valid",
	JwtExpired:                        "Jwt is expired",
	JwtBadFormat:                      "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	JwtHeaderParseErrorBadBase64:      "Jwt header is an invalid Base64url encoded",
	JwtHeaderParseErrorBadJSON:        "Jwt header is an invalid JSON",
	JwtHeaderBadAlg:                   "Jwt header [alg] field is required and must be a string",
	JwtHeaderNotImplementedAlg:        "Jwt header [alg] is not supported",
	JwtHeaderBadKid:                   "Jwt header [kid] field is not a string",
	JwtPayloadParseErrorBadBase64:     "Jwt payload is an invalid Base64url encoded",
	JwtEd25519SignatureWrongLength:    "Jwt ED25519 signature is wrong length",
	JwtPayloadParseErrorBadJSON:       "Jwt payload is an invalid JSON",
	JwtPayloadParseErrorIssNotString:  "Jwt payload [iss] field is not a string",
	JwtPayloadParseErrorSubNotString:  "Jwt payload [sub] field is not a string",
	JwtPayloadParseErrorIatNotInteger: "Jwt payload [iat] field is not an integer",
	JwtPayloadParseErrorIatOutOfRange: "Jwt payload [iat] field is not a positive 64 bit integer",
	JwtPayloadParseErrorNbfNotInteger: "Jwt payload [nbf] field is not an integer",
	JwtPayloadParseErrorNbfOutOfRange: "Jwt payload [nbf] field is not a positive 64 bit integer",
	JwtPayloadParseErrorExpNotInteger: "Jwt payload [exp] field is not an integer",
	JwtPayloadParseErrorExpOutOfRange: "Jwt payload [exp] field is not a positive 64 bit integer",
	JwtPayloadParseErrorJtiNotString:  "Jwt payload [jti] field is not a string",
	JwtPayloadParseErrorAudNotString:  "Jwt payload [aud] field is not a string or string list",
	JwtSignatureParseErrorBadBase64:   "Jwt signature is an invalid Base64url encoded",
	JwtUnknownIssuer:                  "Jwt issuer is not configured",
	JwtAudienceNotAllowed:             "Audiences in Jwt are not allowed",
	JwtVerificationFail:               "Jwt verification fails",
	JwksNoValidKeys:                   "Jwks doesn't have any valid public key",
	JwksKidAlgMismatch:                "Jwks doesn't have key to match kid or alg from Jwt",
}

// String is Envoy's text for the status.
func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return "unknown"
}
