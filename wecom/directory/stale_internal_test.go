package directory

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
	"github.com/qiflow/qiflow/wecom"
)

// Two refreshes of one contact race (the add event's and the code's
// tagging): the one that read WeCom first writes last. Its older picture
// must not undo the newer one's tags.
func TestWriteContacts_AnOlderReadNeverUndoesANewerOne(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		d := New(db, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx := context.Background()
		write := func(readAt int64, tags ...string) {
			t.Helper()
			w := contactWrite{CorpID: "ww1", Contact: wecom.ExternalContact{ExternalUserID: "wm1", Name: "Ann"},
				Follows: []wecom.FollowUser{{UserID: "zhangsan", CreateTime: 100, TagIDs: tags}}}
			if err := db.WriteTx(ctx, func(tx *qsql.Tx) error { return d.writeContacts(ctx, tx, []contactWrite{w}, readAt) }); err != nil {
				t.Fatal(err)
			}
		}
		tagsNow := func() []string {
			c, err := d.GetContact(ctx, "ww1", "wm1")
			if err != nil || len(c.Follows) != 1 {
				t.Fatalf("%+v %v", c, err)
			}
			var ids []string
			if err := json.Unmarshal(c.Follows[0].TagIDs, &ids); err != nil {
				t.Fatal(err)
			}
			return ids
		}
		write(1000)          // the first picture: no tags
		write(3000, "etVIP") // read after the tagging
		write(2000)          // read before it, written after
		if got := tagsNow(); len(got) != 1 || got[0] != "etVIP" {
			t.Fatalf("tags %v: an older read undid a newer one", got)
		}
		write(4000) // a newer read without the tag: it was removed
		if got := tagsNow(); len(got) != 0 {
			t.Fatalf("tags %v after a newer read without them", got)
		}
	})
}
