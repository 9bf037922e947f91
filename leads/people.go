package leads

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Sources of a lead that did not come from WeCom.
const (
	SourceAPI    = "api"    // the upsert API
	SourceForm   = "form"   // a web form
	SourceImport = "import" // a CSV import
)

// HistoryUpdated is a change of a lead's fields by an upsert.
const HistoryUpdated = "updated"

// More errors a user can act on.
var (
	ErrPersonNotFound = apperr.NotFound("person not found")
	ErrMergeNotFound  = apperr.NotFound("merge not found")
	ErrKeyReused      = apperr.Conflict("idempotency_key_reused", "this Idempotency-Key was used with another body")
	ErrMergeUndone    = apperr.Conflict("merge_undone", "this merge was undone already")
	ErrMergeLater     = apperr.Conflict("merge_superseded", "the surviving person was merged again since; undo that merge first")
	ErrSelfMerge      = apperr.Conflict("same_person", "a person cannot be merged with themselves")
)

// Identity is one thing that names a person: kind and value.
type Identity struct {
	Kind  string `db:"kind" json:"kind"`
	Value string `db:"value" json:"value"`
}

// Qualification is a lead's BANT fields.
type Qualification struct {
	Budget    string `db:"budget" json:"budget"`
	Authority string `db:"authority" json:"authority"`
	Need      string `db:"need" json:"need"`
	Timeline  string `db:"timeline" json:"timeline"`
}

// PersonIn is a person and their lead as a form, an import or another
// system sends them. Identities (mobile, email, unionid) find the person;
// empty fields keep what is stored.
type PersonIn struct {
	Name        string `json:"name"`
	Mobile      string `json:"mobile"`
	Email       string `json:"email"`
	UnionID     string `json:"unionid"`
	Title       string `json:"title"`
	Region      string `json:"region"`
	Company     string `json:"company"`
	Industry    string `json:"industry"`
	CompanySize int    `json:"company_size"`
	Qualification
	Source  string `json:"source"` // api (default), form or import
	Channel string `json:"channel"`
	CodeID  int64  `json:"code_id"`
	// Fields are values of the corp's own fields, by key (as the other
	// fields, an empty one keeps what is stored).
	Fields map[string]any `json:"fields,omitempty"`
}

// Person is someone a corp knows, with what identifies them.
type Person struct {
	ID            int64      `db:"id" json:"id"`
	CorpID        string     `db:"corp_id" json:"corp_id"`
	Name          string     `db:"name" json:"name"`
	Title         string     `db:"title" json:"title"`
	Region        string     `db:"region" json:"region"`
	CompanyID     int64      `db:"company_id" json:"company_id,omitempty"`
	Company       string     `db:"company" json:"company"`
	Industry      string     `db:"industry" json:"industry"`
	CompanySize   int        `db:"company_size" json:"company_size"`
	MergedInto    int64      `db:"merged_into" json:"merged_into,omitempty"`
	NeedsReview   bool       `db:"needs_review" json:"needs_review"`
	ReviewReasons string     `db:"review_reasons" json:"-"`
	Reviews       []Review   `db:"-" json:"reviews"`
	TestData      bool       `db:"test_data" json:"test_data"`
	Identities    []Identity `db:"-" json:"identities"`
	CreatedAt     int64      `db:"created_at" json:"created_at"`
	UpdatedAt     int64      `db:"updated_at" json:"updated_at"`
}

// Company is a corp's customer company.
type Company struct {
	ID   int64  `db:"id" json:"id"`
	Name string `db:"name" json:"name"`
	Norm string `db:"norm_name" json:"-"`
}

// CompanyReview is two companies whose names are alike, for a person to
// decide whether they are one.
type CompanyReview struct {
	CompanyID int64  `db:"company_id" json:"company_id"`
	Company   string `db:"company" json:"company"`
	SimilarID int64  `db:"similar_id" json:"similar_id"`
	Similar   string `db:"similar" json:"similar"`
	Reason    string `db:"reason" json:"reason"`
	CreatedAt int64  `db:"created_at" json:"created_at"`
}

// Merge is two people found to be one: the merged person's identities moved
// to the survivor, their lead was folded into the survivor's. Undoing it
// moves the identities back and restores the merged person and lead.
type Merge struct {
	ID              int64      `db:"id" json:"id"`
	CorpID          string     `db:"corp_id" json:"-"`
	SurvivorID      int64      `db:"survivor_id" json:"survivor_id"`
	MergedID        int64      `db:"merged_id" json:"merged_id"`
	Reason          string     `db:"reason" json:"reason"`
	IdentitiesJSON  string     `db:"identities" json:"-"`
	Identities      []Identity `db:"-" json:"identities"`
	LeadID          int64      `db:"lead_id" json:"lead_id,omitempty"`
	EngagementMilli int64      `db:"engagement_milli" json:"-"`
	ActorUserID     int64      `db:"actor_user_id" json:"actor_user_id,omitempty"`
	At              int64      `db:"at" json:"at"`
	UndoneAt        *int64     `db:"undone_at" json:"undone_at,omitempty"`
	UndoneBy        int64      `db:"undone_by" json:"undone_by,omitempty"`
}

// UpsertResult is what an upsert did.
type UpsertResult struct {
	Created  bool     `json:"created"`  // a new person and lead
	Replayed bool     `json:"replayed"` // the Idempotency-Key's earlier answer
	Person   *Person  `json:"person"`
	Lead     *Lead    `json:"lead"`
	Merges   []Merge  `json:"merges"`  // people this call found to be one
	Reviews  []Review `json:"reviews"` // what was flagged (kept, not refused)
}

// prepared is a PersonIn checked and normalised.
type prepared struct {
	in         PersonIn
	identities []Identity
	reviews    []Review
	test       bool
	norm       string // the company's normalised name
}

// limits are the stored widths of PersonIn's fields.
var limits = []struct {
	field string
	max   int
	value func(*PersonIn) string
}{
	{"name", 255, func(p *PersonIn) string { return p.Name }}, {"title", 128, func(p *PersonIn) string { return p.Title }},
	{"region", 64, func(p *PersonIn) string { return p.Region }}, {"company", 255, func(p *PersonIn) string { return p.Company }},
	{"industry", 64, func(p *PersonIn) string { return p.Industry }}, {"unionid", 128, func(p *PersonIn) string { return p.UnionID }},
	{"budget", 64, func(p *PersonIn) string { return p.Budget }}, {"authority", 64, func(p *PersonIn) string { return p.Authority }},
	{"need", 255, func(p *PersonIn) string { return p.Need }}, {"timeline", 64, func(p *PersonIn) string { return p.Timeline }},
	{"channel", 64, func(p *PersonIn) string { return p.Channel }}, {"mobile", 64, func(p *PersonIn) string { return p.Mobile }},
	{"email", 191, func(p *PersonIn) string { return p.Email }},
}

// prepare checks what can be refused (too long, an unknown source) and
// flags what is kept for a review: an invalid mobile or email, a missing
// name, nothing to match the person by, obvious test data.
func prepare(in PersonIn) (*prepared, error) {
	trim := func(s *string) { *s = strings.TrimSpace(*s) }
	for _, f := range []*string{&in.Name, &in.Mobile, &in.Email, &in.UnionID, &in.Title, &in.Region, &in.Company, &in.Industry,
		&in.Budget, &in.Authority, &in.Need, &in.Timeline, &in.Channel, &in.Source} {
		trim(f)
	}
	for _, l := range limits {
		if n := len([]rune(l.value(&in))); n > l.max {
			return nil, apperr.Field(l.field, fmt.Sprintf("is at most %d characters", l.max))
		}
	}
	switch in.Source {
	case "":
		in.Source = SourceAPI
	case SourceAPI, SourceForm, SourceImport:
	default:
		return nil, apperr.Field("source", "is api, form or import")
	}
	if in.CompanySize < 0 {
		return nil, apperr.Field("company_size", "is a number of employees, 0 or more")
	}
	p := &prepared{in: in}
	if in.Mobile != "" {
		if m, ok := NormalizeMobile(in.Mobile); ok {
			p.identities = append(p.identities, Identity{IdentityMobile, m})
		} else {
			p.reviews = append(p.reviews, Review{"mobile", "not a valid phone number"})
		}
		if testDigits(in.Mobile) {
			p.test = true
			p.reviews = append(p.reviews, Review{"mobile", "looks like test data"})
		}
	}
	if in.Email != "" {
		if e, ok := NormalizeEmail(in.Email); ok {
			p.identities = append(p.identities, Identity{IdentityEmail, e})
			if testEmail(e) {
				p.test = true
				p.reviews = append(p.reviews, Review{"email", "looks like test data"})
			}
		} else {
			p.reviews = append(p.reviews, Review{"email", "not a valid email address"})
		}
	}
	if in.UnionID != "" {
		p.identities = append(p.identities, Identity{IdentityUnionID, in.UnionID})
	}
	if in.Name == "" {
		p.reviews = append(p.reviews, Review{"name", "missing"})
	}
	if len(p.identities) == 0 {
		if in.Name == "" && in.Mobile == "" && in.Email == "" {
			return nil, apperr.Field("mobile", "give a mobile, an email, a unionid or a name")
		}
		p.reviews = append(p.reviews, Review{"mobile", "no valid mobile, email or unionid: this person cannot be matched"})
	}
	if in.Company != "" {
		if p.norm = NormalizeCompany(in.Company); p.norm == "" {
			p.reviews = append(p.reviews, Review{"company", "is only a legal form"})
		}
	}
	return p, nil
}

// errRaced is another transaction changing what an upsert or merge read (an
// identity given to another person at the same moment, a lead claimed
// while being merged): the upsert starts over and sees it.
var errRaced = errors.New("changed meanwhile")

// Upsert creates or updates a person and their lead from identities and
// fields. People found by different identities are merged (the merge is
// recorded and can be undone). A key makes the call safe to repeat: the
// same key and body answer what the first call did; the key with another
// body is refused. Invalid mobiles and emails, a missing name and test data
// are kept and flagged for a review, never dropped.
func (s *Service) Upsert(ctx context.Context, corp string, actor int64, key string, in PersonIn) (*UpsertResult, error) {
	p, err := prepare(in)
	if err != nil {
		return nil, err
	}
	if len(key) > 128 {
		return nil, apperr.Field("Idempotency-Key", "is at most 128 characters")
	}
	body, _ := json.Marshal(p.in)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	for attempt := 0; ; attempt++ {
		var res *UpsertResult
		fresh := true
		err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			if key != "" {
				ok, err := s.store.upsertKey(ctx, tx, corp, key, hash, qsql.Millis(s.now()))
				if err != nil || !ok {
					fresh = false
					return err
				}
			}
			var err error
			res, err = s.upsertTx(ctx, tx, corp, actor, p)
			if err == nil && key != "" {
				err = s.store.settleUpsertKey(ctx, tx, corp, key, res.Person.ID, res.Lead.ID)
			}
			return err
		})
		switch {
		case err == nil && !fresh:
			return s.replay(ctx, corp, key, hash)
		case err == nil:
			return s.readResult(ctx, corp, res)
		case key != "" && qsql.IsDuplicate(err) && attempt < 3:
			continue // the same key at the same moment: the other call's answer, next time round
		case errors.Is(err, errRaced) && attempt < 3:
			continue
		default:
			return nil, err
		}
	}
}

// replay answers a repeated key with what the first call made.
func (s *Service) replay(ctx context.Context, corp, key, hash string) (*UpsertResult, error) {
	was, person, lead, err := s.store.usedUpsertKey(ctx, corp, key)
	if err != nil {
		return nil, err
	}
	if was != hash {
		return nil, ErrKeyReused
	}
	res := &UpsertResult{Replayed: true, Person: &Person{ID: person}, Lead: &Lead{ID: lead}, Merges: []Merge{}, Reviews: []Review{}}
	return s.readResult(ctx, corp, res)
}

// readResult fills in the person and lead as stored now.
func (s *Service) readResult(ctx context.Context, corp string, res *UpsertResult) (*UpsertResult, error) {
	person, err := s.Person(ctx, corp, res.Person.ID)
	if err != nil {
		return nil, err
	}
	lead, err := s.read(ctx, corp, res.Lead.ID)
	if err != nil {
		return nil, err
	}
	if lead.Fields, err = s.FieldsOf(ctx, corp, lead.ID); err != nil {
		return nil, err
	}
	res.Person, res.Lead = person, lead
	return res, nil
}

// upsertTx creates or updates in tx the person of p's identities and their
// lead, merging the people those identities belong to.
func (s *Service) upsertTx(ctx context.Context, tx *qsql.Tx, corp string, actor int64, p *prepared) (*UpsertResult, error) {
	now := s.now()
	ms := qsql.Millis(now)
	owners, err := s.store.identityOwners(ctx, tx, corp, p.identities)
	if err != nil {
		return nil, err
	}
	var found []int64
	var missing []Identity
	for _, id := range p.identities {
		if o := owners[id]; o == 0 {
			missing = append(missing, id)
		} else if !slices.Contains(found, o) {
			found = append(found, o)
		}
	}
	if len(found) == 0 {
		made, err := s.createPeopleTx(ctx, tx, corp, actor, []*prepared{p}, ms)
		if err != nil {
			return nil, err
		}
		return made[0], nil
	}
	res := &UpsertResult{Merges: []Merge{}, Reviews: append([]Review{}, p.reviews...)}
	companies, err := s.companiesOf(ctx, tx, corp, []*prepared{p}, ms)
	if err != nil {
		return nil, err
	}
	company := companies[p.norm]
	person := found[0]
	if len(found) > 1 {
		if person, err = s.survivor(ctx, tx, corp, found); err != nil {
			return nil, err
		}
	}
	for _, other := range found {
		if other == person {
			continue
		}
		m, err := s.mergeTx(ctx, tx, corp, person, other, actor, "same "+sharedIdentity(p.identities, owners, other), now)
		if err != nil {
			return nil, err
		}
		res.Merges = append(res.Merges, *m)
	}
	stored, err := s.store.person(ctx, tx, corp, person)
	if err != nil {
		return nil, err
	}
	if stored.Name != "" {
		// A name missing from an update of a named person is nothing to review.
		res.Reviews = slices.DeleteFunc(res.Reviews, func(r Review) bool { return r.Field == "name" })
	}
	if err := s.store.updatePerson(ctx, tx, corp, person, &p.in, reviewsJSON(res.Reviews), p.test, company, ms); err != nil {
		return nil, err
	}
	if company == 0 && (p.in.Industry != "" || p.in.CompanySize > 0) {
		// The industry or size of the company the person is known to work for.
		if err := s.store.updateCompanyOf(ctx, tx, corp, person, p.in.Industry, p.in.CompanySize, ms); err != nil {
			return nil, err
		}
	}
	if err := s.store.addIdentities(ctx, tx, corp, identitiesOf(person, missing), ms); err != nil {
		if qsql.IsDuplicate(err) {
			return nil, errRaced
		}
		return nil, err
	}
	lead, err := s.store.leadOfPerson(ctx, tx, corp, person)
	if err != nil {
		return nil, err
	}
	how := "from the " + p.in.Source
	if lead == nil {
		pool, err := s.defaultPool(ctx, tx, corp, ms)
		if err != nil {
			return nil, err
		}
		lead = &Lead{CorpID: corp, PersonID: person, PoolID: pool, Stage: StageLead, Source: p.in.Source, Channel: p.in.Channel,
			CodeID: p.in.CodeID, CreatedAt: ms, UpdatedAt: ms}
		if err := s.store.createLeads(ctx, tx, []*Lead{lead}); err != nil {
			return nil, err
		}
		res.Created = true
		if err := s.store.addHistory(ctx, tx, corp, lead.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryCreated, To: StageLead, Reason: how}); err != nil {
			return nil, err
		}
	} else if changed := qualificationChanges(lead.Qualification, p.in.Qualification); changed != "" {
		if err := s.store.addHistory(ctx, tx, corp, lead.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryUpdated, To: changed, Reason: how}); err != nil {
			return nil, err
		}
	}
	if err := s.setLeadInputs(ctx, tx, corp, actor, lead.ID, p, how, ms); err != nil {
		return nil, err
	}
	if err := s.refitLeads(ctx, tx, corp, []int64{lead.ID}, ms); err != nil {
		return nil, err
	}
	res.Person, res.Lead = &Person{ID: person}, &Lead{ID: lead.ID}
	return res, nil
}

// createPeopleTx creates in tx a person and a lead for each of ps, none of
// whose identities belongs to anyone (nor to another of ps): a statement a
// table for all of them (an import's new lines), where an upsert that may
// find and merge people takes a dozen each. A duplicate identity (another
// transaction took it meanwhile) is errRaced.
func (s *Service) createPeopleTx(ctx context.Context, tx *qsql.Tx, corp string, actor int64, ps []*prepared, ms int64) ([]*UpsertResult, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	companies, err := s.companiesOf(ctx, tx, corp, ps, ms)
	if err != nil {
		return nil, err
	}
	people := make([]personRow, len(ps))
	for i, p := range ps {
		people[i] = personRow{in: &p.in, reviews: reviewsJSON(p.reviews), test: p.test, company: companies[p.norm]}
	}
	ids, err := s.store.insertPeople(ctx, tx, corp, people, ms)
	if err != nil {
		return nil, err
	}
	var identities []personIdentity
	for i, p := range ps {
		identities = append(identities, identitiesOf(ids[i], p.identities)...)
	}
	if err := s.store.addIdentities(ctx, tx, corp, identities, ms); err != nil {
		if qsql.IsDuplicate(err) {
			return nil, errRaced
		}
		return nil, err
	}
	pool, err := s.defaultPool(ctx, tx, corp, ms)
	if err != nil {
		return nil, err
	}
	leads := make([]*Lead, len(ps))
	for i, p := range ps {
		leads[i] = &Lead{CorpID: corp, PersonID: ids[i], PoolID: pool, Stage: StageLead, Source: p.in.Source, Channel: p.in.Channel,
			CodeID: p.in.CodeID, CreatedAt: ms, UpdatedAt: ms}
	}
	if err := s.store.createLeads(ctx, tx, leads); err != nil {
		return nil, err
	}
	history := make([]historyRow, len(ps))
	for i, p := range ps {
		history[i] = historyRow{corp, leads[i].ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryCreated, To: StageLead, Reason: "from the " + p.in.Source}}
	}
	if err := s.store.addHistories(ctx, tx, history); err != nil {
		return nil, err
	}
	out := make([]*UpsertResult, len(ps))
	leadIDs := make([]int64, len(ps))
	for i, p := range ps {
		if err := s.setLeadInputs(ctx, tx, corp, actor, leads[i].ID, p, "from the "+p.in.Source, ms); err != nil {
			return nil, err
		}
		leadIDs[i] = leads[i].ID
		out[i] = &UpsertResult{Created: true, Merges: []Merge{}, Reviews: append([]Review{}, p.reviews...),
			Person: &Person{ID: ids[i]}, Lead: &Lead{ID: leads[i].ID}}
	}
	if err := s.refitLeads(ctx, tx, corp, leadIDs, ms); err != nil {
		return nil, err
	}
	return out, nil
}

// setLeadInputs sets the BANT fields and custom fields p gives a lead
// (none given: no statement).
func (s *Service) setLeadInputs(ctx context.Context, tx *qsql.Tx, corp string, actor, lead int64, p *prepared, how string, ms int64) error {
	if p.in.Qualification != (Qualification{}) {
		if err := s.store.setQualification(ctx, tx, corp, lead, p.in.Qualification, ms); err != nil {
			return err
		}
	}
	// The API names fields its caller chose; a form or an import mapped
	// before a field was deleted passes over it.
	return s.setFieldsTx(ctx, tx, corp, lead, actor, nonEmpty(p.in.Fields), p.in.Source == SourceAPI, how, ms)
}

// nonEmpty drops the empty values of fields: in an upsert, as for every
// other field, an empty value keeps what is stored (SetFields clears).
func nonEmpty(fields map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range fields {
		if s, ok := v.(string); v != nil && (!ok || strings.TrimSpace(s) != "") {
			out[k] = v
		}
	}
	return out
}

// reviewsJSON is reviews as stored ("" for none).
func reviewsJSON(rs []Review) string {
	if len(rs) == 0 {
		return ""
	}
	b, _ := json.Marshal(rs)
	return truncate(string(b), 500)
}

// qualificationChanges names the BANT fields an update changes.
func qualificationChanges(was, in Qualification) string {
	var out []string
	for _, f := range []struct{ name, was, in string }{{"budget", was.Budget, in.Budget}, {"authority", was.Authority, in.Authority},
		{"need", was.Need, in.Need}, {"timeline", was.Timeline, in.Timeline}} {
		if f.in != "" && f.in != f.was {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, ",")
}

// sharedIdentity names the identity by which a person was found.
func sharedIdentity(ids []Identity, owners map[Identity]int64, person int64) string {
	for _, id := range ids {
		if owners[id] == person {
			return id.Kind + " " + id.Value
		}
	}
	return "person"
}

// companiesOf returns the companies ps name (by normalised name), made
// when new; a new company whose name is like another's is proposed for a
// review with it.
func (s *Service) companiesOf(ctx context.Context, tx *qsql.Tx, corp string, ps []*prepared, now int64) (map[string]int64, error) {
	var cs []companyIn
	for _, p := range ps {
		if p.norm != "" {
			cs = append(cs, companyIn{name: p.in.Company, norm: p.norm, industry: p.in.Industry, size: p.in.CompanySize})
		}
	}
	if len(cs) == 0 {
		return map[string]int64{}, nil
	}
	ids, made, err := s.store.companies(ctx, tx, corp, cs, now)
	if err != nil {
		return nil, err
	}
	for _, norm := range made {
		prefix := string([]rune(norm)[:min(2, len([]rune(norm)))])
		candidates, err := s.store.companiesLike(ctx, tx, corp, prefix, ids[norm])
		if err != nil {
			return nil, err
		}
		similar := slices.DeleteFunc(candidates, func(c Company) bool { return !similarCompanies(norm, c.Norm) })
		if err := s.store.proposeCompanies(ctx, tx, corp, ids[norm], similar, now); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// CompanyReviews lists companies proposed as near-duplicates.
func (s *Service) CompanyReviews(ctx context.Context, corp string) ([]CompanyReview, error) {
	return s.store.companyReviews(ctx, corp)
}

// Person reads a person with their identities.
func (s *Service) Person(ctx context.Context, corp string, id int64) (*Person, error) {
	p, err := s.store.person(ctx, s.db, corp, id)
	if err != nil {
		return nil, err
	}
	if p.Identities, err = s.store.identitiesOf(ctx, s.db, corp, id); err != nil {
		return nil, err
	}
	return p, nil
}

// PersonOfLead reads the person of a lead the viewer may see, with the
// merges they took part in.
func (s *Service) PersonOfLead(ctx context.Context, corp string, lead int64, v Viewer) (*Person, []Merge, error) {
	l, _, err := s.Get(ctx, corp, lead, v)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.Person(ctx, corp, l.PersonID)
	if err != nil {
		return nil, nil, err
	}
	merges, err := s.store.mergesOf(ctx, corp, p.ID)
	return p, merges, err
}

// ResolveCompanyReview settles a proposal that company (the newer) is
// similar to another: merge folds it into the similar one (its people move
// there and it is removed); otherwise the proposal is dismissed (they are
// two companies).
func (s *Service) ResolveCompanyReview(ctx context.Context, corp string, company, similar int64, merge bool) error {
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		ok, err := s.store.dropCompanyReview(ctx, tx, corp, company, similar)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("no such proposal")
		}
		if !merge {
			return nil
		}
		return s.store.mergeCompanies(ctx, tx, corp, similar, company, qsql.Millis(s.now()))
	})
}

// LeadOfContact is the lead of a corp's WeCom external contact (through
// the person its identity belongs to, after any merge), as v may see it:
// the chat sidebar shows it beside the conversation.
func (s *Service) LeadOfContact(ctx context.Context, corp, externalUserID string, v Viewer) (*Lead, error) {
	var id int64
	err := s.db.GetContext(ctx, &id, `SELECT l.id FROM person_identities i JOIN leads l ON l.corp_id = i.corp_id AND l.person_id = i.person_id AND l.merged_into = 0
		WHERE i.corp_id = ? AND i.kind = ? AND i.value = ? ORDER BY l.id LIMIT 1`, corp, IdentityWeCom, externalUserID)
	if qsql.IsNoRows(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	l, _, err := s.Get(ctx, corp, id, v)
	return l, err
}
