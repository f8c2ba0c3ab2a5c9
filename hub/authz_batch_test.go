package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/hub"
)

// TestAgentAuthorizeBatch checks the provider's batch check: exact use
// counts within a batch, refusals with reasons, and one usage.jsonl line per
// decision, written before the call returns.
func TestAgentAuthorizeBatch(t *testing.T) {
	env := startAuthz(t)
	ctx := context.Background()
	twice, _ := env.issue(t, func(c *grant.Claims) { c.MaxUses = 2 })
	other, _ := env.issue(t, func(c *grant.Claims) { c.Audience = "bank-b" })
	req := grant.Request{Audience: "bank-a", Subject: env.uscc, Scopes: []string{"score:default-v1"}, JobID: "job-1"}
	a := env.d.Agents["tax"]
	usage := filepath.Join(env.d.Dir, "tax", "state", "usage.jsonl")
	before := countLines(t, usage)
	gs, refs, err := a.AuthorizeBatch(ctx, []hub.AuthorizeItem{{twice, req}, {twice, req}, {twice, req}, {other, req}, {"", req}})
	if err != nil {
		t.Fatal(err)
	}
	want := []grant.Reason{"", "", grant.ReasonOverUseCount, grant.ReasonWrongAudience, grant.ReasonMalformed}
	for i, w := range want {
		r, _, _ := hub.GrantRefusal(refs[i])
		if r != w || (w == "") != (gs[i] != nil) {
			t.Errorf("item %d: grant %v refusal %v, want %q", i, gs[i], refs[i], w)
		}
	}
	lines := readUsage(t, usage)[before:]
	if len(lines) != 5 {
		t.Fatalf("%d usage records for 5 decisions", len(lines))
	}
	kinds := []string{"grant_use", "grant_use", "grant_refused", "grant_refused", "grant_refused"}
	for i, l := range lines {
		if l["kind"] != kinds[i] || l["job"] != "job-1" || l["bank"] != "bank-a" {
			t.Errorf("usage record %d: %v", i, l)
		}
	}
	if lines[2]["detail"] != string(grant.ReasonOverUseCount) {
		t.Errorf("refusal record detail %v", lines[2]["detail"])
	}
}

// TestPlatformBatchesExactUnderConcurrency runs concurrent batches that all
// want the same grant: exactly MaxUses are allowed, and every decision of
// every batch is in the audit log.
func TestPlatformBatchesExactUnderConcurrency(t *testing.T) {
	env := startAuthz(t)
	ctx := context.Background()
	tok, _ := env.issue(t, func(c *grant.Claims) { c.MaxUses = 5 })
	req := grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}}
	before, _ := env.d.Platform.AuditLog().Size(ctx)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	const workers, per = 6, 4
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := make([]hub.AuthorizeItem, per)
			for i := range items {
				items[i] = hub.AuthorizeItem{Token: tok, Request: req}
			}
			gs, _, err := env.d.Platform.AuthorizeBatch(ctx, items)
			if err != nil {
				errs <- err
				return
			}
			for _, g := range gs {
				if g != nil {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if allowed.Load() != 5 {
		t.Fatalf("%d uses allowed, want exactly 5", allowed.Load())
	}
	after, _ := env.d.Platform.AuditLog().Size(ctx)
	if after-before != workers*per {
		t.Fatalf("%d audit entries for %d decisions", after-before, workers*per)
	}
	recs, err := env.d.Platform.AuditLog().Query(ctx, audit.Query{Kind: audit.KindRequestAllowed, FromSeq: before})
	if err != nil || len(recs) != 5 {
		t.Fatalf("%d allow entries (%v), want 5", len(recs), err)
	}
}

func countLines(t *testing.T, path string) int { return len(readUsage(t, path)) }

func readUsage(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("usage.jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
