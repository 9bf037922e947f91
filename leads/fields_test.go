package leads

import (
	"bytes"
	"context"
	"testing"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// defineRenewal gives corp ww1 a date, a number and a select field.
func defineRenewal(t *testing.T, s *Service) {
	t.Helper()
	ctx := context.Background()
	for _, d := range []FieldDef{
		{CorpID: "ww1", Key: "renewal_date", Label: "续约日期", Kind: FieldDate},
		{CorpID: "ww1", Key: "seats", Label: "席位", Kind: FieldNumber, Position: 1},
		{CorpID: "ww1", Key: "plan", Label: "版本", Kind: FieldSelect, Options: []string{"basic", "pro"}, Position: 2},
	} {
		if _, err := s.DefineField(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
}

// A corp's own fields: defined and checked, set through the API, forms
// and imports with each value checked against its kind, every change in
// the lead's history, read with the lead and by segments' profiles, and
// found by day for journeys entering on a date.
func TestFields_DefinedSetCheckedAndFoundByDay(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s, run := importing(t, db)
		ctx := context.Background()
		_, err := s.DefineField(ctx, FieldDef{CorpID: "ww1", Key: "Renewal", Label: "", Kind: "colour", Options: []string{"x"}})
		if ae, ok := apperr.As(err); !ok || ae.Fields["key"] == "" || ae.Fields["label"] == "" || ae.Fields["kind"] == "" || ae.Fields["options"] == "" {
			t.Fatalf("a bad definition: %v", err)
		}
		defineRenewal(t, s)
		defs, err := s.FieldDefs(ctx, "ww1")
		if err != nil || len(defs) != 3 || defs[0].Key != "renewal_date" || defs[2].Options[1] != "pro" {
			t.Fatalf("definitions %+v %v", defs, err)
		}

		// The API: bad values are named, and nothing is stored.
		res, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "李雷", Mobile: "13912345679", Fields: map[string]any{"renewal_date": "2027/1/5", "seats": 40.0}})
		if err != nil {
			t.Fatal(err)
		}
		lead := res.Lead.ID
		if res.Lead.Fields["renewal_date"] != "2027-01-05" || res.Lead.Fields["seats"] != 40.0 {
			t.Fatalf("fields %+v", res.Lead.Fields)
		}
		_, err = s.SetFields(ctx, "ww1", lead, 9, map[string]any{"seats": "many", "plan": "gold", "colour": "red", "renewal_date": "2027-02-30"}, "")
		ae, ok := apperr.As(err)
		if !ok || ae.Fields["fields.seats"] == "" || ae.Fields["fields.plan"] == "" || ae.Fields["fields.colour"] == "" || ae.Fields["fields.renewal_date"] == "" {
			t.Fatalf("bad values: %v", err)
		}
		got, err := s.SetFields(ctx, "ww1", lead, 9, map[string]any{"seats": nil, "plan": "pro"}, "call notes")
		if err != nil || got["seats"] != nil || got["plan"] != "pro" || got["renewal_date"] != "2027-01-05" {
			t.Fatalf("after a change: %+v %v", got, err)
		}
		_, h, err := s.Get(ctx, "ww1", lead, all)
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, e := range h {
			if e.Kind == HistoryField {
				changes = append(changes, e.Reason+" "+e.From+"→"+e.To)
			}
		}
		want := []string{"renewal_date: from the api →2027-01-05", "seats: from the api →40", "plan: call notes →pro", "seats: call notes 40→"}
		if len(changes) != len(want) {
			t.Fatalf("history %q, want %q", changes, want)
		}
		for i := range want {
			if changes[i] != want[i] {
				t.Fatalf("history %q, want %q", changes, want)
			}
		}

		// An upsert with an empty value keeps what is stored.
		if _, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Mobile: "13912345679", Fields: map[string]any{"plan": ""}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.FieldsOf(ctx, "ww1", lead); got["plan"] != "pro" {
			t.Fatalf("an empty value cleared the field: %+v", got)
		}

		// A form maps a field to one of the corp's; its bad value is named by the form's field.
		form := webinarForm()
		form.ConsentRequired = false
		form.Fields = append(form.Fields, FormField{Name: "renew", Label: "续约", Type: "text", MapsTo: "fields.renewal_date"})
		bad := form
		bad.Fields = append(append([]FormField{}, form.Fields...), FormField{Name: "x", Label: "x", Type: "text", MapsTo: "fields.nope"})
		if _, err := s.CreateForm(ctx, bad); err == nil || fieldsOf(err)["fields[5].maps_to"] == "" {
			t.Fatalf("a form mapping an unknown field: %v", err)
		}
		if _, err := s.CreateForm(ctx, form); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Submit(ctx, form.Slug, Fill{Values: map[string]string{"name": "韩梅梅", "phone": "13912345680", "renew": "soon"}}); fieldsOf(err)["renew"] == "" {
			t.Fatalf("a bad date in a form: %v", err)
		}
		fill, err := s.Submit(ctx, form.Slug, Fill{Values: map[string]string{"name": "韩梅梅", "phone": "13912345680", "renew": "2027-01-05"}})
		if err != nil {
			t.Fatal(err)
		}

		// An import maps a column to one of the corp's fields; a bad value rejects its line.
		file := []byte("手机,续约\n13912345681,2027-01-05\n13912345682,2027-01-06\n13912345683,不知道\n")
		if _, err := s.CreateImport(ctx, "ww1", 1, "x.csv", bytes.NewReader(file), map[string]string{"手机": "mobile", "续约": "fields.nope"}, "utf-8"); fieldsOf(err)["mapping.续约"] == "" {
			t.Fatalf("an import mapping an unknown field: %v", err)
		}
		ir, _ := runImport(t, s, run, file, map[string]string{"手机": "mobile", "续约": "fields.renewal_date"}, "utf-8")
		if ir.Created != 2 || ir.Rejected != 1 {
			t.Fatalf("import %+v", ir)
		}

		// Found by day, in lead order, a page at a time.
		day, err := s.LeadsOnDay(ctx, "ww1", "renewal_date", "2027-01-05", 0, 10)
		if err != nil || len(day) != 3 || day[0] != lead || day[1] != fill.Lead {
			t.Fatalf("leads on the day %v %v", day, err)
		}
		if next, _ := s.LeadsOnDay(ctx, "ww1", "renewal_date", "2027-01-05", day[1], 10); len(next) != 1 || next[0] != day[2] {
			t.Fatalf("the next page %v", next)
		}
		ps, err := s.Profiles(ctx, "ww1", 0, 10, true)
		if err != nil || len(ps) != 4 || ps[0].Fields["plan"] != "pro" || ps[3].Fields["renewal_date"] != "2027-01-06" {
			t.Fatalf("profiles %+v %v", ps, err)
		}

		// A kind changes only while nobody has a value; deleting takes the values.
		if _, err := s.DefineField(ctx, FieldDef{CorpID: "ww1", Key: "renewal_date", Label: "x", Kind: FieldText}); err != ErrFieldInUse {
			t.Fatalf("changing the kind of a used field: %v", err)
		}
		if err := s.DeleteField(ctx, "ww1", "renewal_date"); err != nil {
			t.Fatal(err)
		}
		if day, _ := s.LeadsOnDay(ctx, "ww1", "renewal_date", "2027-01-05", 0, 10); len(day) != 0 {
			t.Fatalf("values outlived their field: %v", day)
		}
		if err := s.DeleteField(ctx, "ww1", "renewal_date"); err != ErrFieldNotFound {
			t.Fatalf("deleting twice: %v", err)
		}

		// A merge gives the surviving lead the values it lacks; its own win.
		other, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Name: "Li", Email: "li@example.com", Fields: map[string]any{"seats": 12, "plan": "basic"}})
		if err != nil {
			t.Fatal(err)
		}
		joined, err := s.Upsert(ctx, "ww1", 0, "", PersonIn{Mobile: "13912345679", Email: "li@example.com"})
		if err != nil || len(joined.Merges) != 1 {
			t.Fatalf("merge %+v %v", joined, err)
		}
		kept := joined.Lead.Fields
		wantPlan := "pro" // the first lead's own value
		if joined.Lead.ID == other.Lead.ID {
			wantPlan = "basic"
		}
		if kept["seats"] != 12.0 || kept["plan"] != wantPlan {
			t.Fatalf("the surviving lead's fields %+v (lead %d; %d had seats)", kept, joined.Lead.ID, other.Lead.ID)
		}
	})
}

func fieldsOf(err error) map[string]string {
	if ae, ok := apperr.As(err); ok {
		return ae.Fields
	}
	return nil
}
