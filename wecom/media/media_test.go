package media_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qiflow/qiflow/kv/kvtest"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/fake"
	"github.com/qiflow/qiflow/wecom/media"
)

func TestMediaID_UploadsOnceAndAgainAfterItsAge(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		f, base := fake.StartForTest(t, fake.SandboxCorpID, false)
		api := wecom.NewAPI(base, kvtest.Open(t), 5*time.Second, wecom.CorpApp{CorpID: fake.SandboxCorpID, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
		st := media.New(db, api)
		now := time.Now()
		st.SetClock(func() time.Time { return now })
		ctx := context.Background()
		if _, err := st.Save(ctx, fake.SandboxCorpID, "image", "a.png", "image/png", make([]byte, 11<<20), 1); !errors.Is(err, media.ErrInvalid) {
			t.Fatalf("an 11 MB image: %v", err)
		}
		file, err := st.Save(ctx, fake.SandboxCorpID, "image", "poster.png", "image/png", []byte("\x89PNG some image bytes"), 1)
		if err != nil {
			t.Fatal(err)
		}
		id1, err := st.MediaID(ctx, fake.SandboxCorpID, file.ID)
		if err != nil || id1 == "" {
			t.Fatalf("first upload: %q %v", id1, err)
		}
		id2, _ := st.MediaID(ctx, fake.SandboxCorpID, file.ID)
		if id2 != id1 || f.Calls(fake.SandboxCorpID, "media/upload") != 1 {
			t.Fatalf("second use re-uploaded (%s vs %s)", id1, id2)
		}
		now = now.Add(61 * time.Hour)
		id3, err := st.MediaID(ctx, fake.SandboxCorpID, file.ID)
		if err != nil || id3 == id1 || f.Calls(fake.SandboxCorpID, "media/upload") != 2 {
			t.Fatalf("after 61 h: %q %v", id3, err)
		}
	})
}

// Files in use are re-uploaded ahead of WeCom's 3-day expiry by the cron
// job, so sending one (a welcome has 20 s) does not wait on an upload;
// files not sent for a month are left to expire.
func TestRefreshDue_KeepsFilesInUseFresh(t *testing.T) {
	db := sqltest.OpenSQLite(t)
	f, base := fake.StartForTest(t, fake.SandboxCorpID, false)
	now := time.Now()
	clock := func() time.Time { return now }
	f.SetClock(clock)
	api := wecom.NewAPI(base, kvtest.Open(t), 5*time.Second, wecom.CorpApp{CorpID: fake.SandboxCorpID, Secret: fake.SandboxCorp.Secret, AgentID: fake.SandboxCorp.AgentID})
	st := media.New(db, api)
	st.SetClock(clock)
	ctx := context.Background()
	used, _ := st.Save(ctx, fake.SandboxCorpID, "image", "used.png", "image/png", []byte("\x89PNG used"), 1)
	idle, _ := st.Save(ctx, fake.SandboxCorpID, "image", "idle.png", "image/png", []byte("\x89PNG idle"), 1)
	if _, err := st.MediaID(ctx, fake.SandboxCorpID, idle.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(31 * 24 * time.Hour) // idle was last sent a month ago
	first, err := st.MediaID(ctx, fake.SandboxCorpID, used.ID)
	if err != nil {
		t.Fatal(err)
	}
	uploads := func() int { return f.Calls(fake.SandboxCorpID, "media/upload") }
	if n, err := st.RefreshDue(ctx); err != nil || n != 0 {
		t.Fatalf("fresh uploads refreshed: %d %v", n, err)
	}
	now = now.Add(49 * time.Hour)
	before := uploads()
	if n, err := st.RefreshDue(ctx); err != nil || n != 1 || uploads() != before+1 {
		t.Fatalf("after 49 h: refreshed %d (%v), uploads %d → %d; want only the file in use", n, err, before, uploads())
	}
	second, err := st.MediaID(ctx, fake.SandboxCorpID, used.ID)
	if err != nil || second == first || uploads() != before+1 {
		t.Fatalf("sending after the refresh: %q (was %q) %v, uploads %d", second, first, err, uploads())
	}
}
