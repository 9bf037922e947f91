package directory_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/kv/kvtest"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/directory"
	"github.com/qiflow/qiflow/wecom/fake"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const corp = fake.SandboxCorpID

type env struct {
	db  *qsql.DB
	f   *fake.Fake
	dir *directory.Directory
	run *jobs.Runner
}

func setup(t *testing.T, db *qsql.DB) env {
	f, base := fake.StartForTest(t, corp, true)
	api := wecom.NewAPI(base, kvtest.Open(t), 5*time.Second, wecom.CorpApp{CorpID: corp, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
	dir := directory.New(db, api, quiet)
	r := jobs.NewRunner(db, "test", 5*time.Second, quiet)
	r.Register(directory.JobSync, dir.RunSync)
	return env{db, f, dir, r}
}

func (e env) sync(t *testing.T) jobs.JobRow {
	t.Helper()
	ctx := context.Background()
	id, err := e.dir.EnqueueSync(ctx, e.run, corp, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.run.Start(1)
	defer e.run.Stop(ctx)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		j, _ := e.run.Get(ctx, corp, id)
		if j.Status == jobs.JobDone || j.Status == jobs.JobFailed {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("sync did not finish")
	return jobs.JobRow{}
}

func TestSync_ImportsTheWholeDirectory(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		e := setup(t, db)
		ctx := context.Background()
		// A group with a member, so groups are imported too.
		e.f.CreateGroup(ctx, corp, "zhangsan", "VIP")
		j := e.sync(t)
		if j.Status != jobs.JobDone {
			t.Fatalf("sync: %s %v", j.Status, j.Error)
		}
		c, err := e.dir.Count(ctx, corp)
		if err != nil {
			t.Fatal(err)
		}
		want := directory.Counts{Departments: 4, Staff: 7, Tags: 5, Contacts: 3, Follows: 3, Groups: 1}
		if c != want {
			t.Fatalf("counts %+v, want %+v", c, want)
		}
	})
}

func TestSync_PartialSyncRemovesNobody(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		e := setup(t, db)
		ctx := context.Background()
		if j := e.sync(t); j.Status != jobs.JobDone {
			t.Fatalf("first sync: %s", j.Status)
		}
		// lisi leaves the company; the next sync fails halfway through.
		e.f.Mutate(corp, func(c *fake.Corp) { delete(c.Staff, "lisi") })
		e.f.Inject(fake.Fault{Endpoint: "externalcontact/batch/get_by_user", Status: 500})
		id, _ := e.dir.EnqueueSync(ctx, e.run, corp, 0)
		e.run.Start(1)
		time.Sleep(1500 * time.Millisecond) // first attempt fails; retry is backed off
		e.run.Stop(ctx)
		staff, _ := e.dir.ListStaff(ctx, corp)
		for _, s := range staff {
			if s.GoneAt != nil {
				t.Fatalf("%s marked gone by a failed sync", s.UserID)
			}
		}
		j, _ := e.run.Get(ctx, corp, id)
		if j.Status == jobs.JobDone {
			t.Fatal("sync with a failing page reported done")
		}
		// WeCom recovers: the retried job resumes and completes; now lisi is gone.
		e.f.ClearFaults()
		db.Exec(`UPDATE jobs SET available_at = 0 WHERE id = ?`, id)
		e.run.Start(1)
		deadline := time.Now().Add(10 * time.Second)
		for {
			j, _ = e.run.Get(ctx, corp, id)
			if j.Status == jobs.JobDone || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.run.Stop(ctx)
		if j.Status != jobs.JobDone {
			t.Fatalf("resumed sync: %s %v", j.Status, j.Error)
		}
		staff, _ = e.dir.ListStaff(ctx, corp)
		gone := 0
		for _, s := range staff {
			if s.GoneAt != nil {
				gone++
				if s.UserID != "lisi" {
					t.Fatalf("%s marked gone", s.UserID)
				}
			}
		}
		if gone != 1 {
			t.Fatalf("%d staff gone after a complete sync, want 1", gone)
		}
	})
}

func TestContactEvents_DeletionsRecordedNotErased(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		e := setup(t, db)
		ctx := context.Background()
		res, err := e.f.Add(ctx, corp, "zhangsan", fake.Customer{Name: "Ann"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		add := &wecom.ExternalContactEvent{Header: wecom.Header{ToUserName: corp, CreateTime: time.Now().Unix(), Event: wecom.EventExternalContact, ChangeType: wecom.ChangeAddExternalContact},
			UserID: "zhangsan", ExternalUserID: res.ExternalUserID}
		if err := e.dir.HandleContactEvent(ctx, corp, add); err != nil {
			t.Fatal(err)
		}
		del := *add
		del.ChangeType, del.CreateTime, del.Source = wecom.ChangeDelExternalContact, add.CreateTime+5, wecom.SourceDeleteByTransfer
		if err := e.dir.HandleContactEvent(ctx, corp, &del); err != nil {
			t.Fatal(err)
		}
		// The same add processed again after the deletion changes nothing.
		if err := e.dir.HandleContactEvent(ctx, corp, add); err != nil {
			t.Fatal(err)
		}
		c, err := e.dir.GetContact(ctx, corp, res.ExternalUserID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "Ann" || len(c.Follows) != 1 || c.Follows[0].DeletedAt == nil || c.Follows[0].DeletedBy != directory.DeletedByTransfer {
			t.Fatalf("contact after transfer: %+v %+v", c, c.Follows)
		}
	})
}

// A large corp (more than 1,000 staff in the app's range): WeCom refuses an
// unfiltered group list (81017), so groups are listed per batch of 100 owners,
// and a group owned by the 1,050th staff member is imported.
func TestSync_ImportsGroupsOfALargeCorpByOwnerBatches(t *testing.T) {
	db := sqltest.OpenSQLite(t)
	e := setup(t, db)
	ctx := context.Background()
	e.f.Mutate(corp, func(c *fake.Corp) {
		for i := 0; i < 1100; i++ {
			id := fmt.Sprintf("staff%04d", i)
			c.Staff[id] = &wecom.Staff{UserID: id, Name: id, Status: 1, Department: []int64{2}, MainDepartment: 2}
		}
	})
	e.f.CreateGroup(ctx, corp, "zhangsan", "Early")
	e.f.CreateGroup(ctx, corp, "staff1050", "Late")
	j := e.sync(t)
	if j.Status != jobs.JobDone {
		t.Fatalf("sync: %s %v", j.Status, j.Error)
	}
	c, err := e.dir.Count(ctx, corp)
	if err != nil {
		t.Fatal(err)
	}
	if c.Staff != 1107 || c.Groups != 2 {
		t.Fatalf("counts %+v, want 1107 staff and 2 groups", c)
	}
}

// Rule-group (strategy) tags are mirrored beside corp tags, so codes can use
// them and onboarding does not report them missing.
func TestSyncTags_MirrorsStrategyTags(t *testing.T) {
	db := sqltest.OpenSQLite(t)
	e := setup(t, db)
	ctx := context.Background()
	e.f.Mutate(corp, func(c *fake.Corp) {
		c.StrategyTagGroups = []*wecom.TagGroup{{GroupID: "etgS1", GroupName: "Store team rules", StrategyID: 7,
			Tags: []wecom.CorpTag{{ID: "etS1", Name: "Walk-in"}}}}
	})
	if err := e.dir.SyncTags(ctx, corp); err != nil {
		t.Fatal(err)
	}
	missing, err := e.dir.MissingTags(ctx, corp, []string{"etS1"})
	if err != nil || len(missing) != 0 {
		t.Fatalf("the strategy tag is missing from the mirror: %v %v", missing, err)
	}
	var strategy int64
	if err := db.Get(&strategy, `SELECT strategy_id FROM tag_groups WHERE corp_id = ? AND id = 'etgS1'`, corp); err != nil || strategy != 7 {
		t.Fatalf("strategy id %d %v", strategy, err)
	}
}
