package leads

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom/directory"
)

func TestNormalizeMobile_ChineseMobilesLandlinesAndCountryCodes(t *testing.T) {
	for raw, want := range map[string]string{
		"13912345678":        "+8613912345678",
		"+86 139 1234 5678":  "+8613912345678",
		"0086-139-1234-5678": "+8613912345678",
		"１３９１２３４５６７８":        "+8613912345678", // full-width digits, as some Chinese keyboards type them
		"010-62331234":       "+861062331234",
		"(021) 6233 1234":    "+862162331234",
		"+1 650 253 0000":    "+16502530000",
		"1391234567":         "", // a digit short
		"12345678901":        "", // no such prefix
		"not a number":       "",
	} {
		got, ok := NormalizeMobile(raw)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeMobile(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
}

func TestNormalizeEmail_LowercasesAndRefusesWhatIsNotAnAddress(t *testing.T) {
	for raw, want := range map[string]string{
		" Li.Lei@Example.CN ": "li.lei@example.cn",
		"li@qq.com":           "li@qq.com",
		"Li Lei <li@qq.com>":  "",
		"li@localhost":        "",
		"li.qq.com":           "",
		"li@qq.com.":          "",
	} {
		got, ok := NormalizeEmail(raw)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
}

func TestTestData_KnownNumbersRunsAndReservedDomains(t *testing.T) {
	for raw, want := range map[string]bool{"13800138000": true, "+86 138 0013 8000": true, "12345678901": true, "13333333333": true,
		"13912345678": true /* 8 ascending */, "13912395678": false, "15101234598": false} {
		if got := testDigits(raw); got != want {
			t.Errorf("testDigits(%q) = %v, want %v", raw, got, want)
		}
	}
	for e, want := range map[string]bool{"a@example.com": true, "test@qq.com": true, "li@qq.com": false} {
		if got := testEmail(e); got != want {
			t.Errorf("testEmail(%q) = %v, want %v", e, got, want)
		}
	}
}

func TestNormalizeCompany_FoldsWidthsSuffixesBracketsAndPunctuation(t *testing.T) {
	same := [][]string{
		{"腾讯科技（深圳）有限公司", "腾讯科技(深圳)有限公司", "腾讯科技 深圳 有限责任公司", "腾讯科技深圳股份有限公司"},
		{"Acme Co., Ltd.", "ACME CO LTD", "Ａｃｍｅ Inc.", "acme"},
		{"Costco Wholesale Corporation", "costco wholesale"},
	}
	for _, group := range same {
		want := NormalizeCompany(group[0])
		for _, name := range group[1:] {
			if got := NormalizeCompany(name); got != want {
				t.Errorf("NormalizeCompany(%q) = %q, want %q (as %q)", name, got, want, group[0])
			}
		}
	}
	if got := NormalizeCompany("Costco"); got != "costco" {
		t.Errorf("a name ending in co lost it: %q", got)
	}
	if !similarCompanies(NormalizeCompany("腾讯科技"), NormalizeCompany("腾讯科技深圳有限公司")) ||
		!similarCompanies("alibabacloud", "alibabaclould") || similarCompanies("腾讯科技", "阿里巴巴") {
		t.Error("near-duplicates are proposed and different companies are not")
	}
}

func TestUpsert_FindsMergesAndFlagsButNeverDrops(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		first, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Name: "李雷", Mobile: "139-1234-5679", Company: "腾讯科技（深圳）有限公司", Industry: "internet",
			Qualification: Qualification{Budget: "100k"}})
		if err != nil {
			t.Fatal(err)
		}
		if !first.Created || first.Lead.Source != SourceAPI || first.Lead.Budget != "100k" || first.Person.Company != "腾讯科技（深圳）有限公司" ||
			len(first.Reviews) != 0 || first.Person.NeedsReview {
			t.Fatalf("first upsert: %+v %+v %+v", first, first.Person, first.Lead)
		}
		// The same mobile written otherwise, with an email: the same person, updated.
		again, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Mobile: "+86 13912345679", Email: "LiLei@QQ.com", Title: "CTO",
			Company: "腾讯科技(深圳)有限公司", Qualification: Qualification{Need: "crm"}})
		if err != nil {
			t.Fatal(err)
		}
		if again.Created || again.Person.ID != first.Person.ID || again.Person.Name != "李雷" || again.Person.Title != "CTO" ||
			again.Person.CompanyID != first.Person.CompanyID || again.Lead.Budget != "100k" || again.Lead.Need != "crm" || len(again.Merges) != 0 {
			t.Fatalf("second upsert: %+v %+v", again.Person, again.Lead)
		}
		if ids := fmt.Sprint(again.Person.Identities); ids != "[{email lilei@qq.com} {mobile +8613912345679}]" {
			t.Fatalf("identities %s", ids)
		}
		// Invalid and test data are kept, flagged with the reasons.
		bad, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Mobile: "13800138000", Email: "nope@", Company: "有限公司"})
		if err != nil {
			t.Fatal(err)
		}
		if !bad.Created || !bad.Person.NeedsReview || !bad.Person.TestData || reviewFields(bad.Person.Reviews) != "mobile email name company" {
			t.Fatalf("flagged: %+v reviews %v", bad.Person, bad.Person.Reviews)
		}
		// Nothing at all to go on is refused, naming the field; too long too.
		var ae *apperr.Error
		if _, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Title: "x"}); !errors.As(err, &ae) || ae.Fields["mobile"] == "" {
			t.Fatalf("no identity: %v", err)
		}
		if _, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Name: strings.Repeat("名", 256)}); !errors.As(err, &ae) || ae.Fields["name"] == "" {
			t.Fatalf("long name: %v", err)
		}
		if _, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Name: "x", Source: "fax"}); !errors.As(err, &ae) || ae.Fields["source"] == "" {
			t.Fatalf("unknown source: %v", err)
		}
		// A near-duplicate company is proposed, not merged.
		if _, err := s.Upsert(ctx, "ww1", 5, "", PersonIn{Name: "韩梅梅", Email: "hmm@qq.com", Company: "腾讯科技"}); err != nil {
			t.Fatal(err)
		}
		reviews, err := s.CompanyReviews(ctx, "ww1")
		if err != nil || len(reviews) != 1 || reviews[0].Similar != "腾讯科技（深圳）有限公司" || reviews[0].Company != "腾讯科技" {
			t.Fatalf("company reviews %+v %v", reviews, err)
		}
		// Someone decides they are one: the new company's people move to the older one.
		r := reviews[0]
		if err := s.ResolveCompanyReview(ctx, "ww1", r.SimilarID, r.CompanyID, true); err == nil {
			t.Fatal("resolved a proposal that was never made (the pair reversed)")
		}
		if err := s.ResolveCompanyReview(ctx, "ww1", r.CompanyID, r.SimilarID, true); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.GetContext(ctx, &left, `SELECT COUNT(*) FROM people WHERE company_id = ?`, r.CompanyID); err != nil || left != 0 {
			t.Fatalf("%d people still at the merged company (%v)", left, err)
		}
		if reviews, _ := s.CompanyReviews(ctx, "ww1"); len(reviews) != 0 {
			t.Fatalf("proposals left: %+v", reviews)
		}
	})
}

func reviewFields(rs []Review) string {
	var f []string
	for _, r := range rs {
		f = append(f, r.Field)
	}
	return strings.Join(f, " ")
}

// The first people of a new corp, sent at the same moment to two
// instances, all land in its one default pool (and a new company, named by
// all of them, is made once): each upsert that finds the pool or company
// another made meanwhile reads it back, though it read other tables first.
func TestUpsert_FirstPeopleOfACorpAtOnceShareItsDefaultPool(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		ctx := context.Background()
		services := []*Service{New(db, nil, nil, quiet), New(sqltest.Reopen(t, db), nil, nil, quiet)}
		for round := range 10 {
			corp := fmt.Sprint("wwnew", round)
			const callers = 8
			errs := make([]error, callers)
			sqltest.AtOnce(callers, func(i int) {
				_, errs[i] = services[i%2].Upsert(ctx, corp, 0, "", PersonIn{Name: fmt.Sprint("p", i), Mobile: fmt.Sprintf("1390000%04d", i), Company: "Initech"})
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("corp %s, caller %d: %v", corp, i, err)
				}
			}
			var pools, companies int
			if err := db.GetContext(ctx, &pools, db.Rebind(`SELECT COUNT(DISTINCT pool_id) FROM leads WHERE corp_id = ?`), corp); err != nil || pools != 1 {
				t.Fatalf("corp %s: leads in %d pools (%v)", corp, pools, err)
			}
			if err := db.GetContext(ctx, &companies, db.Rebind(`SELECT COUNT(*) FROM companies WHERE corp_id = ?`), corp); err != nil || companies != 1 {
				t.Fatalf("corp %s: %d companies (%v)", corp, companies, err)
			}
		}
	})
}

func TestUpsert_IdempotencyKeyAnswersTheFirstCall(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		in := PersonIn{Name: "李雷", Mobile: "13912345679"}
		var wg sync.WaitGroup
		results := make([]*UpsertResult, 4)
		errs := make([]error, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = s.Upsert(ctx, "ww1", 5, "form-42", in)
			}()
		}
		wg.Wait()
		created := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if r.Lead.ID != results[0].Lead.ID {
				t.Fatalf("the same key made two leads: %d, %d", r.Lead.ID, results[0].Lead.ID)
			}
			if !r.Replayed {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d calls applied, want 1", created)
		}
		if _, err := s.Upsert(ctx, "ww1", 5, "form-42", PersonIn{Name: "韩梅梅", Mobile: "13912345679"}); !errors.Is(err, ErrKeyReused) {
			t.Fatalf("the key with another body: %v", err)
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all, Limit: 10})
		if len(ls) != 1 {
			t.Fatalf("%d leads", len(ls))
		}
	})
}

func TestMerge_UpsertJoiningTwoPeopleAndUnmergeRestoresBoth(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return clock })
		if _, err := s.SetScoringSettings(ctx, "ww1", settingsWith(30, 1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "webinar", ActivityType: "webinar", Points: 10, Repeatable: true}); err != nil {
			t.Fatal(err)
		}
		// A WeCom customer (lead A, claimed by SDR 9) and a form lead by mobile (lead B), each with an activity.
		a := seed(t, s, 1)[0]
		if _, err := s.Claim(ctx, "ww1", a, 9); err != nil {
			t.Fatal(err)
		}
		b, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "李雷", Mobile: "13912345679", Source: SourceForm})
		if err != nil {
			t.Fatal(err)
		}
		la, _ := s.read(ctx, "ww1", a)
		for _, act := range []ActivityIn{{ExternalUserID: "wm0", Type: "webinar", At: clock}, {PersonID: b.Person.ID, Type: "webinar", At: clock}} {
			if res, err := s.RecordActivities(ctx, "ww1", []ActivityIn{act}); err != nil || res.Recorded != 1 {
				t.Fatalf("%+v %v", res, err)
			}
		}
		// The customer's unionid was given with the form, and now the directory saves the contact with it.
		if _, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Mobile: "13912345679", UnionID: "o6_union"}); err != nil {
			t.Fatal(err)
		}
		if err := s.intake(ctx, []any{directory.ContactSaved{CorpID: "ww1", ExternalUserID: "wm0", Name: "Li Lei", UnionID: "o6_union", SavedAt: 2}}); err != nil {
			t.Fatal(err)
		}
		// A (worked by SDR 9) survives; B is folded in with its engagement and identities.
		p, merges, err := s.PersonOfLead(ctx, "ww1", a, all)
		if err != nil {
			t.Fatal(err)
		}
		if len(merges) != 1 || merges[0].SurvivorID != la.PersonID || merges[0].MergedID != b.Person.ID || merges[0].Reason != "same unionid o6_union" {
			t.Fatalf("merges %+v", merges)
		}
		if ids := fmt.Sprint(p.Identities); ids != "[{mobile +8613912345679} {unionid o6_union} {wecom wm0}]" {
			t.Fatalf("survivor's identities %s", ids)
		}
		merged, _ := s.read(ctx, "ww1", a)
		if math.Abs(merged.Engagement-20) > 0.01 || merged.OwnerUserID != 9 {
			t.Fatalf("survivor engagement %.2f owner %d", merged.Engagement, merged.OwnerUserID)
		}
		if _, err := s.Claim(ctx, "ww1", b.Lead.ID, 8); !errors.Is(err, ErrMerged) {
			t.Fatalf("claiming the folded lead: %v", err)
		}
		ls, _ := s.List(ctx, ListFilter{CorpID: "ww1", Viewer: all, Limit: 10})
		if len(ls) != 1 || ls[0].ID != a {
			t.Fatalf("pool shows %+v", ls)
		}
		tl, err := s.Timeline(ctx, "ww1", a, all, 50)
		if err != nil || countKind(tl, "webinar") != 2 {
			t.Fatalf("the survivor's timeline holds both people's activities: %+v %v", tl, err)
		}
		// An activity sent later for the merged person id lands on the survivor.
		if res, err := s.RecordActivities(ctx, "ww1", []ActivityIn{{PersonID: b.Person.ID, Type: "visit", At: clock}}); err != nil || res.Recorded != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		// Ten days later the merge is undone: both people, leads, identities and timelines come back.
		clock = clock.Add(10 * 24 * time.Hour)
		if _, err := s.Unmerge(ctx, "ww1", merges[0].ID, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unmerge(ctx, "ww1", merges[0].ID, 1); !errors.Is(err, ErrMergeUndone) {
			t.Fatalf("undone twice: %v", err)
		}
		pa, _, _ := s.PersonOfLead(ctx, "ww1", a, all)
		pb, _, _ := s.PersonOfLead(ctx, "ww1", b.Lead.ID, all)
		if fmt.Sprint(pa.Identities) != "[{wecom wm0}]" || fmt.Sprint(pb.Identities) != "[{mobile +8613912345679} {unionid o6_union}]" || pb.MergedInto != 0 {
			t.Fatalf("identities after unmerge: %v / %v", pa.Identities, pb.Identities)
		}
		ra, _ := s.read(ctx, "ww1", a)
		rb, _ := s.read(ctx, "ww1", b.Lead.ID)
		want := 10 * math.Pow(0.5, 10.0/30)
		if math.Abs(ra.Engagement-want) > 0.051 || math.Abs(rb.Engagement-want) > 0.051 || rb.MergedInto != 0 {
			t.Fatalf("engagement after unmerge: %.3f / %.3f, want %.3f each", ra.Engagement, rb.Engagement, want)
		}
		tlb, _ := s.Timeline(ctx, "ww1", b.Lead.ID, all, 50)
		tla, _ := s.Timeline(ctx, "ww1", a, all, 50)
		if countKind(tlb, "webinar") != 1 || countKind(tla, "webinar") != 1 || countKind(tlb, HistoryUnmerged) != 1 {
			t.Fatalf("timelines after unmerge: a %+v / b %+v", tla, tlb)
		}
		if _, err := s.Claim(ctx, "ww1", b.Lead.ID, 8); err != nil {
			t.Fatalf("the restored lead is in the pool again: %v", err)
		}
	})
}

func countKind(tl []TimelineEntry, typ string) int {
	n := 0
	for _, e := range tl {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestMerge_ByHandKeepsOwnerCountsRight(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		ids := seed(t, s, 2)
		setCaps(t, s, Pool{Name: "default", MaxOpen: 1})
		if _, err := s.Claim(ctx, "ww1", ids[1], 9); err != nil {
			t.Fatal(err)
		}
		l0, _ := s.read(ctx, "ww1", ids[0])
		l1, _ := s.read(ctx, "ww1", ids[1])
		var ae *apperr.Error
		if _, err := s.Merge(ctx, "ww1", l0.PersonID, l1.PersonID, 1, ""); !errors.As(err, &ae) || ae.Fields["reason"] == "" {
			t.Fatalf("a merge by hand needs a reason: %v", err)
		}
		m, err := s.Merge(ctx, "ww1", l0.PersonID, l1.PersonID, 1, "same shop owner")
		if err != nil {
			t.Fatal(err)
		}
		// SDR 9's lead was folded away: their open count is free again.
		if _, err := s.Claim(ctx, "ww1", ids[0], 9); err != nil {
			t.Fatalf("claim after the held lead was merged away: %v", err)
		}
		if _, err := s.Release(ctx, "ww1", ids[0], 9, "not mine"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unmerge(ctx, "ww1", m.ID, 1); err != nil {
			t.Fatal(err)
		}
		// The restored lead is SDR 9's again and counts against the cap.
		if l, _ := s.read(ctx, "ww1", ids[1]); l.OwnerUserID != 9 {
			t.Fatalf("restored owner %d", l.OwnerUserID)
		}
		if _, err := s.Claim(ctx, "ww1", ids[0], 9); !errors.Is(err, ErrCapReached) {
			t.Fatalf("cap after restore: %v", err)
		}
	})
}

// A rescore page asks for the people merged into 2,000 people at once;
// MariaDB's rewrite of a long IN list into a join (and statistics that
// count every person for merged_into 0) had it read the whole people table
// for every page instead of the index.
func TestAbsorbedBy_ManyPeopleAreLookedUpThroughTheMergedIndex(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		const n = 3000
		sqltest.InsertRows(t, db, "people", []string{"corp_id", "name", "created_at", "updated_at"}, n, func(i int) []any {
			return []any{"ww1", fmt.Sprint("P", i), 1, 1}
		})
		var ids []int64
		if err := db.Select(&ids, `SELECT id FROM people WHERE corp_id = 'ww1' ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		// The last two people were merged into the first and the tenth.
		for i, into := range map[int]int64{n - 1: ids[0], n - 2: ids[9]} {
			if _, err := db.Exec(`UPDATE people SET merged_into = ? WHERE id = ?`, into, ids[i]); err != nil {
				t.Fatal(err)
			}
		}
		if db.Dialect == qsql.MySQL {
			if _, err := db.Exec(`ANALYZE TABLE people`); err != nil {
				t.Fatal(err)
			}
		}
		page := ids[:2000]
		got, err := s.store.absorbedBy(ctx, db, "ww1", page)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int64]int64{ids[n-1]: ids[0], ids[n-2]: ids[9]}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("absorbed by the page: %v, want %v", got, want)
		}
		q, args, err := s.store.absorbedByQuery("ww1", page)
		if err != nil {
			t.Fatal(err)
		}
		if plan := sqltest.Plan(t, db, q, args...); !strings.Contains(plan, "people_merged") {
			t.Errorf("absorbedBy reads %q, want through people_merged", plan)
		}
	})
}
