package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
)

// Filter is a segment's or a condition node's filter tree, as the console's
// builder edits it: a group (all/any, nesting) or one leaf. A leaf is a
// field comparison, a behaviour in a time window, or a raw expression for
// what the builder cannot say. The tree compiles to one expression of the
// expression library the scoring rules use (expr), checked when saved.
type Filter struct {
	All []Filter `json:"all,omitempty"`
	Any []Filter `json:"any,omitempty"`
	Not *Filter  `json:"not,omitempty"`

	// Field comparison: field op value.
	Field string          `json:"field,omitempty"`
	Op    string          `json:"op,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`

	// Behaviour: activities of a type ("*" any) in the last Days days
	// (0: ever), at least Min and (Max ≥ 0) at most Max. "Never did Y" is
	// {activity: Y, max: 0}; "no activity for 30 days" is {activity: "*",
	// days: 30, max: 0}.
	Activity string `json:"activity,omitempty"`
	Days     int    `json:"days,omitempty"`
	Min      int    `json:"min,omitempty"`
	Max      *int   `json:"max,omitempty"`

	// Expr is a raw condition over the same fields.
	Expr string `json:"expr,omitempty"`
}

// env is what a condition sees: the lead's profile, its tags, and its
// activity counts over windows (fetched before evaluation: see compiled.queries).
type env struct {
	leads.Profile
	Tags  []string `expr:"tags"`
	Teams []string `expr:"teams"` // the owner's teams, by name
	// Groups are the customer groups the person is in now (chat ids), and
	// GroupNames their names.
	Groups     []string                       `expr:"groups"`
	GroupNames []string                       `expr:"group_names"`
	Activities func(typ string, days int) int `expr:"activities"`
}

// fieldNames are the names a condition may use, for pickers and errors.
var fieldNames = func() map[string]reflect.Kind {
	out := map[string]reflect.Kind{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if name := f.Tag.Get("expr"); name != "" && name != "-" {
				out[name] = f.Type.Kind()
			}
		}
	}
	walk(reflect.TypeOf(env{}))
	return out
}()

// Fields lists the fields a condition may name, sorted.
func Fields() []string {
	out := make([]string, 0, len(fieldNames))
	for k := range fieldNames {
		if k != "activities" && k != "fields" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ops maps a comparison to its expression.
var ops = map[string]string{"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "in": "in", "not_in": "not in"}

// Source compiles the tree to an expression; bad parts are added to f
// under path.
func (t Filter) Source(path string, f apperr.Fields) string {
	group := func(parts []Filter, name, join string) string {
		if len(parts) == 0 {
			f.Add(path+"."+name, "is an empty group")
			return "false"
		}
		out := make([]string, len(parts))
		for i, p := range parts {
			out[i] = "(" + p.Source(fmt.Sprintf("%s.%s[%d]", path, name, i), f) + ")"
		}
		return strings.Join(out, join)
	}
	switch {
	case t.All != nil:
		return group(t.All, "all", " && ")
	case t.Any != nil:
		return group(t.Any, "any", " || ")
	case t.Not != nil:
		return "!(" + t.Not.Source(path+".not", f) + ")"
	case t.Expr != "":
		return t.Expr
	case t.Activity != "":
		if t.Days < 0 || t.Days > 3650 {
			f.Add(path+".days", "is between 0 (ever) and 3650")
		}
		typ := t.Activity
		if typ == "*" {
			typ = ""
		}
		call := fmt.Sprintf("activities(%s, %d)", strconv.Quote(typ), t.Days)
		parts := []string{}
		if t.Min > 0 {
			parts = append(parts, fmt.Sprintf("%s >= %d", call, t.Min))
		}
		if t.Max != nil {
			if *t.Max < t.Min || *t.Max < 0 {
				f.Add(path+".max", "is at least min and not negative")
			}
			parts = append(parts, fmt.Sprintf("%s <= %d", call, *t.Max))
		}
		if len(parts) == 0 {
			parts = append(parts, call+" >= 1")
		}
		return strings.Join(parts, " && ")
	case strings.HasPrefix(t.Field, leads.FieldPrefix):
		return t.ownFieldSource(path, f)
	case t.Field != "":
		kind, ok := fieldNames[t.Field]
		if !ok || t.Field == "activities" || t.Field == "fields" {
			f.Add(path+".field", fmt.Sprintf("%q is not a field (one of: %s)", t.Field, strings.Join(Fields(), ", ")))
			return "false"
		}
		switch t.Op {
		case "empty", "not_empty":
			cmp := map[bool]string{true: "==", false: "!="}[t.Op == "empty"]
			switch kind {
			case reflect.String:
				return t.Field + " " + cmp + ` ""`
			case reflect.Slice:
				return "len(" + t.Field + ") " + cmp + " 0"
			default:
				return t.Field + " " + cmp + " 0"
			}
		case "contains", "prefix":
			lit, ok := literal(t.Value)
			if !ok || kind == reflect.Slice {
				f.Add(path+".value", "is a string")
				return "false"
			}
			if t.Op == "prefix" {
				return t.Field + " startsWith " + lit
			}
			return t.Field + " contains " + lit
		case "has": // a tag
			lit, ok := literal(t.Value)
			if !ok || kind != reflect.Slice {
				f.Add(path+".op", "has applies to tags, with a string value")
				return "false"
			}
			return lit + " in " + t.Field
		}
		op, ok := ops[t.Op]
		if !ok {
			f.Add(path+".op", "is one of eq, ne, gt, gte, lt, lte, in, not_in, contains, prefix, has, empty, not_empty")
			return "false"
		}
		lit, ok := literal(t.Value)
		if !ok {
			f.Add(path+".value", "is a string, a number, a boolean or a list of them")
			return "false"
		}
		return t.Field + " " + op + " " + lit
	}
	f.Add(path, "is a group (all, any, not) or a condition (field, activity or expr)")
	return "false"
}

// ownKey is the key of one of the corp's own fields as a condition names
// it (fields.renewal_date), checked as a key can be spelt; whether the corp
// has it is checked when a segment or journey is saved (checkOwnFields).
var ownKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ownFieldSource compiles a comparison of one of the corp's own fields. An
// unset field is nil: it is empty, and no comparison but ne and not_in
// holds for it (an unset renewal date is not before any day).
func (t Filter) ownFieldSource(path string, f apperr.Fields) string {
	key := strings.TrimPrefix(t.Field, leads.FieldPrefix)
	if !ownKey.MatchString(key) {
		f.Add(path+".field", fmt.Sprintf("%q is not a field key (fields.<key>: lowercase letters, digits and _)", t.Field))
		return "false"
	}
	ref := "fields[" + strconv.Quote(key) + "]"
	switch t.Op {
	case "empty":
		return ref + " == nil"
	case "not_empty":
		return ref + " != nil"
	}
	lit, ok := literal(t.Value)
	if !ok {
		f.Add(path+".value", "is a string, a number, a boolean or a list of them")
		return "false"
	}
	switch t.Op {
	case "contains":
		return ref + " != nil && string(" + ref + ") contains " + lit
	case "prefix":
		return ref + " != nil && string(" + ref + ") startsWith " + lit
	case "ne":
		return ref + " != " + lit
	case "not_in":
		return "!(" + ref + " in " + lit + ")"
	case "in":
		return ref + " in " + lit
	}
	op, ok := ops[t.Op]
	if !ok {
		f.Add(path+".op", "is one of eq, ne, gt, gte, lt, lte, in, not_in, contains, prefix, empty, not_empty")
		return "false"
	}
	return ref + " != nil && " + ref + " " + op + " " + lit
}

// ownFields collects the corp's own fields a tree compares, with each
// leaf's path, operator and value, for checkOwnFields.
func (t Filter) ownFields(path string, visit func(path string, leaf Filter)) {
	for i, p := range t.All {
		p.ownFields(fmt.Sprintf("%s.all[%d]", path, i), visit)
	}
	for i, p := range t.Any {
		p.ownFields(fmt.Sprintf("%s.any[%d]", path, i), visit)
	}
	if t.Not != nil {
		t.Not.ownFields(path+".not", visit)
	}
	if strings.HasPrefix(t.Field, leads.FieldPrefix) {
		visit(path, t)
	}
}

// checkOwnFields checks a tree's comparisons of the corp's own fields
// against their definitions: the field exists, the operator suits its
// kind, and the value is one of its kind (a day for a date, a number for
// a number, a choice for a select).
func checkOwnFields(t Filter, path string, defs map[string]leads.FieldDef, f apperr.Fields) {
	t.ownFields(path, func(at string, leaf Filter) {
		key := strings.TrimPrefix(leaf.Field, leads.FieldPrefix)
		d, ok := defs[key]
		if !ok {
			f.Add(at+".field", fmt.Sprintf("%q is not a field of this corp", leaf.Field))
			return
		}
		if leaf.Op == "empty" || leaf.Op == "not_empty" {
			return
		}
		if (leaf.Op == "contains" || leaf.Op == "prefix") && d.Kind != leads.FieldText {
			f.Add(at+".op", leaf.Op+" applies to text fields")
			return
		}
		var v any
		if json.Unmarshal(leaf.Value, &v) != nil {
			return // Source names it
		}
		values := []any{v}
		if list, ok := v.([]any); ok {
			values = list
		}
		for _, x := range values {
			var bad bool
			switch d.Kind {
			case leads.FieldNumber:
				_, isNum := x.(float64)
				bad = !isNum
			case leads.FieldDate:
				s, isStr := x.(string)
				day, err := leads.ParseDay(s)
				bad = !isStr || err != nil || day != s
			case leads.FieldSelect:
				s, _ := x.(string)
				bad = !slices.Contains(d.Options, s)
			default:
				_, isStr := x.(string)
				bad = !isStr
			}
			if bad {
				f.Add(at+".value", fmt.Sprintf("is a value of %s field %s (%s)", d.Kind, key, map[string]string{
					leads.FieldNumber: "a number", leads.FieldDate: "a day as 2026-12-31", leads.FieldSelect: "one of its choices", leads.FieldText: "text"}[d.Kind]))
				return
			}
		}
	})
}

// literal renders a JSON value as an expression literal.
func literal(raw json.RawMessage) (string, bool) {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	var render func(v any) (string, bool)
	render = func(v any) (string, bool) {
		switch x := v.(type) {
		case string:
			return strconv.Quote(x), true
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(x), true
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				s, ok := render(e)
				if !ok {
					return "", false
				}
				parts[i] = s
			}
			return "[" + strings.Join(parts, ", ") + "]", true
		}
		return "", false
	}
	return render(v)
}

// compiled is a checked condition, with what it reads: the profile fields
// it names (to skip it when a change touches none of them) and the activity
// windows it counts (fetched once per batch of leads before evaluating).
type compiled struct {
	source  string
	program *vm.Program
	fields  map[string]bool
	queries []activityWindow
	// scoreMarks are the numbers score is compared with: as engagement
	// decays, the condition's truth can flip when the score passes one.
	scoreMarks []float64
}

// activityWindow is one activities(type, days) the condition calls.
type activityWindow struct {
	Type string
	Days int
}

// compileFilter checks a filter tree and compiles it; mistakes come back as
// a 422 naming each bad part under field.
func compileFilter(field string, t Filter) (*compiled, error) {
	f := apperr.Fields{}
	src := t.Source(field, f)
	if len(f) > 0 {
		return nil, f.Err()
	}
	c, err := compileSource(src)
	if err != nil {
		return nil, apperr.Field(field, err.Error())
	}
	return c, nil
}

// stored caches the compiled filters of stored segments by their JSON:
// every event batch reads the corp's segments, and compiling each filter
// again each time would be most of the work. A compiled filter is
// read-only, so one serves every goroutine.
var stored sync.Map

func compileStored(raw string, t Filter) (*compiled, error) {
	if c, ok := stored.Load(raw); ok {
		return c.(*compiled), nil
	}
	c, err := compileFilter("filter", t)
	if err == nil {
		stored.Store(raw, c)
	}
	return c, err
}

// compileSource compiles an expression over env and finds what it reads.
func compileSource(src string) (*compiled, error) {
	prog, err := expr.Compile(src, expr.Env(env{}), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	c := &compiled{source: src, program: prog, fields: map[string]bool{}}
	v := &reads{c: c}
	node := prog.Node()
	ast.Walk(&node, v)
	if v.err != nil {
		return nil, v.err
	}
	return c, nil
}

// reads collects the fields and activity windows a condition names.
type reads struct {
	c   *compiled
	err error
}

func (r *reads) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if _, ok := fieldNames[x.Value]; ok && x.Value != "activities" {
			r.c.fields[x.Value] = true
		}
	case *ast.BinaryNode:
		if mark, ok := scoreMark(x.Left, x.Right); ok {
			r.c.scoreMarks = append(r.c.scoreMarks, mark)
		} else if mark, ok := scoreMark(x.Right, x.Left); ok {
			r.c.scoreMarks = append(r.c.scoreMarks, mark)
		}
	case *ast.CallNode:
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "activities" {
			return
		}
		typ, ok1 := x.Arguments[0].(*ast.StringNode)
		days, ok2 := x.Arguments[1].(*ast.IntegerNode)
		if !ok1 || !ok2 || days.Value < 0 {
			r.err = fmt.Errorf("activities(type, days) takes a quoted type and a whole number of days")
			return
		}
		w := activityWindow{Type: typ.Value, Days: days.Value}
		for _, q := range r.c.queries {
			if q == w {
				return
			}
		}
		r.c.queries = append(r.c.queries, w)
	}
}

// scoreMark is the number in "score <op> number" (either side).
func scoreMark(a, b ast.Node) (float64, bool) {
	if id, ok := a.(*ast.IdentifierNode); !ok || id.Value != "score" {
		return 0, false
	}
	switch n := b.(type) {
	case *ast.IntegerNode:
		return float64(n.Value), true
	case *ast.FloatNode:
		return n.Value, true
	}
	return 0, false
}

// groupFields are the condition fields a group join or leave changes.
var groupFields = []string{"groups", "group_names"}

// eval evaluates the condition for one lead with what it reads besides the
// profile: its tags, the owner's teams, its groups, and its counts
// (answers to c.queries, in order).
func (c *compiled) eval(p leads.Profile, x extras, counts []leads.ActivityCount) (bool, error) {
	e := env{Profile: p, Tags: x.tags, Teams: x.teams, Groups: x.groups, GroupNames: x.groupNames, Activities: func(typ string, days int) int {
		for i, q := range c.queries {
			if q.Type == typ && q.Days == days && i < len(counts) {
				return counts[i].N
			}
		}
		return 0
	}}
	out, err := expr.Run(c.program, e)
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}

// extras is what a condition reads of a lead besides its profile.
type extras struct {
	tags, teams, groups, groupNames []string
}

// activityQueries are c's windows as the lead pool's queries at now.
func (c *compiled) activityQueries(now time.Time) []leads.ActivityQuery {
	out := make([]leads.ActivityQuery, len(c.queries))
	for i, q := range c.queries {
		out[i] = leads.ActivityQuery{Type: q.Type}
		if q.Days > 0 {
			out[i].Since = now.Add(-time.Duration(q.Days) * 24 * time.Hour)
		}
	}
	return out
}

// nextFlip is when c's truth may next change for a lead without anything
// happening to them (0: never): when the oldest activity a windowed count
// counts leaves its window, or when the decaying score falls past a
// number the condition compares it with.
func (c *compiled) nextFlip(counts []leads.ActivityCount, p leads.Profile, now time.Time) int64 {
	var next int64
	for _, mark := range c.scoreMarks {
		if mark <= 0 || p.Score <= mark || p.HalfLifeDays <= 0 {
			continue
		}
		// score(t) = score(now) · 2^(−Δ/halfLife): it reaches mark after
		// halfLife · log2(score/mark).
		d := time.Duration(float64(p.HalfLifeDays) * math.Log2(p.Score/mark) * float64(24*time.Hour))
		if at := now.Add(d).UnixMilli() + 1; next == 0 || at < next {
			next = at
		}
	}
	for i, q := range c.queries {
		if q.Days == 0 || i >= len(counts) || counts[i].N == 0 {
			continue
		}
		at := counts[i].Oldest + int64(q.Days)*24*int64(time.Hour/time.Millisecond) + 1
		if next == 0 || at < next {
			next = at
		}
	}
	return next
}

// touchedBy reports whether a change of the given profile fields (nil: any)
// or activity types may change c's truth.
func (c *compiled) touchedBy(fields []string, activityTypes []string) bool {
	if fields == nil && activityTypes == nil {
		return true
	}
	for _, f := range fields {
		if c.fields[f] {
			return true
		}
	}
	for _, t := range activityTypes {
		for _, q := range c.queries {
			if q.Type == "" || q.Type == t {
				return true
			}
		}
	}
	return false
}

// ownFieldDefs reads the corp's own lead fields by key.
func (s *Service) ownFieldDefs(ctx context.Context, corp string) (map[string]leads.FieldDef, error) {
	defs, err := s.leads.FieldDefs(ctx, corp)
	if err != nil {
		return nil, err
	}
	out := make(map[string]leads.FieldDef, len(defs))
	for _, d := range defs {
		out[d.Key] = d
	}
	return out, nil
}

// checkFilter refuses a filter whose comparisons of the corp's own fields
// do not fit their definitions (a 422 naming each, under path).
func (s *Service) checkFilter(ctx context.Context, corp, path string, t Filter) error {
	if !t.namesOwnFields() {
		return nil
	}
	defs, err := s.ownFieldDefs(ctx, corp)
	if err != nil {
		return err
	}
	f := apperr.Fields{}
	checkOwnFields(t, path, defs, f)
	if len(f) > 0 {
		return f.Err()
	}
	return nil
}

// namesOwnFields reports whether a tree compares any of the corp's own fields.
func (t Filter) namesOwnFields() bool {
	found := false
	t.ownFields("", func(string, Filter) { found = true })
	return found
}

// graphFieldProblems are what a graph's conditions and goal say wrongly
// of the corp's own fields, under the paths Validate uses.
func (s *Service) graphFieldProblems(ctx context.Context, corp string, g *Graph) (apperr.Fields, error) {
	f := apperr.Fields{}
	trees := map[string]Filter{} // by path
	add := func(path string, t *Filter) {
		if t != nil && t.namesOwnFields() {
			trees[path] = *t
		}
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		add("nodes."+n.ID+".condition", n.Condition)
		for j := range n.Cases {
			add(fmt.Sprintf("nodes.%s.cases[%d].condition", n.ID, j), &n.Cases[j].Condition)
		}
	}
	add("goal", g.Goal)
	var dates []int
	for i := range g.Nodes {
		if e := g.Nodes[i].Entry; g.Nodes[i].Type == NodeEntry && e != nil && e.On == "date" {
			dates = append(dates, i)
		}
	}
	if len(trees) == 0 && len(dates) == 0 {
		return f, nil
	}
	defs, err := s.ownFieldDefs(ctx, corp)
	if err != nil {
		return nil, err
	}
	for path, t := range trees {
		checkOwnFields(t, path, defs, f)
	}
	for _, i := range dates {
		if n := &g.Nodes[i]; defs[n.Entry.Field].Kind != leads.FieldDate {
			f.Add("nodes."+n.ID+".entry.field", fmt.Sprintf("%q is not a date field of this corp", n.Entry.Field))
		}
	}
	return f, nil
}
