package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

// Another system upserts people through the API: a repeated call with the
// same Idempotency-Key makes nothing twice, invalid data is kept and
// flagged, two people an upsert finds to be one are merged, a marketer
// reads them without mobiles and emails, and an admin undoes the merge.
func TestE2E_UpsertMergeAndUnmergeThroughTheAPI(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		ctx := context.Background()
		if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "mkt@example.com", Password: "password mkt", CorpID: e2eCorp, Role: auth.RoleMarketer}); err != nil {
			t.Fatal(err)
		}
		marketer := login(t, s.url, "mkt@example.com", "password mkt")
		key := map[string]string{"Idempotency-Key": "crm-sync-1"}
		var first, replay leads.UpsertResult
		body := map[string]any{"name": "李雷", "mobile": "139 1234 5679", "company": "腾讯科技（深圳）有限公司", "budget": "100k"}
		if st := callWith(t, "POST", s.url+"/api/v1/leads", marketer, key, body, &first); st != http.StatusCreated || !first.Created {
			t.Fatalf("upsert: %d %+v", st, first)
		}
		if st := callWith(t, "POST", s.url+"/api/v1/leads", marketer, key, body, &replay); st != http.StatusOK || !replay.Replayed || replay.Lead.ID != first.Lead.ID {
			t.Fatalf("repeat: %d %+v", st, replay)
		}
		var refused struct {
			Error struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		if st := callWith(t, "POST", s.url+"/api/v1/leads", marketer, key, map[string]any{"name": "韩梅梅"}, &refused); st != http.StatusConflict || refused.Error.Code != "idempotency_key_reused" {
			t.Fatalf("key with another body: %d %+v", st, refused)
		}
		if st := call(t, "POST", s.url+"/api/v1/leads", marketer, map[string]any{"name": "x", "mobil": "1"}, &refused); st != http.StatusUnprocessableEntity || refused.Error.Fields["mobil"] == "" {
			t.Fatalf("unknown field: %d %+v", st, refused)
		}
		// An email-only lead, then one call naming both: one person.
		var other, both leads.UpsertResult
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "Li Lei", "email": "LiLei@qq.com", "source": "form"}, &other); st != http.StatusCreated {
			t.Fatalf("second person: %d", st)
		}
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"mobile": "13912345679", "email": "lilei@qq.com"}, &both); st != http.StatusOK || len(both.Merges) != 1 {
			t.Fatalf("joining upsert: %d %+v", st, both)
		}
		if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(other.Lead.ID)+"/claim", admin, nil, nil); st != http.StatusConflict {
			t.Fatalf("claiming the folded lead: %d", st)
		}
		// The marketer has no pii: mobiles and emails are masked.
		var seen struct {
			Person leads.Person  `json:"person"`
			Merges []leads.Merge `json:"merges"`
		}
		if st := call(t, "GET", s.url+"/api/v1/leads/"+itoa(first.Lead.ID)+"/person", marketer, nil, &seen); st != http.StatusOK {
			t.Fatalf("person: %d", st)
		}
		if got := identities(seen.Person); got != "email:l***@qq.com mobile:+86*******5679" || len(seen.Merges) != 1 {
			t.Fatalf("marketer sees %q, merges %+v", got, seen.Merges)
		}
		if st := call(t, "POST", s.url+"/api/v1/merges/"+itoa(seen.Merges[0].ID)+"/undo", marketer, nil, nil); st != http.StatusForbidden {
			t.Fatalf("a marketer undoing a merge: %d", st)
		}
		if st := call(t, "POST", s.url+"/api/v1/merges/"+itoa(seen.Merges[0].ID)+"/undo", admin, nil, nil); st != http.StatusOK {
			t.Fatalf("undo: %d", st)
		}
		call(t, "GET", s.url+"/api/v1/leads/"+itoa(other.Lead.ID)+"/person", admin, nil, &seen)
		if got := identities(seen.Person); got != "email:lilei@qq.com" {
			t.Fatalf("restored person: %q", got)
		}
		if st := call(t, "POST", s.url+"/api/v1/leads/"+itoa(other.Lead.ID)+"/claim", admin, nil, nil); st != http.StatusOK {
			t.Fatalf("the restored lead is claimable: %d", st)
		}
	})
}

func identities(p leads.Person) string {
	out := ""
	for i, id := range p.Identities {
		if i > 0 {
			out += " "
		}
		out += id.Kind + ":" + id.Value
	}
	return out
}
