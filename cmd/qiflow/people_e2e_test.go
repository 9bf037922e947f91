package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
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

// An SDR qualifies two leads to SQL with BANT; the handoff rule picks the
// sales rep, whose WeCom app message arrives at the fake with a link; the
// rep accepts one and rejects the other, which goes back to its SDR.
func TestE2E_QualifiedLeadsAreHandedToSalesWhoAcceptOrReject(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		ctx := context.Background()
		users := map[string]int64{}
		tokens := map[string]string{}
		for _, u := range []struct {
			email, staff string
			role         auth.Role
		}{{"sdr@example.com", "lisi", auth.RoleSDR}, {"rep@example.com", "wangwu", auth.RoleSales}} {
			nu, err := s.app.auth.CreateUser(ctx, auth.NewUser{Email: u.email, Password: "password 1234", CorpID: e2eCorp, Role: u.role, StaffUserID: u.staff})
			if err != nil {
				t.Fatal(err)
			}
			users[u.email], tokens[u.email] = nu.ID, login(t, s.url, u.email, "password 1234")
		}
		sdr, rep := tokens["sdr@example.com"], tokens["rep@example.com"]
		if st := call(t, "POST", s.url+"/api/v1/assignment/rules", admin, map[string]any{"kind": "handoff", "name": "all SQLs",
			"condition": `need != ""`, "users": []int64{users["rep@example.com"]}}, nil); st != http.StatusCreated {
			t.Fatalf("handoff rule: %d", st)
		}
		var leadIDs []int64
		for i, mobile := range []string{"13912345679", "13912345680"} {
			var res leads.UpsertResult
			if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "客户" + itoa(int64(i)), "mobile": mobile}, &res); st != http.StatusCreated {
				t.Fatalf("upsert: %d", st)
			}
			id := itoa(res.Lead.ID)
			leadIDs = append(leadIDs, res.Lead.ID)
			if st := call(t, "POST", s.url+"/api/v1/leads/"+id+"/claim", sdr, nil, nil); st != http.StatusOK {
				t.Fatalf("claim: %d", st)
			}
			if st := call(t, "POST", s.url+"/api/v1/leads/"+id+"/stage", sdr, map[string]any{"stage": "mql"}, nil); st != http.StatusOK {
				t.Fatalf("mql: %d", st)
			}
			var bad struct {
				Error struct {
					Fields map[string]string `json:"fields"`
				} `json:"error"`
			}
			if st := call(t, "POST", s.url+"/api/v1/leads/"+id+"/qualify", sdr, map[string]any{"budget": "200k"}, &bad); st != http.StatusUnprocessableEntity || bad.Error.Fields["need"] == "" {
				t.Fatalf("qualify without BANT: %d %+v", st, bad)
			}
			var h leads.Handoff
			if st := call(t, "POST", s.url+"/api/v1/leads/"+id+"/qualify", sdr, map[string]any{"budget": "200k", "authority": "CTO", "need": "SCRM",
				"timeline": "Q2", "note": "wants a demo"}, &h); st != http.StatusCreated || h.ToUserID != users["rep@example.com"] {
				t.Fatalf("qualify: %d %+v", st, h)
			}
		}
		// The notices cron runs every minute; run it now.
		if _, err := s.app.leads.SendNotices(ctx); err != nil {
			t.Fatal(err)
		}
		var toRep []string
		for _, m := range s.fake.Messages(e2eCorp) {
			if m.Kind == "app" && m.UserID == "wangwu" {
				toRep = append(toRep, m.Text)
			}
		}
		if len(toRep) != 1 || !strings.Contains(toRep[0], "2 new notices") || !strings.Contains(toRep[0], "/leads/"+itoa(leadIDs[0])) {
			t.Fatalf("the rep's app messages: %q", toRep)
		}
		var inbox struct {
			Handoffs []leads.Handoff `json:"handoffs"`
		}
		if st := call(t, "GET", s.url+"/api/v1/handoffs?status=pending", rep, nil, &inbox); st != http.StatusOK || len(inbox.Handoffs) != 2 {
			t.Fatalf("rep's inbox: %d %+v", st, inbox)
		}
		byLead := map[int64]int64{}
		for _, h := range inbox.Handoffs {
			byLead[h.LeadID] = h.ID
		}
		if st := call(t, "POST", s.url+"/api/v1/handoffs/"+itoa(byLead[leadIDs[0]])+"/accept", sdr, nil, nil); st != http.StatusForbidden {
			t.Fatalf("an SDR accepting: %d", st)
		}
		if st := call(t, "POST", s.url+"/api/v1/handoffs/"+itoa(byLead[leadIDs[0]])+"/accept", rep, nil, nil); st != http.StatusOK {
			t.Fatalf("accept: %d", st)
		}
		if st := call(t, "POST", s.url+"/api/v1/handoffs/"+itoa(byLead[leadIDs[1]])+"/reject", rep, map[string]any{"reason": "no budget this year"}, nil); st != http.StatusOK {
			t.Fatalf("reject: %d", st)
		}
		var got leads.Lead
		call(t, "GET", s.url+"/api/v1/leads/"+itoa(leadIDs[0]), rep, nil, &struct {
			Lead *leads.Lead `json:"lead"`
		}{&got})
		if got.OwnerUserID != users["rep@example.com"] || got.Stage != "sql" {
			t.Fatalf("accepted lead: %+v", got)
		}
		call(t, "GET", s.url+"/api/v1/leads/"+itoa(leadIDs[1]), sdr, nil, &struct {
			Lead *leads.Lead `json:"lead"`
		}{&got})
		if got.OwnerUserID != users["sdr@example.com"] || got.Stage != "sal" {
			t.Fatalf("rejected lead: %+v", got)
		}
	})
}

// A marketer uploads a CSV (fields in order: mapping, encoding, file),
// watches the job's progress and downloads the report of rejected lines.
func TestE2E_CSVImportThroughTheAPI(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("mapping", `{"姓名":"name","手机":"mobile"}`)
		mw.WriteField("encoding", "auto")
		fw, _ := mw.CreateFormFile("file", "leads.csv")
		fw.Write([]byte("姓名,手机\n李雷,13912345679\n没有号码,\n韩梅梅,13912345680\n"))
		mw.Close()
		req, _ := http.NewRequest("POST", s.url+"/api/v1/imports", &body)
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var created struct {
			Import leads.Import `json:"import"`
		}
		json.NewDecoder(resp.Body).Decode(&created)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || created.Import.ID == 0 {
			t.Fatalf("upload: %d %+v", resp.StatusCode, created)
		}
		var got struct {
			Job struct {
				Status string          `json:"status"`
				Done   int64           `json:"progress_done"`
				Result json.RawMessage `json:"result"`
			} `json:"job"`
		}
		waitUntil(t, "the import job", func() bool {
			call(t, "GET", s.url+"/api/v1/imports/"+itoa(created.Import.ID), admin, nil, &got)
			return got.Job.Status == "done"
		})
		var res leads.ImportResult
		json.Unmarshal(got.Job.Result, &res)
		if res.Created != 2 || res.Rejected != 1 || got.Job.Done != 3 {
			t.Fatalf("import: %+v (%s)", got.Job, got.Job.Result)
		}
		req, _ = http.NewRequest("GET", s.url+"/api/v1/imports/"+itoa(created.Import.ID)+"/report", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		report, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(report), "\ufeffline,outcome") || !strings.Contains(string(report), "\n3,rejected,") {
			t.Fatalf("report:\n%s", report)
		}
	})
}

// Exports are CSV with a BOM, formula cells escaped, mobiles masked for a
// marketer (no pii) and shown to an admin; each is audited.
func TestE2E_LeadExportsAreMaskedAndAudited(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		s := startStack(t, driver)
		admin := login(t, s.url, "admin@example.com", "admin password")
		if _, err := s.app.auth.CreateUser(context.Background(), auth.NewUser{Email: "mkt@example.com", Password: "password mkt", CorpID: e2eCorp, Role: auth.RoleMarketer}); err != nil {
			t.Fatal(err)
		}
		marketer := login(t, s.url, "mkt@example.com", "password mkt")
		if st := call(t, "POST", s.url+"/api/v1/leads", admin, map[string]any{"name": "=cmd|' /C calc'!A0", "mobile": "13912345679", "email": "li@qq.com"}, nil); st != http.StatusCreated {
			t.Fatalf("upsert: %d", st)
		}
		export := func(token string) string {
			req, _ := http.NewRequest("GET", s.url+"/api/v1/exports/leads?owner=none", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("export: %d %s", resp.StatusCode, b)
			}
			return string(b)
		}
		masked := export(marketer)
		if !strings.HasPrefix(masked, "\ufeffid,name,mobile") || !strings.Contains(masked, `'=cmd|`) || !strings.Contains(masked, "+86*******5679") ||
			strings.Contains(masked, "13912345679") || !strings.Contains(masked, "l***@qq.com") {
			t.Fatalf("marketer's export:\n%s", masked)
		}
		if full := export(admin); !strings.Contains(full, "+8613912345679") || !strings.Contains(full, "li@qq.com") {
			t.Fatalf("admin's export:\n%s", full)
		}
		var audit struct {
			Exports []struct {
				Rows   int64 `json:"rows"`
				Masked bool  `json:"masked"`
			} `json:"exports"`
		}
		if st := call(t, "GET", s.url+"/api/v1/exports", admin, nil, &audit); st != http.StatusOK || len(audit.Exports) != 2 ||
			!audit.Exports[1].Masked || audit.Exports[0].Masked || audit.Exports[1].Rows == 0 {
			t.Fatalf("audit: %d %+v", st, audit)
		}
	})
}
