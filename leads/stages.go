package leads

import (
	"context"
	"slices"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
)

// HistoryStage is a change of stage.
const HistoryStage = "stage"

// moves lists the stages a lead may move to from each stage by hand.
// Forward moves follow the funnel; nurture (back to the pool) and
// disqualified are open from every working stage; a nurtured lead may start
// again. Opportunity and customer belong to the sales funnel.
var moves = map[string][]string{
	StageLead:         {StageMQL, StageSAL, StageNurture, StageDisqualified},
	StageMQL:          {StageSAL, StageNurture, StageDisqualified},
	StageSAL:          {StageNurture, StageDisqualified}, // to sql by Qualify, with BANT and a handoff
	StageSQL:          {StageSAL, StageNurture, StageDisqualified},
	StageNurture:      {StageLead, StageMQL, StageDisqualified},
	StageDisqualified: {StageNurture},
}

// needsReason: moves back, and out of the funnel, say why.
func needsReason(from, to string) bool {
	return to == StageNurture || to == StageDisqualified || (from == StageSQL && to == StageSAL)
}

// ChangeStage moves a lead to another stage, with a reason where the move
// needs one. Its owner moves it (manager: anyone with the right to manage
// pools may move any lead). Moving to nurture or disqualified gives the lead
// back to its pool. The move is a conditional update on the stage and owner
// read, so a concurrent claim, release or move makes it fail with
// version_conflict instead of overwriting.
func (s *Service) ChangeStage(ctx context.Context, corp string, leadID, actor int64, manager bool, to, reason string) (*Lead, error) {
	reason = strings.TrimSpace(reason)
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if !manager && l.OwnerUserID != actor {
			return ErrNotOwner
		}
		if to == StageSQL && (l.Stage == StageMQL || l.Stage == StageSAL) {
			return apperr.Field("stage", "a lead becomes an SQL by qualifying it (POST /leads/{id}/qualify with BANT and a note)")
		}
		if !slices.Contains(moves[l.Stage], to) {
			return apperr.Field("stage", "a lead in "+l.Stage+" can move to "+strings.Join(moves[l.Stage], ", "))
		}
		if needsReason(l.Stage, to) && reason == "" {
			return apperr.Field("reason", "is required to move a lead to "+to)
		}
		owner := l.OwnerUserID
		if to == StageNurture || to == StageDisqualified {
			owner = 0
		}
		ok, err := s.store.moveStage(ctx, tx, corp, leadID, l.Version, to, owner, ms)
		if err != nil {
			return err
		}
		if !ok {
			return ErrChanged
		}
		if l.OwnerUserID != 0 && owner != l.OwnerUserID {
			if err := s.store.uncountOpen(ctx, tx, corp, l.PoolID, l.OwnerUserID); err != nil {
				return err
			}
		}
		switch {
		case owner == 0 && l.OwnerUserID != 0:
			if err := s.store.closeSLAs(ctx, tx, leadID, SLAClosed, ms); err != nil {
				return err
			}
		case to == StageMQL && owner != 0:
			if err := s.startSLA(ctx, tx, corp, l, SLAFirstTouch, owner, ms); err != nil {
				return err
			}
		}
		if l.Stage == StageSQL {
			// Moved back before sales answered: the handoff is withdrawn.
			if err := s.store.withdrawHandoffs(ctx, tx, corp, leadID, ms); err != nil {
				return err
			}
		}
		return s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryStage, From: l.Stage, To: to, Reason: reason})
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}

// Statuses within a stage: where the work stands.
const (
	StatusNew         = "new"
	StatusAttempting  = "attempting"
	StatusConnected   = "connected"
	StatusUnqualified = "unqualified" // with a reason
)

// HistoryStatus is a change of status.
const HistoryStatus = "status"

// SetStatus sets the status of one's lead (a manager: any lead); a stage
// change starts it at new again. Unqualified needs a reason.
func (s *Service) SetStatus(ctx context.Context, corp string, leadID, actor int64, manager bool, status, reason string) (*Lead, error) {
	reason = strings.TrimSpace(reason)
	if !slices.Contains([]string{StatusNew, StatusAttempting, StatusConnected, StatusUnqualified}, status) {
		return nil, apperr.Field("status", "is new, attempting, connected or unqualified")
	}
	if status == StatusUnqualified && reason == "" {
		return nil, apperr.Field("reason", "is required: say why the lead is unqualified")
	}
	if len([]rune(reason)) > 255 {
		return nil, apperr.Field("reason", "is at most 255 characters")
	}
	ms := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		l, err := s.store.lead(ctx, tx, corp, leadID)
		if err != nil {
			return err
		}
		if !manager && l.OwnerUserID != actor {
			return ErrNotOwner
		}
		if ok, err := s.store.setStatus(ctx, tx, corp, leadID, l.Version, status, reason, ms); err != nil || !ok {
			return cmpErr(err, ErrChanged)
		}
		return s.store.addHistory(ctx, tx, corp, leadID, HistoryEntry{At: ms, ActorUserID: actor, Kind: HistoryStatus, From: l.Status, To: status, Reason: reason})
	})
	if err != nil {
		return nil, err
	}
	return s.read(ctx, corp, leadID)
}
