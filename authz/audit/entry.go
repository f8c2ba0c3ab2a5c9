package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind says what an entry records.
type Kind string

// Entry kinds written by Veil. Other lower_snake_case kinds are accepted, so
// new job types do not need a change here.
const (
	KindEnterpriseRegistered Kind = "enterprise_registered"
	KindGrantRegistered      Kind = "grant_registered"
	KindGrantRevoked         Kind = "grant_revoked"
	KindRequestAllowed       Kind = "request_allowed"
	KindRequestDenied        Kind = "request_denied"
	KindPSIJob               Kind = "psi_job"
	KindTrainJob             Kind = "train_job"
	KindScoreJob             Kind = "score_job"
	KindListCheck            Kind = "list_check"
	KindModelRegistered      Kind = "model_registered"
)

// Decisions recorded in Entry.Decision.
const (
	Allow = "allow"
	Deny  = "deny"
)

// MaxEntrySize bounds one encoded entry; the decoder refuses anything larger.
const MaxEntrySize = 64 << 10

// timeLayout is the one time format in entries: UTC, microseconds, fixed
// width, so equal instants always encode to equal bytes.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Entry is one audit log record. Its leaf in the Merkle tree is its
// canonical JSON encoding (Marshal).
type Entry struct {
	Seq       uint64            // position in the log, from 0, dense
	Time      time.Time         // when it was appended (UTC, microseconds)
	Kind      Kind              // what happened
	Actor     string            // the party that acted (bank, provider, platform, auditor)
	Subject   string            // the enterprise's USCC, if the entry is about one
	Providers []string          // providers whose data was involved
	Scopes    []string          // grant scopes requested or granted
	Purpose   string            // the grant's purpose
	Decision  string            // "allow", "deny" or empty
	Reason    string            // refusal reason (grant.Reason) or other explanation
	GrantID   string            // the grant's jti
	JobID     string            // PSI / training / scoring job
	Details   map[string]string // anything else (model, counts, checked_by...)
}

// wireEntry is the JSON form. Marshal re-encodes it through a generic map so
// keys come out sorted whatever the field order here.
type wireEntry struct {
	Seq       uint64            `json:"seq"`
	Time      string            `json:"time"`
	Kind      Kind              `json:"kind"`
	Actor     string            `json:"actor"`
	Subject   string            `json:"subject,omitempty"`
	Providers []string          `json:"providers,omitempty"`
	Scopes    []string          `json:"scopes,omitempty"`
	Purpose   string            `json:"purpose,omitempty"`
	Decision  string            `json:"decision,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	GrantID   string            `json:"grant_id,omitempty"`
	JobID     string            `json:"job_id,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// Validate checks the fields an entry must have and the characters it may
// contain.
func (e *Entry) Validate() error {
	if e.Time.IsZero() {
		return errors.New("audit entry: no time")
	}
	if !validKind(e.Kind) {
		return fmt.Errorf("audit entry: kind %.40q is not lower_snake_case", e.Kind)
	}
	if e.Actor == "" {
		return errors.New("audit entry: no actor")
	}
	if e.Decision != "" && e.Decision != Allow && e.Decision != Deny {
		return fmt.Errorf("audit entry: decision %.20q, want allow, deny or empty", e.Decision)
	}
	strs := []string{e.Actor, e.Subject, e.Purpose, e.Reason, e.GrantID, e.JobID}
	strs = append(strs, e.Providers...)
	strs = append(strs, e.Scopes...)
	for k, v := range e.Details {
		strs = append(strs, k, v)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			return errors.New("audit entry: invalid UTF-8")
		}
	}
	for _, p := range e.Providers {
		if p == "" {
			return errors.New("audit entry: empty provider name")
		}
	}
	return nil
}

func validKind(k Kind) bool {
	if len(k) == 0 || len(k) > 64 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func (e *Entry) wire() wireEntry {
	return wireEntry{
		Seq: e.Seq, Time: e.Time.UTC().Format(timeLayout), Kind: e.Kind, Actor: e.Actor, Subject: e.Subject,
		Providers: e.Providers, Scopes: e.Scopes, Purpose: e.Purpose, Decision: e.Decision, Reason: e.Reason,
		GrantID: e.GrantID, JobID: e.JobID, Details: e.Details,
	}
}

// Marshal returns the canonical JSON of e: keys sorted, no insignificant
// whitespace, no HTML escaping, time in one fixed layout. These bytes are the
// Merkle leaf.
func Marshal(e Entry) ([]byte, error) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return appendCanonical(make([]byte, 0, 512), &e), nil
}

// marshalViaGeneric is the reference canonical encoding: encoding/json of
// the wire form, re-encoded through a generic value so that keys are
// sorted. appendCanonical must produce exactly these bytes (tested); it is
// several times faster, which matters because every grant decision is an
// entry.
func marshalViaGeneric(e Entry) ([]byte, error) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if err := e.Validate(); err != nil {
		return nil, err
	}
	first, err := json.Marshal(e.wire())
	if err != nil {
		return nil, fmt.Errorf("audit entry: encode: %w", err)
	}
	return canonicalize(first)
}

// appendCanonical writes the canonical JSON of a validated entry: the
// wireEntry fields in sorted key order, omitempty as encoding/json applies
// it, strings escaped as encoding/json does without HTML escaping.
func appendCanonical(b []byte, e *Entry) []byte {
	b = append(b, `{"actor":`...)
	b = appendJSONString(b, e.Actor)
	if e.Decision != "" {
		b = append(b, `,"decision":`...)
		b = appendJSONString(b, e.Decision)
	}
	if len(e.Details) > 0 {
		b = append(b, `,"details":{`...)
		ks := make([]string, 0, len(e.Details))
		for k := range e.Details {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for i, k := range ks {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Details[k])
		}
		b = append(b, '}')
	}
	if e.GrantID != "" {
		b = append(b, `,"grant_id":`...)
		b = appendJSONString(b, e.GrantID)
	}
	if e.JobID != "" {
		b = append(b, `,"job_id":`...)
		b = appendJSONString(b, e.JobID)
	}
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(e.Kind))
	b = appendStringList(b, `,"providers":[`, e.Providers)
	if e.Purpose != "" {
		b = append(b, `,"purpose":`...)
		b = appendJSONString(b, e.Purpose)
	}
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, e.Reason)
	}
	b = appendStringList(b, `,"scopes":[`, e.Scopes)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendJSONString(b, e.Subject)
	}
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	return append(b, `"}`...)
}

func appendStringList(b []byte, head string, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, head...)
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString quotes valid UTF-8 as encoding/json does with HTML
// escaping off: \" \\ \b \f \n \r \t, other control characters as
// \u00XX, U+2028 and U+2029 as \u2028 and \u2029, everything else as is.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// canonicalize re-encodes a JSON document with sorted keys (encoding/json
// sorts map keys), numbers kept verbatim, and no HTML escaping.
func canonicalize(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("audit entry: canonicalize: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("audit entry: canonicalize: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses an entry and insists that data is exactly its canonical
// encoding: any other spelling of the same content (reordered keys, spaces,
// escapes, duplicate or differently-cased keys) is an error, because the
// bytes are what the Merkle tree commits to.
func Decode(data []byte) (Entry, error) {
	if len(data) > MaxEntrySize {
		return Entry{}, fmt.Errorf("audit entry: %d bytes, limit %d", len(data), MaxEntrySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireEntry
	if err := dec.Decode(&w); err != nil {
		return Entry{}, fmt.Errorf("audit entry: decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Entry{}, errors.New("audit entry: trailing data after the JSON object")
	}
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("audit entry: time %.40q: %w", w.Time, err)
	}
	e := Entry{
		Seq: w.Seq, Time: t, Kind: w.Kind, Actor: w.Actor, Subject: w.Subject, Providers: w.Providers,
		Scopes: w.Scopes, Purpose: w.Purpose, Decision: w.Decision, Reason: w.Reason, GrantID: w.GrantID,
		JobID: w.JobID, Details: w.Details,
	}
	again, err := Marshal(e)
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, data) {
		return Entry{}, errors.New("audit entry: not in canonical form")
	}
	return e, nil
}
