package audit

import (
	"context"
	"strconv"

	"veil/authz/grant"
)

// GrantRecorder writes every grant decision to the log; set it as
// grant.Config.Recorder so allow and deny entries are committed before
// Verify returns. CheckedBy names the party running the verifier (the
// platform, or a provider agent on its own local log).
type GrantRecorder struct {
	Log       *Log
	CheckedBy string
}

var _ grant.DecisionRecorder = GrantRecorder{}

// RecordDecision implements grant.DecisionRecorder.
func (r GrantRecorder) RecordDecision(ctx context.Context, d grant.Decision) error {
	_, err := r.Log.Append(ctx, EntryFromDecision(d, r.CheckedBy))
	return err
}

// EntryFromDecision builds the audit entry for a grant decision. The subject
// is set only from verified claims; for a token that never verified, the
// USCC it claims goes in details["claimed_subject"] so a forgery cannot put
// entries into an enterprise's own history.
func EntryFromDecision(d grant.Decision, checkedBy string) Entry {
	e := Entry{
		Time:     d.Time,
		Kind:     KindRequestDenied,
		Actor:    d.Request.Audience,
		Scopes:   d.Request.Scopes,
		JobID:    d.Request.JobID,
		Decision: Deny,
		Reason:   string(d.Reason),
		Details:  map[string]string{},
	}
	if d.Allowed {
		e.Kind, e.Decision = KindRequestAllowed, Allow
	}
	if checkedBy != "" {
		e.Details["checked_by"] = checkedBy
	}
	if d.Detail != "" {
		e.Details["detail"] = d.Detail
	}
	if d.TokenSHA256 != "" {
		e.Details["token_sha256"] = d.TokenSHA256
	}
	if d.Claims != nil {
		e.Subject = d.Claims.Issuer
		e.GrantID = d.Claims.ID
		e.Purpose = d.Claims.Purpose
	} else if d.ClaimedIssuer != "" {
		e.Details["claimed_subject"] = d.ClaimedIssuer
	}
	if d.Request.Subject != "" && d.Request.Subject != e.Subject {
		e.Details["requested_subject"] = d.Request.Subject
	}
	if d.Uses > 0 {
		e.Details["uses"] = strconv.FormatInt(d.Uses, 10)
	}
	e.Providers = grant.ScopeProviders(d.Request.Scopes)
	return e
}
