package leads

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

func webinarForm() Form {
	return Form{CorpID: "ww1", Slug: "spring-webinar", Title: "春季研讨会 Spring webinar", ConsentText: "我同意接收活动信息", ConsentRequired: true,
		Channel: "website", Fields: []FormField{
			{Name: "name", Label: "姓名", Type: "text", Required: true, MapsTo: "name"},
			{Name: "phone", Label: "手机", Type: "tel", Required: true, MapsTo: "mobile"},
			{Name: "company", Label: "公司", Type: "text", MapsTo: "company"},
			{Name: "size", Label: "规模", Type: "select", Options: []string{"1-50", "51-500", "500+"}},
		}}
}

func TestForms_DefinitionsAreCheckedFieldByField(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		bad := webinarForm()
		bad.Slug = "X"
		bad.Fields = append(bad.Fields, FormField{Name: "phone", Label: "again", Type: "tel", MapsTo: "mobile"}, FormField{Name: "x", Label: "x", Type: "color"})
		_, err := s.CreateForm(ctx, bad)
		ae, ok := apperr.As(err)
		if !ok || ae.Fields["slug"] == "" || ae.Fields["fields[4].name"] == "" || ae.Fields["fields[4].maps_to"] == "" || ae.Fields["fields[5].type"] == "" {
			t.Fatalf("bad form: %v", err)
		}
		noIdentity := webinarForm()
		noIdentity.Fields = noIdentity.Fields[:1]
		if _, err := s.CreateForm(ctx, noIdentity); err == nil {
			t.Fatal("a form without a mobile or email field was saved")
		}
		if _, err := s.CreateForm(ctx, webinarForm()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateForm(ctx, webinarForm()); err == nil {
			t.Fatal("a second form with the slug")
		}
	})
}

func TestForms_AFillMakesALeadWithItsSourceAndAScoredActivity(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		ctx := context.Background()
		if _, err := s.CreateForm(ctx, webinarForm()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, Rule{CorpID: "ww1", Name: "webinar form", ActivityType: ActivityFormSubmitted,
			Condition: `properties.form == "spring-webinar"`, Points: 15}); err != nil {
			t.Fatal(err)
		}
		// What the visitor can correct comes back by field.
		_, err := s.Submit(ctx, "spring-webinar", Fill{Values: map[string]string{"phone": "1391234", "size": "huge"}})
		ae, ok := apperr.As(err)
		if !ok || ae.Fields["name"] == "" || ae.Fields["phone"] == "" || ae.Fields["size"] == "" || ae.Fields["consent"] == "" {
			t.Fatalf("bad fill: %v", err)
		}
		// A bot fills the honeypot: thanked, nothing stored.
		if r, err := s.Submit(ctx, "spring-webinar", Fill{Values: map[string]string{"name": "bot", "phone": "13912345679"}, Consent: true, Honeypot: "http://spam"}); err != nil || !r.Bot {
			t.Fatalf("bot: %+v %v", r, err)
		}
		fill := Fill{Values: map[string]string{"name": "李雷", "phone": "139 1234 5679", "company": "Acme", "size": "51-500"}, Consent: true,
			CodeID: 7, Channel: "poster", Nonce: "n1"}
		r, err := s.Submit(ctx, "spring-webinar", fill)
		if err != nil {
			t.Fatal(err)
		}
		// Submitted twice (a double tap): one fill.
		if r2, err := s.Submit(ctx, "spring-webinar", fill); err != nil || r2.Lead != r.Lead {
			t.Fatalf("double submit: %+v %v", r2, err)
		}
		l, err := s.read(ctx, "ww1", r.Lead)
		if err != nil {
			t.Fatal(err)
		}
		if l.Source != SourceForm || l.CodeID != 7 || l.Channel != "poster" || l.Name != "李雷" || l.Engagement != 15 {
			t.Fatalf("lead %+v", l)
		}
		tl, _ := s.Timeline(ctx, "ww1", r.Lead, all, 10)
		var fields map[string]any
		for _, e := range tl {
			if e.Type == ActivityFormSubmitted {
				var p struct {
					Fields map[string]any `json:"fields"`
				}
				_ = json.Unmarshal(e.Properties, &p)
				fields = p.Fields
			}
		}
		if countKind(tl, ActivityFormSubmitted) != 1 || fields["size"] != "51-500" {
			t.Fatalf("timeline %+v", tl)
		}
		var people int
		if err := db.GetContext(ctx, &people, `SELECT COUNT(*) FROM people`); err != nil || people != 1 {
			t.Fatalf("%d people (%v): the bot's fill was stored", people, err)
		}
	})
}
