package hub

import (
	"encoding/json"
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

// recordUse appends r to <data-dir>/usage.jsonl.
func (a *Agent) recordUse(r usageRecord) {
	if a.cfg.DataDir == "" {
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	b, _ := json.Marshal(r)
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	f, err := os.OpenFile(filepath.Join(a.cfg.DataDir, "usage.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		a.log.Error("usage record", "error", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		a.log.Error("usage record", "error", err)
	}
}
