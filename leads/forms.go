package leads

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Web forms: a marketer defines the fields, what each maps to (a person or
// lead field, or nothing: kept on the form.submitted activity), the
// consent text, and a thank-you; visitors fill the hosted page /f/{slug} or
// a site posts the same values as JSON. A fill creates or updates the
// person and lead (found by mobile, email or unionid, like the upsert API,
// with the source form and the live code and channel the visit came from)
// and records a form.submitted activity that scoring rules can score. A
// form's own page checks what a person can correct (required fields, a
// valid mobile or email, consent); a honeypot field catches bots.

// ActivityFormSubmitted is the activity of a form fill.
const ActivityFormSubmitted = "form.submitted"

// FormField is one field of a form.
type FormField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Type     string   `json:"type"` // text, tel, email, textarea, select, number
	Required bool     `json:"required"`
	Options  []string `json:"options,omitempty"` // select
	MapsTo   string   `json:"maps_to,omitempty"` // a person or lead field, or "" (custom)
}

// Form is a public web form.
type Form struct {
	ID              int64       `db:"id" json:"id"`
	CorpID          string      `db:"corp_id" json:"-"`
	Slug            string      `db:"slug" json:"slug"`
	Title           string      `db:"title" json:"title"`
	Intro           string      `db:"intro" json:"intro"`
	Fields          []FormField `db:"-" json:"fields"`
	FieldsJSON      string      `db:"fields" json:"-"`
	ConsentText     string      `db:"consent_text" json:"consent_text"`
	ConsentRequired bool        `db:"consent_required" json:"consent_required"`
	Thanks          string      `db:"thanks" json:"thanks"`
	Channel         string      `db:"channel" json:"channel"` // the source channel of its leads unless the visit names one
	Active          bool        `db:"active" json:"active"`
	CreatedAt       int64       `db:"created_at" json:"created_at"`
	UpdatedAt       int64       `db:"updated_at" json:"updated_at"`
}

// Errors of forms.
var ErrFormNotFound = apperr.NotFound("form not found")

var (
	formSlug      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{2,63}$`)
	formFieldName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	// FormFieldTypes are the kinds of field a form may have.
	FormFieldTypes = []string{"text", "tel", "email", "textarea", "select", "number"}
	// FormMappable are the person and lead fields a form field can fill.
	FormMappable = []string{"name", "mobile", "email", "unionid", "title", "region", "company", "industry", "company_size",
		"budget", "authority", "need", "timeline"}
)

// check validates a form, naming each bad field; defs are the corp's own
// lead fields a form field may fill (fields.<key>).
func (f *Form) check(defs map[string]*FieldDef) error {
	fs := apperr.Fields{}
	if f.Slug == "" {
		f.Slug = randomSlug()
	}
	if !formSlug.MatchString(f.Slug) {
		fs.Add("slug", "is 3 to 64 lowercase letters, digits and -")
	}
	if t := strings.TrimSpace(f.Title); t == "" || len([]rune(t)) > 128 {
		fs.Add("title", "is required, at most 128 characters")
	}
	for field, v := range map[string]struct {
		s   string
		max int
	}{"intro": {f.Intro, 1000}, "consent_text": {f.ConsentText, 1000}, "thanks": {f.Thanks, 500}, "channel": {f.Channel, 64}} {
		if len([]rune(v.s)) > v.max {
			fs.Add(field, fmt.Sprintf("is at most %d characters", v.max))
		}
	}
	if f.ConsentRequired && strings.TrimSpace(f.ConsentText) == "" {
		fs.Add("consent_text", "is required when consent is")
	}
	if len(f.Fields) == 0 || len(f.Fields) > 30 {
		fs.Add("fields", "lists 1 to 30 fields")
	}
	seen, mapped := map[string]bool{}, map[string]bool{}
	identifies := false
	for i, fd := range f.Fields {
		at := fmt.Sprintf("fields[%d]", i)
		switch {
		case !formFieldName.MatchString(fd.Name):
			fs.Add(at+".name", "is lowercase letters, digits and _, at most 32, starting with a letter")
		case seen[fd.Name] || fd.Name == honeypotField:
			fs.Add(at+".name", "is used twice (or is the honeypot's)")
		}
		seen[fd.Name] = true
		if l := strings.TrimSpace(fd.Label); l == "" || len([]rune(l)) > 128 {
			fs.Add(at+".label", "is required, at most 128 characters")
		}
		if !slices.Contains(FormFieldTypes, fd.Type) {
			fs.Add(at+".type", "is one of "+strings.Join(FormFieldTypes, ", "))
		}
		if fd.Type == "select" && (len(fd.Options) == 0 || len(fd.Options) > 50) {
			fs.Add(at+".options", "lists 1 to 50 choices")
		}
		if fd.MapsTo != "" {
			if key, own := strings.CutPrefix(fd.MapsTo, FieldPrefix); !slices.Contains(FormMappable, fd.MapsTo) && (!own || defs[key] == nil) {
				fs.Add(at+".maps_to", "is empty (kept on the activity), one of "+strings.Join(FormMappable, ", ")+", or fields.<key> of a field of the corp")
			} else if mapped[fd.MapsTo] {
				fs.Add(at+".maps_to", "is mapped by another field")
			}
			mapped[fd.MapsTo] = true
		}
		if fd.MapsTo == "mobile" && fd.Type != "tel" || fd.MapsTo == "email" && fd.Type != "email" {
			fs.Add(at+".type", "is "+map[string]string{"mobile": "tel", "email": "email"}[fd.MapsTo]+" for a field mapped to "+fd.MapsTo)
		}
		identifies = identifies || fd.MapsTo == "mobile" || fd.MapsTo == "email"
	}
	if len(f.Fields) > 0 && !identifies {
		fs.Add("fields", "need a field mapped to mobile or email: a fill must name its person")
	}
	if len(fs) > 0 {
		return fs.Err()
	}
	b, _ := json.Marshal(f.Fields)
	f.FieldsJSON = string(b)
	return nil
}

// honeypotField is the hidden field only bots fill.
const honeypotField = "website"

func randomSlug() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "f-" + hex.EncodeToString(b)
}

// CreateForm adds a form.
func (s *Service) CreateForm(ctx context.Context, f Form) (*Form, error) {
	f.Active = true
	defs, err := s.fieldDefs(ctx, f.CorpID)
	if err != nil {
		return nil, err
	}
	if err := f.check(defs); err != nil {
		return nil, err
	}
	f.CreatedAt = qsql.Millis(s.now())
	f.UpdatedAt = f.CreatedAt
	if err := s.store.createForm(ctx, &f); err != nil {
		if qsql.IsDuplicate(err) {
			return nil, apperr.Field("slug", "is taken")
		}
		return nil, err
	}
	return &f, nil
}

// UpdateForm replaces a form's definition (and whether it takes fills).
func (s *Service) UpdateForm(ctx context.Context, f Form) (*Form, error) {
	defs, err := s.fieldDefs(ctx, f.CorpID)
	if err != nil {
		return nil, err
	}
	if err := f.check(defs); err != nil {
		return nil, err
	}
	f.UpdatedAt = qsql.Millis(s.now())
	ok, err := s.store.updateForm(ctx, &f)
	if qsql.IsDuplicate(err) {
		return nil, apperr.Field("slug", "is taken")
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrFormNotFound
	}
	return s.store.form(ctx, "id = ? AND corp_id = ?", f.ID, f.CorpID)
}

// Forms lists a corp's forms.
func (s *Service) Forms(ctx context.Context, corp string) ([]Form, error) {
	return s.store.forms(ctx, corp)
}

// FormBySlug reads an active form for its public page.
func (s *Service) FormBySlug(ctx context.Context, slug string) (*Form, error) {
	f, err := s.store.form(ctx, "slug = ?", slug)
	if err != nil {
		return nil, err
	}
	if !f.Active {
		return nil, ErrFormNotFound
	}
	return f, nil
}

// Fill is a visitor's fill of a form.
type Fill struct {
	Values   map[string]string `json:"values"`
	Consent  bool              `json:"consent"`
	CodeID   int64             `json:"code_id"` // the live code whose page led here
	Channel  string            `json:"channel"`
	Nonce    string            `json:"nonce"` // the page's: a double submit is one fill
	Honeypot string            `json:"website"`
}

// FillResult is what a fill did; Bot: the honeypot was filled and nothing
// was stored (the visitor is thanked all the same).
type FillResult struct {
	Bot    bool
	Person int64
	Lead   int64
}

// Submit takes a fill of the form with slug: checked as the visitor can
// correct it (422 naming each field), then the person and lead upserted and
// the form.submitted activity recorded (and scored).
func (s *Service) Submit(ctx context.Context, slug string, in Fill) (*FillResult, error) {
	f, err := s.FormBySlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Honeypot) != "" {
		s.log.Info("form fill caught by the honeypot", "form", f.ID)
		return &FillResult{Bot: true}, nil
	}
	fs := apperr.Fields{}
	person := PersonIn{Source: SourceForm, Channel: f.Channel, CodeID: in.CodeID}
	if c := strings.TrimSpace(in.Channel); c != "" {
		person.Channel = truncate(c, 64)
	}
	custom := map[string]any{}
	var defs map[string]*FieldDef
	for _, fd := range f.Fields {
		v := strings.TrimSpace(in.Values[fd.Name])
		if v == "" {
			if fd.Required {
				fs.Add(fd.Name, "is required")
			}
			continue
		}
		if len([]rune(v)) > 1000 {
			fs.Add(fd.Name, "is at most 1000 characters")
			continue
		}
		switch fd.Type {
		case "tel":
			if _, ok := NormalizeMobile(v); !ok {
				fs.Add(fd.Name, "is not a valid phone number")
			}
		case "email":
			if _, ok := NormalizeEmail(v); !ok {
				fs.Add(fd.Name, "is not a valid email address")
			}
		case "select":
			if !slices.Contains(fd.Options, v) {
				fs.Add(fd.Name, "is one of the choices")
			}
		case "number":
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				fs.Add(fd.Name, "is a number")
			}
		}
		if fd.MapsTo == "" {
			custom[fd.Name] = v
			continue
		}
		if key, own := strings.CutPrefix(fd.MapsTo, FieldPrefix); own {
			// Checked here, so a bad date is named by the form's own field.
			if defs == nil {
				if defs, err = s.fieldDefs(ctx, f.CorpID); err != nil {
					return nil, err
				}
			}
			if d := defs[key]; d != nil {
				if _, err := d.parse(v); err != nil {
					fs.Add(fd.Name, err.Error())
					continue
				}
				if person.Fields == nil {
					person.Fields = map[string]any{}
				}
				person.Fields[key] = v
			}
			continue
		}
		if err := setMapped(&person, fd.MapsTo, v); err != nil {
			fs.Add(fd.Name, err.Error())
		}
	}
	if f.ConsentRequired && !in.Consent {
		fs.Add("consent", "is required to send this form")
	}
	if len(fs) > 0 {
		return nil, fs.Err()
	}
	key := ""
	if n := strings.TrimSpace(in.Nonce); n != "" && len(n) <= 64 {
		key = fmt.Sprintf("form:%d:%s", f.ID, n)
	}
	res, err := s.Upsert(ctx, f.CorpID, 0, key, person)
	if err != nil {
		return nil, err
	}
	props, _ := json.Marshal(map[string]any{"form_id": f.ID, "form": f.Slug, "title": f.Title, "code_id": in.CodeID,
		"channel": person.Channel, "consent": in.Consent, "fields": custom})
	act := ActivityIn{PersonID: res.Person.ID, Type: ActivityFormSubmitted, At: s.now(), Properties: props, Key: key}
	if act.Key == "" {
		act.Key = fmt.Sprintf("form:%d:%s", f.ID, newBatchToken())
	}
	if r, err := s.RecordActivities(ctx, f.CorpID, []ActivityIn{act}); err != nil {
		return nil, err
	} else if len(r.Rejected) > 0 {
		return nil, fmt.Errorf("form activity refused: %+v", r.Rejected[0])
	}
	return &FillResult{Person: res.Person.ID, Lead: res.Lead.ID}, nil
}

// setMapped puts a form value in the person field it maps to.
func setMapped(p *PersonIn, field, v string) error {
	switch field {
	case "name":
		p.Name = v
	case "mobile":
		p.Mobile = v
	case "email":
		p.Email = v
	case "unionid":
		p.UnionID = v
	case "title":
		p.Title = v
	case "region":
		p.Region = v
	case "company":
		p.Company = v
	case "industry":
		p.Industry = v
	case "company_size":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("is a number of employees")
		}
		p.CompanySize = n
	case "budget":
		p.Budget = v
	case "authority":
		p.Authority = v
	case "need":
		p.Need = v
	case "timeline":
		p.Timeline = v
	}
	return nil
}
