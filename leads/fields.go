package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Kinds of a corp's own lead fields.
const (
	FieldText   = "text"
	FieldNumber = "number"
	FieldDate   = "date" // a day, as 2026-12-31
	FieldSelect = "select"
)

// HistoryField is a change of one of the corp's own fields on a lead.
const HistoryField = "field"

// FieldPrefix names a corp's own field where built-in fields are named too
// (import columns, form mappings, segment conditions): fields.renewal_date.
const FieldPrefix = "fields."

// maxFields is how many fields a corp may define: a lead page and every
// picker lists them all.
const maxFields = 50

var (
	fieldKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	// FieldKinds are the kinds a field may have.
	FieldKinds = []string{FieldText, FieldNumber, FieldDate, FieldSelect}
	// ErrFieldNotFound is a field the corp has not defined.
	ErrFieldNotFound = apperr.NotFound("field not found")
	// ErrFieldInUse is a change of kind of a field some leads have a value of.
	ErrFieldInUse = apperr.Conflict("field_in_use", "leads have values of this field: its kind cannot change (define a new field)")
)

// FieldDef is one of a corp's own fields on its leads.
type FieldDef struct {
	CorpID      string   `db:"corp_id" json:"-"`
	Key         string   `db:"field_key" json:"key"`
	Label       string   `db:"label" json:"label"`
	Kind        string   `db:"kind" json:"kind"`
	OptionsJSON string   `db:"options" json:"-"`
	Options     []string `db:"-" json:"options,omitempty"` // the choices of a select
	Position    int      `db:"position" json:"position"`
	CreatedAt   int64    `db:"created_at" json:"created_at"`
	UpdatedAt   int64    `db:"updated_at" json:"updated_at"`
}

func (d *FieldDef) check() error {
	f := apperr.Fields{}
	d.Label = strings.TrimSpace(d.Label)
	if !fieldKey.MatchString(d.Key) {
		f.Add("key", "is lowercase letters, digits and _, at most 40, starting with a letter")
	}
	if d.Label == "" || len([]rune(d.Label)) > 64 {
		f.Add("label", "is required, at most 64 characters")
	}
	if !slices.Contains(FieldKinds, d.Kind) {
		f.Add("kind", "is one of "+strings.Join(FieldKinds, ", "))
	}
	if d.Kind == FieldSelect {
		if len(d.Options) == 0 || len(d.Options) > 100 {
			f.Add("options", "lists 1 to 100 choices")
		}
		seen := map[string]bool{}
		for i, o := range d.Options {
			o = strings.TrimSpace(o)
			d.Options[i] = o
			if o == "" || len([]rune(o)) > 64 || seen[o] {
				f.Add(fmt.Sprintf("options[%d]", i), "is a choice of 1 to 64 characters, not repeated")
			}
			seen[o] = true
		}
	} else if len(d.Options) > 0 {
		f.Add("options", "are only for a select")
	}
	if len(f) > 0 {
		return f.Err()
	}
	b, _ := json.Marshal(d.Options)
	d.OptionsJSON = string(b)
	return nil
}

// FieldValue is a stored value: in the column of its field's kind.
type fieldValue struct {
	Lead int64    `db:"lead_id"`
	Key  string   `db:"field_key"`
	Text *string  `db:"text_value"`
	Num  *float64 `db:"num_value"`
	Day  *string  `db:"day_value"`
}

// value is the stored value as segments and the API see it: a number is a
// float64, a date and text a string.
func (v fieldValue) value() any {
	switch {
	case v.Num != nil:
		return *v.Num
	case v.Day != nil:
		return *v.Day
	case v.Text != nil:
		return *v.Text
	}
	return nil
}

// display is a value as the history shows it.
func display(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// parse checks a value given for the field (a JSON value, or text from a
// form or a file) and returns it as stored; nil (or "") clears the field.
func (d *FieldDef) parse(in any) (*fieldValue, error) {
	if s, ok := in.(string); ok {
		in = strings.TrimSpace(s)
		if in == "" {
			return nil, nil
		}
	}
	if in == nil {
		return nil, nil
	}
	v := &fieldValue{Key: d.Key}
	switch d.Kind {
	case FieldNumber:
		var n float64
		switch x := in.(type) {
		case float64:
			n = x
		case int:
			n = float64(x)
		case int64:
			n = float64(x)
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("is a number")
			}
			n = f
		case string:
			f, err := strconv.ParseFloat(strings.ReplaceAll(x, ",", ""), 64)
			if err != nil {
				return nil, fmt.Errorf("is a number")
			}
			n = f
		default:
			return nil, fmt.Errorf("is a number")
		}
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, fmt.Errorf("is a number")
		}
		v.Num = &n
	case FieldDate:
		s, ok := in.(string)
		day, err := ParseDay(s)
		if !ok || err != nil {
			return nil, fmt.Errorf("is a date as 2026-12-31")
		}
		v.Day = &day
	case FieldSelect:
		s, ok := in.(string)
		if !ok || !slices.Contains(d.Options, s) {
			return nil, fmt.Errorf("is one of %s", strings.Join(d.Options, ", "))
		}
		v.Text = &s
	default:
		var s string
		switch x := in.(type) {
		case string:
			s = x
		case float64, bool, json.Number:
			s = fmt.Sprint(x)
		default:
			return nil, fmt.Errorf("is text")
		}
		if len([]rune(s)) > 500 {
			return nil, fmt.Errorf("is at most 500 characters")
		}
		v.Text = &s
	}
	return v, nil
}

// ParseDay reads a date as people write it (2026-12-31, 2026/12/31,
// 2026-1-5, as Excel writes them) and returns it as 2026-12-31.
func ParseDay(s string) (string, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), "/", "-")
	for _, layout := range []string{"2006-01-02", "2006-1-2"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02"), nil
		}
	}
	return "", fmt.Errorf("not a date")
}

// FieldDefs lists the corp's own fields in their order.
func (s *Service) FieldDefs(ctx context.Context, corp string) ([]FieldDef, error) {
	out := []FieldDef{}
	err := s.db.SelectContext(ctx, &out, `SELECT corp_id, field_key, label, kind, options, position, created_at, updated_at
		FROM lead_fields WHERE corp_id = ? ORDER BY position, field_key`, corp)
	for i := range out {
		_ = json.Unmarshal([]byte(out[i].OptionsJSON), &out[i].Options)
	}
	return out, err
}

// fieldDefs is FieldDefs by key.
func (s *Service) fieldDefs(ctx context.Context, corp string) (map[string]*FieldDef, error) {
	defs, err := s.FieldDefs(ctx, corp)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*FieldDef, len(defs))
	for i := range defs {
		out[defs[i].Key] = &defs[i]
	}
	return out, nil
}

// DefineField creates a field or changes its label, options or position.
// Its kind changes only while no lead has a value of it; a select's choice
// that leads have stays theirs until they are changed.
func (s *Service) DefineField(ctx context.Context, d FieldDef) (*FieldDef, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	now := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		var was FieldDef
		err := tx.GetContext(ctx, &was, `SELECT corp_id, field_key, label, kind, options, position, created_at, updated_at
			FROM lead_fields WHERE corp_id = ? AND field_key = ?`, d.CorpID, d.Key)
		switch {
		case qsql.IsNoRows(err):
			var n int
			if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM lead_fields WHERE corp_id = ?`, d.CorpID); err != nil {
				return err
			}
			if n >= maxFields {
				return apperr.Field("key", fmt.Sprintf("a corp has at most %d fields", maxFields))
			}
			d.CreatedAt, d.UpdatedAt = now, now
			_, err := tx.ExecContext(ctx, `INSERT INTO lead_fields (corp_id, field_key, label, kind, options, position, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, d.CorpID, d.Key, d.Label, d.Kind, d.OptionsJSON, d.Position, now, now)
			return err
		case err != nil:
			return err
		}
		if was.Kind != d.Kind {
			var used int
			if err := tx.GetContext(ctx, &used, `SELECT COUNT(*) FROM (SELECT 1 FROM lead_field_values WHERE corp_id = ? AND field_key = ? LIMIT 1) used`, d.CorpID, d.Key); err != nil {
				return err
			}
			if used > 0 {
				return ErrFieldInUse
			}
		}
		d.CreatedAt, d.UpdatedAt = was.CreatedAt, now
		_, err = tx.ExecContext(ctx, `UPDATE lead_fields SET label = ?, kind = ?, options = ?, position = ?, updated_at = ? WHERE corp_id = ? AND field_key = ?`,
			d.Label, d.Kind, d.OptionsJSON, d.Position, now, d.CorpID, d.Key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteField removes a field and every lead's value of it.
func (s *Service) DeleteField(ctx context.Context, corp, key string) error {
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM lead_fields WHERE corp_id = ? AND field_key = ?`, corp, key)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrFieldNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM lead_field_values WHERE corp_id = ? AND field_key = ?`, corp, key)
		return err
	})
}

// SetFields sets a lead's values of the corp's own fields (a value of nil
// or "" clears one); each change is in the lead's history. An unknown
// field or a bad value is refused, naming it, and nothing is changed.
func (s *Service) SetFields(ctx context.Context, corp string, leadID, actor int64, values map[string]any, reason string) (map[string]any, error) {
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if _, err := s.store.lead(ctx, tx, corp, leadID); err != nil {
			return err
		}
		return s.setFieldsTx(ctx, tx, corp, leadID, actor, values, true, reason, qsql.Millis(s.now()))
	})
	if err != nil {
		return nil, err
	}
	return s.FieldsOf(ctx, corp, leadID)
}

// setFieldsTx checks and writes values in tx. strict refuses a field the
// corp does not have; otherwise it is passed over (a form or an import
// mapped before the field was deleted).
func (s *Service) setFieldsTx(ctx context.Context, tx *qsql.Tx, corp string, lead, actor int64, values map[string]any, strict bool, reason string, now int64) error {
	if len(values) == 0 {
		return nil
	}
	defs, err := s.fieldDefs(ctx, corp)
	if err != nil {
		return err
	}
	parsed, bad := parseValues(defs, values, strict)
	if len(bad) > 0 {
		return bad.Err()
	}
	stored, err := s.store.fieldValues(ctx, tx, corp, []int64{lead})
	if err != nil {
		return err
	}
	was := stored[lead]
	keys := make([]string, 0, len(parsed))
	for k := range parsed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var hs []historyRow
	for _, k := range keys {
		v := parsed[k]
		var to any
		if v != nil {
			to = v.value()
		}
		if display(to) == display(was[k]) {
			continue
		}
		if v == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM lead_field_values WHERE lead_id = ? AND field_key = ?`, lead, k)
		} else {
			_, err = tx.ExecContext(ctx, s.db.Upsert("lead_field_values",
				[]string{"corp_id", "lead_id", "field_key", "text_value", "num_value", "day_value", "updated_at"},
				[]string{"lead_id", "field_key"}, []string{"text_value", "num_value", "day_value", "updated_at"}),
				corp, lead, k, v.Text, v.Num, v.Day, now)
		}
		if err != nil {
			return err
		}
		why := k
		if reason != "" {
			why += ": " + reason
		}
		hs = append(hs, historyRow{corp, lead, HistoryEntry{At: now, ActorUserID: actor, Kind: HistoryField,
			From: truncate(display(was[k]), 64), To: truncate(display(to), 64), Reason: why}})
	}
	return s.store.addHistories(ctx, tx, hs)
}

// parseValues checks values against the corp's fields, naming each bad one
// (fields.<key>); strict refuses a key the corp does not have, otherwise
// it is passed over. A nil parsed value clears its field.
func parseValues(defs map[string]*FieldDef, values map[string]any, strict bool) (map[string]*fieldValue, apperr.Fields) {
	bad := apperr.Fields{}
	parsed := map[string]*fieldValue{}
	for k, in := range values {
		d := defs[k]
		if d == nil {
			if strict {
				bad.Add(FieldPrefix+k, "is not a field of this corp")
			}
			continue
		}
		v, err := d.parse(in)
		if err != nil {
			bad.Add(FieldPrefix+k, err.Error())
			continue
		}
		parsed[k] = v
	}
	return parsed, bad
}

// FieldsOf reads a lead's values of the corp's own fields, by key.
func (s *Service) FieldsOf(ctx context.Context, corp string, lead int64) (map[string]any, error) {
	m, err := s.store.fieldValues(ctx, s.db, corp, []int64{lead})
	if err != nil {
		return nil, err
	}
	if m[lead] == nil {
		return map[string]any{}, nil
	}
	return m[lead], nil
}

// LeadsOnDay pages through the live leads whose date field key is day
// (2026-12-31), in id order after the lead id after: a journey entering
// on a date reads the day's leads through it.
func (s *Service) LeadsOnDay(ctx context.Context, corp, key, day string, after int64, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.SelectContext(ctx, &ids, `SELECT v.lead_id FROM lead_field_values v JOIN leads l ON l.id = v.lead_id AND l.merged_into = 0
		WHERE v.corp_id = ? AND v.field_key = ? AND v.day_value = ? AND v.lead_id > ? ORDER BY v.lead_id LIMIT ?`, corp, key, day, after, limit)
	return ids, err
}

// fieldValues reads the values of the leads among ids, by lead and key.
func (st *store) fieldValues(ctx context.Context, q sqlx.QueryerContext, corp string, ids []int64) (map[int64]map[string]any, error) {
	out := map[int64]map[string]any{}
	if len(ids) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT lead_id, field_key, text_value, num_value, day_value FROM lead_field_values WHERE lead_id IN (?) AND corp_id = ?`, ids, corp)
	if err != nil {
		return nil, err
	}
	var rows []fieldValue
	if err := sqlx.SelectContext(ctx, q, &rows, st.db.Rebind(query), args...); err != nil {
		return nil, err
	}
	return byLead(rows, out), nil
}

// fieldValuesBetween reads the values of a corp's leads with ids in
// (after, last], for a page of profiles read in id order.
func (st *store) fieldValuesBetween(ctx context.Context, corp string, after, last int64) (map[int64]map[string]any, error) {
	var rows []fieldValue
	err := st.db.SelectContext(ctx, &rows, `SELECT lead_id, field_key, text_value, num_value, day_value FROM lead_field_values
		WHERE lead_id > ? AND lead_id <= ? AND corp_id = ?`, after, last, corp)
	return byLead(rows, map[int64]map[string]any{}), err
}

func byLead(rows []fieldValue, out map[int64]map[string]any) map[int64]map[string]any {
	for _, r := range rows {
		m := out[r.Lead]
		if m == nil {
			m = map[string]any{}
			out[r.Lead] = m
		}
		m[r.Key] = r.value()
	}
	return out
}
