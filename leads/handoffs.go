package leads

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// Handoff to sales: the SDR who owns a lead qualifies it to SQL with the
// BANT fields and a note; a rule of kind "handoff" (the same rules as
// assignment, conditions over the lead) picks the sales rep, unless the SDR
// names one. The rep is told by a WeCom app message and accepts (the lead
// is theirs) or rejects with a reason (back to the SDR at sal). Every step
// is one transaction of conditional updates and is in the history.

// Kinds of assignment rules.
const (
	RuleMQL     = "mql"     // who gets a new MQL
	RuleHandoff = "handoff" // which sales rep gets an SQL
)

// Handoff states.
const (
	HandoffPending  = "pending"
	HandoffAccepted = "accepted"
	HandoffRejected = "rejected"
	// HandoffWithdrawn: the lead was moved out of sql before sales answered.
	HandoffWithdrawn = "withdrawn"
)

// HistoryHandoff is a handoff made or answered.
const HistoryHandoff = "handoff"

// Errors of handoffs.
var (
	ErrHandoffNotFound = apperr.NotFound("handoff not found")
	ErrHandoffAnswered = apperr.Conflict("handoff_answered", "this handoff was answered already")
	ErrNotYourHandoff  = apperr.Conflict("not_your_handoff", "this handoff is to another sales rep")
)

// Handoff is an SQL handed to a sales rep.
type Handoff struct {
	ID         int64  `db:"id" json:"id"`
	CorpID     string `db:"corp_id" json:"-"`
	LeadID     int64  `db:"lead_id" json:"lead_id"`
	Name       string `db:"name" json:"name"`
	FromUserID int64  `db:"from_user_id" json:"from_user_id"`
	ToUserID   int64  `db:"to_user_id" json:"to_user_id"`
	Note       string `db:"note" json:"note"`
	Status     string `db:"status" json:"status"`
	Reason     string `db:"reason" json:"reason,omitempty"`
	CreatedAt  int64  `db:"created_at" json:"created_at"`
	AnsweredAt *int64 `db:"answered_at" json:"answered_at,omitempty"`
}

// QualifyIn is an SDR's qualification of a lead.
type QualifyIn struct {
	Qualification
	Note string `json:"note"`
	// ToUserID names the sales rep; 0 lets the handoff rules pick.
	ToUserID int64 `json:"to_user_id"`
}

// Qualify moves the actor's lead (any lead, for a manager) from mql or sal
// to sql and hands it to a sales rep. isUser says whether a user belongs to
// the corp (for a rep named in the call).
func (s *Service) Qualify(ctx context.Context, corp string, leadID, actor int64, manager bool, in QualifyIn, isUser func(int64) (bool, error)) (*Handoff, error) {
	f := apperr.Fields{}
	for _, q := range []struct{ field, value string }{{"budget", in.Budget}, {"authority", in.Authority}, {"need", in.Need}, {"timeline", in.Timeline}} {
		if strings.TrimSpace(q.value) == "" {
			f.Add(q.field, "is required to qualify a lead (BANT)")
		}
	}
	if len([]rune(in.Note)) > 1000 {
		f.Add("note", "is at most 1000 characters")
	}
	for _, q := range []struct {
		field, value string
		max          int
	}{{"budget", in.Budget, 64}, {"authority", in.Authority, 64}, {"need", in.Need, 255}, {"timeline", in.Timeline, 64}} {
		if len([]rune(q.value)) > q.max {
			f.Add(q.field, fmt.Sprintf("is at most %d characters", q.max))
		}
	}
	if in.ToUserID != 0 {
		ok, err := isUser(in.ToUserID)
		if err != nil {
			return nil, err
		}
		if !ok {
			f.Add("to_user_id", "is not a user of this corp")
		}
	}
	if len(f) > 0 {
		return nil, f.Err()
	}
	ms := qsql.Millis(s.now())
	var h *Handoff
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if l.MergedInto != 0 {
			return ErrMerged
		}
		if !manager && l.OwnerUserID != actor {
			return ErrNotOwner
		}
		if l.Stage != StageMQL && l.Stage != StageSAL {
			return apperr.Field("stage", "a lead in "+l.Stage+" cannot be qualified; it must be an MQL or SAL")
		}
		if l.OwnerUserID == 0 {
			return apperr.Field("owner", "an unowned lead cannot be handed over; claim it first")
		}
		rep, rule := in.ToUserID, "named by the SDR"
		if rep == 0 {
			if rep, rule, err = s.pickRep(ctx, tx, corp, l, in.Qualification); err != nil {
				return err
			}
			if rep == 0 {
				return apperr.Field("to_user_id", "no handoff rule matches this lead: name the sales rep")
			}
		}
		if ok, err := s.store.moveStage(ctx, tx, corp, leadID, l.Version, StageSQL, l.OwnerUserID, ms); err != nil || !ok {
			return cmpErr(err, ErrChanged)
		}
		if err := s.store.setQualification(ctx, tx, corp, leadID, in.Qualification, ms); err != nil {
			return err
		}
		h = &Handoff{CorpID: corp, LeadID: leadID, Name: l.Name, FromUserID: l.OwnerUserID, ToUserID: rep, Note: strings.TrimSpace(in.Note), Status: HandoffPending, CreatedAt: ms}
		if h.ID, err = s.store.createHandoff(ctx, tx, h); err != nil {
			return err
		}
		if err := s.startSLA(ctx, tx, corp, l, SLAHandoff, rep, ms); err != nil {
			return err
		}
		if err := s.store.addHistories(ctx, tx, []historyRow{
			{corp, leadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryStage, From: l.Stage, To: StageSQL, Reason: "qualified: " + h.Note}},
			{corp, leadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryHandoff, To: itoa(rep), Reason: fmt.Sprintf("handed to sales rep %d (%s)", rep, rule)}},
		}); err != nil {
			return err
		}
		return s.store.addNotices(ctx, tx, []notice{{corp, rep, fmt.Sprintf("新的 SQL 线索「%s」待你接收 / A new SQL, %s, is handed to you: %s", displayName(l), displayName(l), s.leadLink(leadID))}}, ms)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Accept makes the rep the lead's owner.
func (s *Service) Accept(ctx context.Context, corp string, id, actor int64) (*Handoff, error) {
	return s.answer(ctx, corp, id, actor, true, "")
}

// Reject gives the lead back to its SDR at sal, with the rep's reason.
func (s *Service) Reject(ctx context.Context, corp string, id, actor int64, reason string) (*Handoff, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, apperr.Field("reason", "say why the lead is not ready for sales")
	}
	return s.answer(ctx, corp, id, actor, false, strings.TrimSpace(reason))
}

func (s *Service) answer(ctx context.Context, corp string, id, actor int64, accept bool, reason string) (*Handoff, error) {
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		h, err := s.store.handoff(ctx, tx, corp, id)
		if err != nil {
			return err
		}
		if h.ToUserID != actor {
			return ErrNotYourHandoff
		}
		status := HandoffRejected
		if accept {
			status = HandoffAccepted
		}
		if ok, err := s.store.answerHandoff(ctx, tx, corp, id, status, reason, ms); err != nil || !ok {
			return cmpErr(err, ErrHandoffAnswered)
		}
		if err := s.store.meetSLAs(ctx, tx, h.LeadID, actor, SLAHandoff, ms); err != nil {
			return err
		}
		l, err := s.store.lead(ctx, tx, corp, h.LeadID)
		if err != nil {
			return err
		}
		stage, owner, text := StageSQL, h.ToUserID, fmt.Sprintf("销售已接收「%s」/ Sales accepted %s: %s", displayName(l), displayName(l), s.leadLink(l.ID))
		if !accept {
			stage, owner, text = StageSAL, l.OwnerUserID, fmt.Sprintf("销售退回「%s」：%s / Sales rejected %s: %s. %s", displayName(l), reason, displayName(l), reason, s.leadLink(l.ID))
		}
		if ok, err := s.store.moveStage(ctx, tx, corp, l.ID, l.Version, stage, owner, ms); err != nil || !ok {
			return cmpErr(err, ErrChanged)
		}
		if accept && l.OwnerUserID != 0 {
			// The SDR no longer holds it: their open count is free again.
			if err := s.store.uncountOpen(ctx, tx, corp, l.PoolID, l.OwnerUserID); err != nil {
				return err
			}
		}
		why := "accepted by the sales rep"
		if !accept {
			why = "rejected by the sales rep: " + reason
		}
		hs := []historyRow{{corp, l.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryHandoff, From: itoa(h.ToUserID), To: status, Reason: why}}}
		if !accept {
			hs = append(hs, historyRow{corp, l.ID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryStage, From: StageSQL, To: StageSAL, Reason: why}})
		}
		if err := s.store.addHistories(ctx, tx, hs); err != nil {
			return err
		}
		return s.store.addNotices(ctx, tx, []notice{{corp, h.FromUserID, text}}, ms)
	})
	if err != nil {
		return nil, err
	}
	return s.store.handoff(ctx, s.db, corp, id)
}

// HandoffFilter narrows a list of handoffs: to or from a user (0: any), by
// status ("" any).
type HandoffFilter struct {
	CorpID   string
	ToUser   int64
	FromUser int64
	Status   string
	Limit    int
}

// Handoffs lists handoffs, newest first.
func (s *Service) Handoffs(ctx context.Context, f HandoffFilter) ([]Handoff, error) {
	if f.Status != "" && !slices.Contains([]string{HandoffPending, HandoffAccepted, HandoffRejected, HandoffWithdrawn}, f.Status) {
		return nil, apperr.Field("status", "is pending, accepted, rejected or withdrawn")
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	return s.store.handoffs(ctx, f)
}

// pickRep picks the sales rep for an SQL by the first handoff rule whose
// condition holds (seeing the BANT fields being qualified with), in turn;
// 0 when none matches.
func (s *Service) pickRep(ctx context.Context, tx *qsql.Tx, corp string, l *Lead, q Qualification) (int64, string, error) {
	rules, err := s.store.assignmentRules(ctx, tx, corp, RuleHandoff)
	if err != nil || len(rules) == 0 {
		return 0, "", err
	}
	env, err := s.leadEnvOf(ctx, tx, corp, l)
	if err != nil {
		return 0, "", err
	}
	env.Budget, env.Authority, env.Need, env.Timeline = q.Budget, q.Authority, q.Need, q.Timeline
	for _, r := range rules {
		users := r.users()
		if !holds(r.Condition, env) || len(users) == 0 {
			continue
		}
		pick, err := s.store.nextPick(ctx, tx, r.ID)
		if err != nil {
			return 0, "", err
		}
		return users[pick%int64(len(users))], "rule " + r.Name, nil
	}
	return 0, "", nil
}

// leadLink is where a lead is in the console (relative when no public URL).
func (s *Service) leadLink(id int64) string {
	return fmt.Sprintf("%s/leads/%d", strings.TrimSuffix(s.PublicURL, "/"), id)
}

// displayName is a lead's person's name, or its number.
func displayName(l *Lead) string {
	if l.Name != "" {
		return l.Name
	}
	return fmt.Sprintf("#%d", l.ID)
}
