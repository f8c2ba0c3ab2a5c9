package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/hubtest"
	"veil/modeling/dataset"
)

// BenchmarkPlatformAuthorizeBatch16k measures the platform's batch check of
// one scoring call (16384 distinct grants of distinct enterprises) with
// every signature already cached: the use-count and audit transaction.
func BenchmarkPlatformAuthorizeBatch16k(b *testing.B) {
	d := hubtest.Start(b)
	ctx := context.Background()
	const n = 16384
	ents := make([]grant.Enterprise, n)
	items := make([]hub.AuthorizeItem, n)
	for i := range items {
		c17 := fmt.Sprintf("91%015d", i)
		c, _ := dataset.USCCCheckChar(c17)
		pub, priv, _ := keys.Generate(nil)
		ents[i] = grant.Enterprise{USCC: c17 + string(c), Key: pub}
		tok, _ := grant.Issue(priv, grant.Claims{Issuer: ents[i].USCC, Audience: "bank-a", Scopes: []string{"score:m"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1 << 40})
		items[i] = hub.AuthorizeItem{Token: tok, Request: grant.Request{Audience: "bank-a", Subject: ents[i].USCC, Scopes: []string{"score:m"}, JobID: "bench"}}
	}
	if _, err := d.Platform.ImportEnterprises(ctx, ents); err != nil {
		b.Fatal(err)
	}
	if _, _, err := d.Platform.AuthorizeBatch(ctx, items); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := d.Platform.AuthorizeBatch(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "us/grant")
}

// BenchmarkAgentAuthorizeBatch16k measures a provider's batch check of one
// scoring call (16384 distinct grants, signatures cached): one local
// transaction and one usage-record write.
func BenchmarkAgentAuthorizeBatch16k(b *testing.B) {
	d := hubtest.Start(b, hubtest.AgentSpec{Name: "tax", Role: "provider", Table: table(b, "id,x\na,1\nb,2\n", "")})
	ctx := context.Background()
	const n = 16384
	ents := make([]grant.Enterprise, n)
	items := make([]hub.AuthorizeItem, n)
	for i := range items {
		c17 := fmt.Sprintf("91%015d", i)
		c, _ := dataset.USCCCheckChar(c17)
		pub, priv, _ := keys.Generate(nil)
		ents[i] = grant.Enterprise{USCC: c17 + string(c), Key: pub}
		tok, _ := grant.Issue(priv, grant.Claims{Issuer: ents[i].USCC, Audience: "bank-a", Scopes: []string{"score:m"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1 << 40})
		items[i] = hub.AuthorizeItem{Token: tok, Request: grant.Request{Audience: "bank-a", Subject: ents[i].USCC, Scopes: []string{"score:m"}, JobID: "bench"}}
	}
	if _, err := d.Platform.ImportEnterprises(ctx, ents); err != nil {
		b.Fatal(err)
	}
	a := d.Agents["tax"]
	if _, _, err := a.AuthorizeBatch(ctx, items); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := a.AuthorizeBatch(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "us/grant")
}
