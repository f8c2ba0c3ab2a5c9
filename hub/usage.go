package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// usageRecord is one line of an agent's local record of the requests it
// answered: the policy requires that the provider sees every use of its
// data, independently of the platform's audit log.
type usageRecord struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Job     string    `json:"job,omitempty"`
	Bank    string    `json:"bank,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Scope   string    `json:"scope,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// recordUse appends r to <data-dir>/usage.jsonl, logging a failure.
func (a *Agent) recordUse(r usageRecord) {
	if err := a.recordUses([]usageRecord{r}); err != nil {
		a.log.Error("usage record", "error", err)
	}
}

// recordUses appends records to <data-dir>/usage.jsonl with one buffered
// write. It reports a failure, so a batch whose uses are not on record is
// not answered.
func (a *Agent) recordUses(recs []usageRecord) error {
	if a.cfg.DataDir == "" || len(recs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if r.Time.IsZero() {
			r.Time = time.Now().UTC()
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("encode usage record: %w", err)
		}
	}
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	f, err := os.OpenFile(filepath.Join(a.cfg.DataDir, "usage.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
