package grant

import (
	"errors"
	"fmt"
)

// Reason says, machine-readably, why a grant was refused.
type Reason string

// The refusal reasons. The strings are stable: they are written to the audit
// log and shown to banks.
const (
	ReasonMalformed         Reason = "malformed"
	ReasonOversized         Reason = "oversized"
	ReasonAlgNotAllowed     Reason = "alg_not_allowed"
	ReasonBadSignature      Reason = "bad_signature"
	ReasonUnknownEnterprise Reason = "unknown_enterprise"
	ReasonMissingJTI        Reason = "missing_jti"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonWrongSubject      Reason = "wrong_subject"
	ReasonOutOfScope        Reason = "out_of_scope"
	ReasonRevoked           Reason = "revoked"
	ReasonOverUseCount      Reason = "over_use_count"
)

// Refusal is the error Verify returns when a grant does not authorize the
// request. Use errors.As to get it; any other error from Verify is an
// internal failure (a store unreachable), not a judgement on the grant.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return "grant refused: " + string(r.Reason)
	}
	return fmt.Sprintf("grant refused: %s: %s", r.Reason, r.Detail)
}

// Is lets errors.Is(err, &Refusal{Reason: R}) match any refusal with reason R.
func (r *Refusal) Is(target error) bool {
	t, ok := target.(*Refusal)
	return ok && t.Reason == r.Reason && t.Detail == ""
}

func refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the refusal reason in err, or "" if err is not a refusal.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}
