package journeys

import (
	"context"
	"slices"
	"testing"

	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom/directory"
)

// A claim hands the subscriber one batch of events of many corps, and the
// batch's segments, journeys and contacts' leads are read once for all of
// them: each corp's events still move only that corp's segments and
// journeys. An ActivitiesRecorded queued by an earlier version is handled
// as the LeadChanged it has become.
func TestBatch_ManyCorpsAndEventsOfEarlierVersions(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f := newFixture(t, db, false)
		ctx := context.Background()
		const other = "ww2"
		mine := f.seed(t, 2)
		if err := f.leads.Intake(ctx, []livecode.ContactAdded{{CorpID: other, ExternalUserID: "wmX", UserID: "lisi", Source: "direct", SourceID: 99, AddedAt: f.now.Load()}}); err != nil {
			t.Fatal(err)
		}
		theirs, err := f.leads.Profiles(ctx, other, 0, 10, false)
		if err != nil || len(theirs) != 1 {
			t.Fatalf("the other corp's leads: %+v %v", theirs, err)
		}
		webinar := func(c string) *Journey {
			j, err := f.s.SaveJourney(ctx, Journey{CorpID: c, Name: "after the webinar", Draft: Graph{Nodes: []Node{
				{ID: "in", Type: NodeEntry, Entry: &Entry{On: "activity", Activity: "webinar"}, Exits: map[string]string{"next": "out"}},
				{ID: "out", Type: NodeExit},
			}}})
			if err != nil || len(j.Problems) > 0 {
				t.Fatalf("%s's journey: %+v %v", c, j, err)
			}
			if j, err = f.s.Publish(ctx, c, j.ID, PublishIn{}); err != nil {
				t.Fatal(err)
			}
			return j
		}
		jMine, jTheirs := webinar(corp), webinar(other)
		named := func(c string) *Segment {
			g, err := f.s.CreateSegment(ctx, Segment{CorpID: c, Name: "named", Kind: KindDynamic, Filter: Filter{Field: "name", Op: "eq", Value: raw("Li Lei")}})
			if err != nil {
				t.Fatal(err)
			}
			return f.rebuild(t, g)
		}
		sMine, sTheirs := named(corp), named(other)
		// wm1 of my corp and wmX of the other are named Li Lei, as the lead
		// pool's intake names people when their contacts are saved (this
		// fixture has no bus to bring it the ContactSaved); then one batch
		// brings their ContactSaved to journeys.
		for _, l := range []int64{mine[1], theirs[0].LeadID} {
			if _, err := db.Exec(`UPDATE people SET name = 'Li Lei' WHERE id = (SELECT person_id FROM leads WHERE id = ?)`, l); err != nil {
				t.Fatal(err)
			}
		}
		batch := []any{
			leads.ActivitiesRecorded{CorpID: corp, LeadID: mine[0], Activities: []leads.RecordedActivity{{Type: "webinar", At: f.now.Load()}}, At: f.now.Load(), Key: "old/1"},
			leads.LeadChanged{CorpID: other, LeadID: theirs[0].LeadID, Activities: []leads.RecordedActivity{{Type: "webinar", At: f.now.Load()}}, At: f.now.Load(), Key: "new/1"},
			directory.ContactSaved{CorpID: corp, ExternalUserID: "wm1", Name: "Li Lei", SavedAt: 1},
			directory.ContactSaved{CorpID: other, ExternalUserID: "wmX", Name: "Li Lei", SavedAt: 1},
		}
		if err := f.s.handleLeadEvents(ctx, current(batch)); err != nil {
			t.Fatal(err)
		}
		enrolled := func(c string, j *Journey) []int64 {
			rs, err := f.s.Runs(ctx, c, j.ID, "", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, r := range rs {
				out = append(out, r.LeadID)
			}
			return out
		}
		if got := enrolled(corp, jMine); !slices.Equal(got, []int64{mine[0]}) {
			t.Fatalf("my corp's journey enrolled %v, want the lead of the earlier version's event %d", got, mine[0])
		}
		if got := enrolled(other, jTheirs); !slices.Equal(got, []int64{theirs[0].LeadID}) {
			t.Fatalf("the other corp's journey enrolled %v, want %d", got, theirs[0].LeadID)
		}
		members := func(c string, g *Segment) []int64 {
			ms, err := f.s.Members(ctx, c, g.ID, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, m := range ms {
				if m.Member {
					out = append(out, m.Lead)
				}
			}
			return out
		}
		if got := members(corp, sMine); !slices.Equal(got, []int64{mine[1]}) {
			t.Fatalf("my corp's segment has %v, want wm1's lead %d", got, mine[1])
		}
		if got := members(other, sTheirs); !slices.Equal(got, []int64{theirs[0].LeadID}) {
			t.Fatalf("the other corp's segment has %v, want %d", got, theirs[0].LeadID)
		}
	})
}
