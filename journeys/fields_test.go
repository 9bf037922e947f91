package journeys

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// defineFields gives the corp a renewal date and a number of seats.
func (f *fixture) defineFields(t *testing.T) {
	t.Helper()
	for _, d := range []leads.FieldDef{
		{CorpID: corp, Key: "renewal_date", Label: "续约日期", Kind: leads.FieldDate},
		{CorpID: corp, Key: "seats", Label: "席位", Kind: leads.FieldNumber},
	} {
		if _, err := f.leads.DefineField(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) setFields(t *testing.T, lead int64, values map[string]any) {
	t.Helper()
	if _, err := f.leads.SetFields(context.Background(), corp, lead, 0, values, ""); err != nil {
		t.Fatal(err)
	}
}

// Segments compare the corp's own fields: checked against their
// definitions when saved, built, and followed through the bus when a
// value changes; an unset field matches no comparison.
func TestSegments_OnTheCorpsOwnFields(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		f.defineFields(t)
		ids := f.seed(t, 3)
		f.setFields(t, ids[0], map[string]any{"renewal_date": "2027-01-05", "seats": 40})
		f.setFields(t, ids[1], map[string]any{"renewal_date": "2027-06-01", "seats": 5})

		_, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "bad", Kind: KindDynamic, Filter: Filter{All: []Filter{
			{Field: "fields.colour", Op: "eq", Value: raw("red")},
			{Field: "fields.seats", Op: "gte", Value: raw("many")},
			{Field: "fields.renewal_date", Op: "lt", Value: raw("next spring")},
			{Field: "fields.seats", Op: "contains", Value: raw("4")},
		}}})
		fs := fieldsOf(err)
		for _, at := range []string{"filter.all[0].field", "filter.all[1].value", "filter.all[2].value", "filter.all[3].op"} {
			if fs[at] == "" {
				t.Errorf("no complaint at %s: %v", at, fs)
			}
		}
		if _, err := f.s.PreviewFilter(ctx, corp, Filter{Field: "fields.colour", Op: "empty"}); fieldsOf(err)["filter.field"] == "" {
			t.Errorf("the preview of an unknown field: %v", err)
		}

		soon := Filter{All: []Filter{
			{Field: "fields.renewal_date", Op: "lte", Value: raw("2027-03-31")},
			{Field: "fields.seats", Op: "gte", Value: raw(10)},
		}}
		p, err := f.s.PreviewFilter(ctx, corp, soon)
		if err != nil || p.Matched != 1 {
			t.Fatalf("preview %+v %v", p, err)
		}
		g, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "renewing soon", Kind: KindDynamic, Filter: soon})
		if err != nil {
			t.Fatal(err)
		}
		unset, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "no date", Kind: KindDynamic, Filter: Filter{Field: "fields.renewal_date", Op: "empty"}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, g)
		f.rebuild(t, unset)
		if m := f.members(t, g.ID); len(m) != 1 || m[0] != ids[0] {
			t.Fatalf("members %v, want %d", m, ids[0])
		}
		if m := f.members(t, unset.ID); len(m) != 1 || m[0] != ids[2] {
			t.Fatalf("members without a date %v, want %d", m, ids[2])
		}
		// A changed value moves people through the bus.
		f.setFields(t, ids[1], map[string]any{"renewal_date": "2027-02-01", "seats": 12})
		f.setFields(t, ids[0], map[string]any{"seats": nil})
		f.setFields(t, ids[2], map[string]any{"renewal_date": "2028-01-01"})
		waitFor(t, "membership to follow the fields", func() bool {
			m, u := f.members(t, g.ID), f.members(t, unset.ID)
			return len(m) == 1 && m[0] == ids[1] && len(u) == 0
		})
	})
}

// A journey entering on a date field: 30 days before the renewal date, at
// 10:00 in the corp's zone, each day's leads once (a second pass and a
// second instance enrol nobody again, though re-entry after exit would
// admit them), a missed day caught up, and a
// draft naming a field that is not a date refused.
func TestJourney_EntersOnADateField(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		f.defineFields(t)
		ids := f.seed(t, 4)
		// start is Monday 2026-12-07 08:00: renewals on Jan 6 enter on Dec 7, on Jan 8 on Dec 9.
		f.setFields(t, ids[0], map[string]any{"renewal_date": "2027-01-06"})
		f.setFields(t, ids[1], map[string]any{"renewal_date": "2027-01-06"})
		f.setFields(t, ids[2], map[string]any{"renewal_date": "2027-01-08"})
		f.setFields(t, ids[3], map[string]any{"renewal_date": "2027-01-05"}) // its day (Dec 6) was before the journey

		bad, err := f.s.SaveJourney(ctx, Journey{CorpID: corp, Name: "bad", Draft: Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "date", Field: "seats", OffsetDays: -30}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}}})
		if err != nil || bad.Problems["nodes.in.entry.field"] == "" {
			t.Fatalf("a date entry on a number: %+v %v", bad, err)
		}
		if _, err := f.s.Publish(ctx, corp, bad.ID, PublishIn{}); fieldsOf(err)["nodes.in.entry.field"] == "" {
			t.Fatalf("published a date entry on a number: %v", err)
		}

		j := f.publish(t, "renewal", Graph{Nodes: []Node{
			{ID: "in", Type: NodeEntry, Entry: &Entry{On: "date", Field: "renewal_date", OffsetDays: -30, At: "10:00"}, Exits: map[string]string{"next": "out"}},
			{ID: "out", Type: NodeExit},
		}, Settings: Settings{Reentry: "after_exit"}})
		enter := func(want int) {
			t.Helper()
			n, err := f.s.EnterOnDates(ctx)
			if err != nil || n != want {
				t.Fatalf("%s: enrolled %d (%v), want %d", time.UnixMilli(f.now.Load()).In(start.Location()), n, err, want)
			}
			// Runs end at once, so re-entry after exit would admit them
			// again: only the day's progress keeps a day from enrolling twice.
			f.tickAll(t)
		}
		enter(0) // 08:00: not yet
		f.advance(2 * time.Hour)
		enter(2) // 10:00: the two renewing on Jan 6
		enter(0)
		other := New(sqltest.Reopen(t, db), f.leads, f.s.calendars, quiet)
		other.SetClock(f.s.now)
		if n, err := other.EnterOnDates(ctx); err != nil || n != 0 {
			t.Fatalf("a second instance enrolled %d (%v)", n, err)
		}
		// No instance runs on Tuesday; on Wednesday at 11:00 both days are done.
		f.advance(49 * time.Hour)
		enter(1)
		rs := f.runsOf(t, j.ID)
		if len(rs) != 3 || rs[ids[3]].ID != 0 || rs[ids[0]].State != StateDone {
			t.Fatalf("runs %+v: want leads %v, done", rs, ids[:3])
		}
		st, err := f.s.JourneyStats(ctx, corp, j.ID)
		if err != nil || st.Journey.Enrolled != 3 {
			t.Fatalf("stats %+v %v", st, err)
		}
	})
}

// groupNamer is the directory as conditions on group names read it.
type groupNamer struct{ names map[string]string }

func (g groupNamer) TagNamesOf(context.Context, string, []string) (map[string][]string, error) {
	return map[string][]string{}, nil
}
func (g groupNamer) TagContact(context.Context, string, string, string, []string, []string) error {
	return nil
}
func (g groupNamer) GroupNames(_ context.Context, _ string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range ids {
		out[id] = g.names[id]
	}
	return out, nil
}

// Segments on group membership: the groups a person is in now (the latest
// join or leave of each), by chat id or by name; a leave moves them out
// through the bus.
func TestSegments_OnGroupMembership(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, true)
		ctx := context.Background()
		f.s.SetDirectory(groupNamer{names: map[string]string{"wrVIP": "VIP 客户群", "wrNews": "资讯群"}})
		ids := f.seed(t, 3)
		group := func(typ, chat string, lead int64) {
			t.Helper()
			ps, _ := f.leads.ProfilesOf(ctx, corp, []int64{lead})
			f.advance(time.Second)
			res, err := f.leads.RecordActivities(ctx, corp, []leads.ActivityIn{{PersonID: ps[0].PersonID, Type: typ, At: time.UnixMilli(f.now.Load()),
				Properties: raw(map[string]string{"chat_id": chat}), Key: fmt.Sprint(typ, chat, lead, f.now.Load())}})
			if err != nil || res.Recorded != 1 {
				t.Fatalf("activity %+v %v", res, err)
			}
		}
		group(leads.ActivityGroupJoined, "wrVIP", ids[0])
		group(leads.ActivityGroupJoined, "wrVIP", ids[1])
		group(leads.ActivityGroupLeft, "wrVIP", ids[1]) // left again
		group(leads.ActivityGroupJoined, "wrNews", ids[2])
		byID, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "in VIP", Kind: KindDynamic, Filter: Filter{Field: "groups", Op: "has", Value: raw("wrVIP")}})
		if err != nil {
			t.Fatal(err)
		}
		byName, err := f.s.CreateSegment(ctx, Segment{CorpID: corp, Name: "in 资讯群", Kind: KindDynamic, Filter: Filter{Field: "group_names", Op: "has", Value: raw("资讯群")}})
		if err != nil {
			t.Fatal(err)
		}
		f.rebuild(t, byID)
		f.rebuild(t, byName)
		if m := f.members(t, byID.ID); len(m) != 1 || m[0] != ids[0] {
			t.Fatalf("VIP members %v, want %d", m, ids[0])
		}
		if m := f.members(t, byName.ID); len(m) != 1 || m[0] != ids[2] {
			t.Fatalf("news members %v, want %d", m, ids[2])
		}
		group(leads.ActivityGroupLeft, "wrVIP", ids[0])
		group(leads.ActivityGroupJoined, "wrVIP", ids[1])
		waitFor(t, "membership to follow the groups", func() bool {
			m := f.members(t, byID.ID)
			return len(m) == 1 && m[0] == ids[1]
		})
	})
}
