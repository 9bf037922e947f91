package leads

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/sql/sqltest"
)

// sentMessages records app messages instead of sending them.
type sentMessages struct {
	mu   sync.Mutex
	fail bool
	msgs []string // "staff: text"
}

func (m *sentMessages) SendAppMessage(_ context.Context, _, staff, text string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("wecom is down")
	}
	m.msgs = append(m.msgs, staff+": "+text)
	return nil
}

func (m *sentMessages) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.msgs
	m.msgs = nil
	return out
}

// staffOfUser links users 1..99 to WeCom staff "u<id>"; others have none.
func staffOfUser(_ context.Context, _ string, user int64) (string, error) {
	if user < 100 {
		return fmt.Sprint("u", user), nil
	}
	return "", nil
}

func isAnyUser(int64) (bool, error) { return true, nil }

func TestHandoff_QualifiedLeadsGoToTheRulesRepWhoAcceptsOrRejects(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		sent := &sentMessages{}
		s.SetNotifier(sent, staffOfUser)
		s.PublicURL = "https://scrm.example.com/"
		ctx := context.Background()
		ids := seed(t, s, 3)
		for _, id := range ids {
			if _, err := s.Claim(ctx, "ww1", id, 7); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChangeStage(ctx, "ww1", id, 7, false, StageMQL, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateAssignmentRule(ctx, AssignmentRule{CorpID: "ww1", Kind: RuleHandoff, Name: "direct leads",
			Condition: `source == "direct" && budget != ""`, Users: []int64{21, 22}}, isAnyUser); err != nil {
			t.Fatal(err)
		}
		bant := QualifyIn{Qualification: Qualification{Budget: "200k", Authority: "CTO", Need: "SCRM", Timeline: "Q2"}, Note: "ready for a demo"}
		// BANT is required, field by field; only the owner qualifies.
		var ae *apperr.Error
		if _, err := s.Qualify(ctx, "ww1", ids[0], 7, false, QualifyIn{Qualification: Qualification{Budget: "x"}}, isAnyUser); !errors.As(err, &ae) ||
			ae.Fields["authority"] == "" || ae.Fields["need"] == "" || ae.Fields["timeline"] == "" || ae.Fields["budget"] != "" {
			t.Fatalf("missing BANT: %v", err)
		}
		if _, err := s.Qualify(ctx, "ww1", ids[0], 8, false, bant, isAnyUser); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("qualified by another SDR: %v", err)
		}
		h1, err := s.Qualify(ctx, "ww1", ids[0], 7, false, bant, isAnyUser)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := s.Qualify(ctx, "ww1", ids[1], 7, false, bant, isAnyUser)
		if err != nil {
			t.Fatal(err)
		}
		if h1.ToUserID != 21 || h2.ToUserID != 22 || h1.Status != HandoffPending {
			t.Fatalf("reps %d, %d (rotation)", h1.ToUserID, h2.ToUserID)
		}
		if l, _ := s.read(ctx, "ww1", ids[0]); l.Stage != StageSQL || l.Budget != "200k" || l.OwnerUserID != 7 {
			t.Fatalf("qualified lead: %+v", l)
		}
		// The reps are told once the notices go out.
		if n, err := s.SendNotices(ctx); err != nil || n != 2 {
			t.Fatalf("sent %d (%v)", n, err)
		}
		msgs := sent.take()
		if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "u21: ") || !strings.Contains(msgs[0], fmt.Sprintf("https://scrm.example.com/leads/%d", ids[0])) {
			t.Fatalf("messages %q", msgs)
		}
		// Only the rep answers; rejecting needs a reason.
		if _, err := s.Accept(ctx, "ww1", h1.ID, 22); !errors.Is(err, ErrNotYourHandoff) {
			t.Fatalf("accepted by another rep: %v", err)
		}
		if _, err := s.Accept(ctx, "ww1", h1.ID, 21); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Reject(ctx, "ww1", h1.ID, 21, "changed my mind"); !errors.Is(err, ErrHandoffAnswered) {
			t.Fatalf("answered twice: %v", err)
		}
		if l, _ := s.read(ctx, "ww1", ids[0]); l.OwnerUserID != 21 || l.Stage != StageSQL {
			t.Fatalf("accepted lead: %+v", l)
		}
		if _, err := s.Reject(ctx, "ww1", h2.ID, 22, " "); !errors.As(err, &ae) || ae.Fields["reason"] == "" {
			t.Fatalf("reject without a reason: %v", err)
		}
		if _, err := s.Reject(ctx, "ww1", h2.ID, 22, "no budget this year"); err != nil {
			t.Fatal(err)
		}
		l, h, _ := s.Get(ctx, "ww1", ids[1], all)
		if l.OwnerUserID != 7 || l.Stage != StageSAL || h[len(h)-1].Reason != "rejected by the sales rep: no budget this year" {
			t.Fatalf("rejected lead: %+v %+v", l, h[len(h)-1])
		}
		// The SDR hears of both answers in one digest.
		if n, _ := s.SendNotices(ctx); n != 1 {
			t.Fatalf("digest messages %d", n)
		}
		if msgs := sent.take(); len(msgs) != 1 || !strings.Contains(msgs[0], "2 new notices") || !strings.Contains(msgs[0], "no budget this year") {
			t.Fatalf("digest %q", msgs)
		}
		// A rep sees the leads handed to them, not the others.
		rep := Viewer{UserID: 22, Handoffs: true}
		if _, _, err := s.Get(ctx, "ww1", ids[1], rep); err != nil {
			t.Fatalf("the rejected lead is still visible to its rep: %v", err)
		}
		if _, _, err := s.Get(ctx, "ww1", ids[2], rep); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a lead never handed to the rep: %v", err)
		}
		// The SDR may name the rep instead of the rules.
		s2 := QualifyIn{Qualification: bant.Qualification, ToUserID: 30}
		if h, err := s.Qualify(ctx, "ww1", ids[2], 7, false, s2, isAnyUser); err != nil || h.ToUserID != 30 {
			t.Fatalf("named rep: %+v %v", h, err)
		}
		// Moved back by hand before the rep answers: the handoff is withdrawn.
		if _, err := s.ChangeStage(ctx, "ww1", ids[2], 7, false, StageSAL, "customer asked to wait"); err != nil {
			t.Fatal(err)
		}
		list, _ := s.Handoffs(ctx, HandoffFilter{CorpID: "ww1", ToUser: 30})
		if len(list) != 1 || list[0].Status != HandoffWithdrawn {
			t.Fatalf("handoffs to 30: %+v", list)
		}
	})
}

func TestNotices_ManyAtOnceAreOneDigestWithinWeComsLengthAndFailuresRetry(t *testing.T) {
	sqltest.Each(t, func(t *testing.T, db *qsql.DB) {
		s := New(db, nil, nil, quiet)
		sent := &sentMessages{fail: true}
		s.SetNotifier(sent, staffOfUser)
		ctx := context.Background()
		var ns []notice
		for i := range 60 {
			ns = append(ns, notice{"ww1", 5, fmt.Sprintf("线索 %d 的 SLA 即将到期 / lead %d: first touch due soon", i, i)})
		}
		ns = append(ns, notice{"ww1", 500, "nobody in WeCom"})
		if err := db.WriteTx(ctx, func(tx *qsql.Tx) error { return s.store.addNotices(ctx, tx, ns, 1) }); err != nil {
			t.Fatal(err)
		}
		if n, err := s.SendNotices(ctx); err != nil || n != 0 {
			t.Fatalf("sent %d while WeCom is down (%v)", n, err)
		}
		// Claimed notices wait for their claim to expire before a retry.
		sent.mu.Lock()
		sent.fail = false
		sent.mu.Unlock()
		if n, _ := s.SendNotices(ctx); n != 0 {
			t.Fatal("retried inside the claim")
		}
		if _, err := db.ExecContext(ctx, `UPDATE lead_notices SET claimed_until = 0`); err != nil {
			t.Fatal(err)
		}
		if n, err := s.SendNotices(ctx); err != nil || n != 1 {
			t.Fatalf("sent %d (%v), want one digest", n, err)
		}
		msgs := sent.take()
		if len(msgs) != 1 || len(msgs[0]) > 2048+len("u5: ") || !strings.Contains(msgs[0], "60 new notices") || !strings.Contains(msgs[0], "more") {
			t.Fatalf("digest of %d bytes: %q", len(msgs[0]), msgs)
		}
		var unsent int
		if err := db.GetContext(ctx, &unsent, `SELECT COUNT(*) FROM lead_notices WHERE sent_at IS NULL`); err != nil || unsent != 0 {
			t.Fatalf("%d unsent (%v)", unsent, err)
		}
		if n, _ := s.SendNotices(ctx); n != 0 {
			t.Fatal("sent twice")
		}
	})
}
