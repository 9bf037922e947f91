package leads

import (
	"context"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// Search finds a person however their mobile is written, by email in any
// case, by WeCom id and by the start of their name (a % in the query is a
// character, not a wildcard); someone out of the viewer's sight is not
// found.
func TestSearch_ByIdentityOrTheStartOfAName(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		ids := map[string]int64{}
		for _, in := range []PersonIn{{Name: "王小明", Mobile: "13912345678"}, {Name: "王大明", Email: "da.ming@example.com"}, {Name: "李雷", Mobile: "13912340000"}, {Name: "100% Li", Mobile: "13912341111"}} {
			r, err := s.Upsert(ctx, "ww1", 1, "", in)
			if err != nil {
				t.Fatal(err)
			}
			ids[in.Name] = r.Lead.ID
		}
		names := func(q string, v Viewer) []int64 {
			t.Helper()
			ls, err := s.Search(ctx, "ww1", q, v)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, l := range ls {
				out = append(out, l.ID)
			}
			return out
		}
		for q, want := range map[string][]int64{
			"+86 139-1234-5678":   {ids["王小明"]},
			"DA.MING@example.com": {ids["王大明"]},
			"王":                   {ids["王大明"], ids["王小明"]},
			"王小":                  {ids["王小明"]},
			"100%":                {ids["100% Li"]},
			"10%":                 nil,
			"赵":                   nil,
			"":                    nil,
		} {
			if got := names(q, all); !equalIDs(got, want) {
				t.Errorf("search %q: %v, want %v", q, got, want)
			}
		}
		// An SDR sees their own leads and those of the pools they are in:
		// with the pool limited to SDR 7, SDR 8 finds nobody.
		if err := s.AddMember(ctx, "ww1", mustDefaultPool(t, s), 7); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, "ww1", ids["李雷"], 7); err != nil {
			t.Fatal(err)
		}
		if got := names("李", Viewer{UserID: 8}); len(got) != 0 {
			t.Errorf("another SDR's lead found: %v", got)
		}
		if got := names("李", Viewer{UserID: 7}); !equalIDs(got, []int64{ids["李雷"]}) {
			t.Errorf("one's own lead: %v", got)
		}
	})
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
