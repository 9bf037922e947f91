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
