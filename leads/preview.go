package leads

import (
	"context"
	"encoding/json"

	"github.com/expr-lang/expr"

	"github.com/qiflow/qiflow/apperr"
)

// A rule's preview while it is being written: how many of a sample of
// recent leads (fit) or activities (engagement) its condition holds for.
// A sample, not the whole pool: exact counts over a million leads would
// make the settings page wait.

// Preview is a condition's hits in a sample.
type Preview struct {
	Matched int `json:"matched"`
	Sampled int `json:"sampled"`
}

// previewSample is how many of the newest leads or activities a preview reads.
const previewSample = 2000

// previewWindow bounds how far back among activities a preview looks for
// ones of the rule's type (a rare type must not scan millions).
const previewWindow = 200_000

// PreviewFitRule evaluates a fit condition on the corp's newest leads.
func (s *Service) PreviewFitRule(ctx context.Context, corp, cond string) (Preview, error) {
	prog, err := compileFit(cond)
	if err != nil {
		return Preview{}, apperr.Field("condition", err.Error())
	}
	var ids []int64
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM leads WHERE corp_id = ? AND merged_into = 0 ORDER BY id DESC LIMIT ?`, corp, previewSample); err != nil {
		return Preview{}, err
	}
	if len(ids) == 0 {
		return Preview{}, nil
	}
	inputs, err := s.store.fitInputs(ctx, s.db, corp, ids)
	if err != nil {
		return Preview{}, err
	}
	p := Preview{Sampled: len(inputs)}
	for _, in := range inputs {
		if ok, err := expr.Run(prog, in.fitEnv); err == nil && ok == true {
			p.Matched++
		}
	}
	return p, nil
}

// PreviewRule evaluates an engagement rule's condition on the corp's newest
// activities of its type.
func (s *Service) PreviewRule(ctx context.Context, corp, activityType, cond string) (Preview, error) {
	r := Rule{CorpID: corp, Name: "preview", ActivityType: activityType, Condition: cond, Points: 1}
	if err := r.check(); err != nil {
		return Preview{}, err
	}
	prog, err := compile(cond)
	if err != nil {
		return Preview{}, apperr.Field("condition", err.Error())
	}
	var newest int64
	if err := s.db.GetContext(ctx, &newest, `SELECT COALESCE(MAX(id), 0) FROM activities`); err != nil {
		return Preview{}, err
	}
	var props []string
	if err := s.db.SelectContext(ctx, &props, `SELECT properties FROM activities WHERE id > ? AND corp_id = ? AND type = ? ORDER BY id DESC LIMIT ?`,
		newest-previewWindow, corp, activityType, previewSample); err != nil {
		return Preview{}, err
	}
	p := Preview{Sampled: len(props)}
	for _, raw := range props {
		m := map[string]any{}
		_ = json.Unmarshal([]byte(raw), &m)
		if ok, err := expr.Run(prog, activityEnv{Type: activityType, Properties: m}); err == nil && ok == true {
			p.Matched++
		}
	}
	return p, nil
}
