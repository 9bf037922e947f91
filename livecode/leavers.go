package livecode

import (
	"context"
	"errors"
	"fmt"
	"strings"

	qsql "github.com/qiflow/qiflow/sql"
)

// HandleLeavers finds code staff who left the company (gone from the
// directory after a complete sync), removes them from every code, tells each
// code's owner, and hands their customers and groups to the code's successor
// through WeCom's resigned-transfer APIs. It is level-triggered (run by the
// leavers cron job), so a failed pass is simply done again.
func (s *Service) HandleLeavers(ctx context.Context) error {
	codes, err := s.store.withStaff(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range codes {
		if err := s.handleCodeLeavers(ctx, ref.CorpID, ref.ID); err != nil {
			errs = append(errs, fmt.Errorf("code %d: %w", ref.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) handleCodeLeavers(ctx context.Context, corp string, id int64) error {
	c, err := s.store.get(ctx, corp, id)
	if err != nil {
		return err
	}
	ids := make([]string, len(c.Staff))
	for i, st := range c.Staff {
		ids[i] = st.UserID
	}
	live, err := s.dir.StaffNames(ctx, corp, ids)
	if err != nil {
		return err
	}
	var gone []string
	var keep []CodeStaff
	var goneWays []string
	for _, st := range c.Staff {
		if _, ok := live[st.UserID]; ok {
			keep = append(keep, st)
			continue
		}
		gone = append(gone, st.UserID)
		if st.ConfigID != "" {
			goneWays = append(goneWays, st.ConfigID)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	for _, u := range gone {
		if err := s.handOver(ctx, c, u); err != nil {
			return err
		}
	}
	c.Staff = keep
	nonBackup := 0
	for _, st := range keep {
		if !st.Backup {
			nonBackup++
		}
	}
	if nonBackup == 0 && c.Status == StatusActive {
		// Nobody is left to hand customers to: stop the code rather than send them nowhere.
		c.Status = StatusPaused
	}
	c.UpdatedAt = qsql.Millis(s.now())
	if err := s.store.update(ctx, c, c.Version); err != nil {
		return err // ErrVersion: edited meanwhile; the next pass looks again
	}
	s.deleteWays(ctx, corp, goneWays)
	msg := fmt.Sprintf("活码「%s」已移除离职员工 %s。Staff who left were removed from code %q: %s.", c.Name, strings.Join(gone, ", "), c.Name, strings.Join(gone, ", "))
	if c.Status == StatusPaused && nonBackup == 0 {
		msg += " 活码已暂停：没有可用员工。The code is paused: nobody is left on it."
	}
	s.log.Warn("staff who left removed from a live code", "corp", corp, "code", c.ID, "staff", gone, "status", c.Status)
	s.tellOwner(ctx, c, msg)
	s.wakeReconciler() // the update made the code due
	return nil
}

// handOver transfers a leaver's customers and groups to the code's successor,
// once per leaver. Per-customer refusals arrive later as transfer_fail events
// and are recorded on the follow relation by the directory.
func (s *Service) handOver(ctx context.Context, c *Code, user string) error {
	to := c.Settings.Successor
	if to == "" {
		// The code names none: the successor of the leaver's department, if configured.
		depts, err := s.dir.StaffDepartments(ctx, c.CorpID, user)
		if err != nil {
			return err
		}
		for _, d := range depts {
			if u := s.DepartmentSuccessors[c.CorpID][d]; u != "" {
				to = u
				break
			}
		}
	}
	if to == "" || to == user {
		s.log.Warn("a staff member left but the code names no successor; their customers stay with WeCom's unassigned list", "corp", c.CorpID, "code", c.ID, "staff", user)
		return nil
	}
	// The hand-over is recorded first, so two instances never both start it.
	first, err := s.store.startHandover(ctx, c.CorpID, user, to, qsql.Millis(s.now()))
	if err != nil || !first {
		return err
	}
	undo := func() { // retried on the next pass
		if err := s.store.undoHandover(context.WithoutCancel(ctx), c.CorpID, user); err != nil {
			s.log.Error("forgetting a failed hand-over", "corp", c.CorpID, "staff", user, "err", err)
		}
	}
	customers, err := s.dir.FollowersOf(ctx, c.CorpID, user)
	if err != nil {
		undo()
		return err
	}
	failed := 0
	for start := 0; start < len(customers); start += 100 {
		batch := customers[start:min(start+100, len(customers))]
		res, err := s.wc.TransferResignedCustomers(ctx, c.CorpID, user, to, batch)
		if err != nil {
			undo()
			return fmt.Errorf("transfer customers of %s: %w", user, err)
		}
		for _, r := range res {
			if r.ErrCode != 0 {
				failed++
			}
		}
	}
	chats, err := s.dir.GroupsOwnedBy(ctx, c.CorpID, user)
	if err != nil {
		return err
	}
	if len(chats) > 0 {
		if _, err := s.wc.TransferGroupChats(ctx, c.CorpID, chats, to); err != nil {
			s.log.Error("group handover failed", "corp", c.CorpID, "staff", user, "err", err)
		}
	}
	s.log.Info("customers of a staff member who left handed over", "corp", c.CorpID, "from", user, "to", to,
		"customers", len(customers), "refused_at_once", failed, "groups", len(chats))
	return nil
}
