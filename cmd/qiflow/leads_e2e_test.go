package main

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/fake"
)

// A customer scans a channel code: a lead with the code's source appears in
// the pool; one SDR claims it, a second is told it is taken, the first
// releases it with a reason, and the history says so.
func TestE2E_ScannedCustomerBecomesALeadSDRsClaimAndRelease(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		syncDirectory(t, s, admin)
		ctx := context.Background()
		// The import is followed by the backfill: the sandbox's existing
		// customers are in the pool already.
		contacts := s.count("SELECT COUNT(*) FROM external_contacts WHERE corp_id = ?", e2eCorp)
		if contacts == 0 {
			t.Fatal("the sandbox has no customers to backfill")
		}
		// Background jobs on a loaded machine under -race: a minute, not 15 s.
		waitUntilFor(t, time.Minute, "the existing customers as leads", func() bool {
			return s.count("SELECT COUNT(*) FROM leads WHERE corp_id = ? AND source = 'existing'", e2eCorp) == contacts
		})
		// Another import backfills again and changes nothing.
		total := s.count("SELECT COUNT(*) FROM leads")
		syncDirectory(t, s, admin)
		waitUntilFor(t, time.Minute, "the second backfill", func() bool {
			return s.count("SELECT COUNT(*) FROM jobs WHERE kind = 'leads.backfill' AND status = 'done'") == 2
		})
		if n := s.count("SELECT COUNT(*) FROM leads"); n != total {
			t.Fatalf("a second backfill made %d leads from %d", n, total)
		}
		sdr := map[string]string{}
		for _, email := range []string{"sdr1@example.com", "sdr2@example.com"} {
			if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: email, Password: "password sdr", CorpID: e2eCorp, Role: auth.RoleSDR}); err != nil {
				t.Fatal(err)
			}
			sdr[email] = login(t, s.url, email, "password sdr")
		}
		var code livecode.Code
		if st := call(t, "POST", s.url+"/api/v1/codes", admin, map[string]any{"name": "Expo", "channel": "expo-2026", "mode": "wecom_qr",
			"staff": []map[string]any{{"userid": "zhangsan"}}}, &code); st != http.StatusCreated {
			t.Fatalf("create code: %d", st)
		}
		res, err := s.fake.Scan(ctx, e2eCorp, code.ConfigID, fake.Customer{Name: "Han Meimei"})
		if err != nil || !res.Callback.OK {
			t.Fatalf("scan: %+v %v", res, err)
		}
		var l leads.Lead
		waitUntil(t, "the lead in the pool", func() bool {
			var pool struct {
				Leads []leads.Lead `json:"leads"`
			}
			call(t, "GET", s.url+"/api/v1/leads?owner=none&limit=200", sdr["sdr1@example.com"], nil, &pool)
			for _, x := range pool.Leads {
				// Named from the mirror, whichever of the add and the contact's save came first.
				if x.CodeID == code.ID && x.Name != "" {
					l = x
					return true
				}
			}
			return false
		})
		if l.Name != "Han Meimei" || l.Source != leads.SourceCode || l.CodeID != code.ID || l.Channel != "expo-2026" || l.StaffUserID != res.UserID {
			t.Fatalf("lead: %+v", l)
		}
		leadURL := s.url + "/api/v1/leads/" + itoa(l.ID)
		var claimed leads.Lead
		if st := call(t, "POST", leadURL+"/claim", sdr["sdr1@example.com"], nil, &claimed); st != http.StatusOK || claimed.OwnerUserID == 0 {
			t.Fatalf("claim: %d %+v", st, claimed)
		}
		var e errorBody
		if st := call(t, "POST", leadURL+"/claim", sdr["sdr2@example.com"], nil, &e); st != http.StatusConflict || e.Error.Code != "already_claimed" {
			t.Fatalf("second claim: %d %+v", st, e)
		}
		if st := call(t, "POST", leadURL+"/release", sdr["sdr2@example.com"], map[string]any{"reason": "x"}, &e); st != http.StatusConflict || e.Error.Code != "not_owner" {
			t.Fatalf("release by another: %d %+v", st, e)
		}
		if st := call(t, "POST", leadURL+"/release", sdr["sdr1@example.com"], map[string]any{}, &e); st != http.StatusUnprocessableEntity || e.Error.Fields["reason"] == "" {
			t.Fatalf("release without a reason: %d %+v", st, e)
		}
		if st := call(t, "POST", leadURL+"/release", sdr["sdr1@example.com"], map[string]any{"reason": "wrong number"}, nil); st != http.StatusOK {
			t.Fatalf("release: %d", st)
		}
		var got struct {
			Lead    leads.Lead           `json:"lead"`
			History []leads.HistoryEntry `json:"history"`
		}
		call(t, "GET", leadURL, admin, nil, &got)
		if got.Lead.OwnerUserID != 0 || len(got.History) != 3 || got.History[2].Kind != leads.HistoryReleased || got.History[2].Reason != "wrong number" {
			t.Fatalf("after release: %+v", got)
		}
		// A customer-service user may not claim.
		if _, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: "cs@example.com", Password: "password cs", CorpID: e2eCorp, Role: auth.RoleCS}); err != nil {
			t.Fatal(err)
		}
		if st := call(t, "POST", leadURL+"/claim", login(t, s.url, "cs@example.com", "password cs"), nil, nil); st != http.StatusForbidden {
			t.Fatalf("claim as cs: %d", st)
		}
	})
}

// errorBody is the API's error answer.
type errorBody struct {
	Error struct {
		Code   string            `json:"code"`
		Fields map[string]string `json:"fields"`
	} `json:"error"`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
