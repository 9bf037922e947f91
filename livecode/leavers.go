package livecode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
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
	if err := s.store.update(ctx, c, c.Version); errors.Is(err, ErrVersion) {
		// Edited meanwhile (by a person, or by another pass that removed the
		// leavers first): not a failure; the next pass looks again.
		s.log.Debug("live code changed while removing leavers; next pass looks again", "corp", corp, "code", c.ID)
		return nil
	} else if err != nil {
		return err
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
// once per leaver, recording each one's hand-over (livecode_transfers).
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
	// A pass that failed part-way is done again from where it stopped.
	done, err := s.store.transferredItems(ctx, c.CorpID, user)
	if err != nil {
		undo()
		return err
	}
	customers = slices.DeleteFunc(customers, func(ext string) bool { return done[ext] })
	now := qsql.Millis(s.now())
	var failed []transfer
	// WeCom takes at most 100 customers a call; errcode 0 only starts its
	// 24-hour hand-over, whose outcome CheckHandovers polls.
	for start := 0; start < len(customers); start += maxTransferBatch {
		batch := customers[start:min(start+maxTransferBatch, len(customers))]
		res, err := s.wc.TransferResignedCustomers(ctx, c.CorpID, user, to, batch)
		if err != nil {
			undo()
			return fmt.Errorf("transfer customers of %s: %w", user, err)
		}
		ts := make([]transfer, 0, len(res))
		for _, r := range res {
			t := transfer{CorpID: c.CorpID, Handover: user, Item: r.ExternalUserID, Kind: "customer", Takeover: to, CodeID: c.ID, Status: "waiting", ErrCode: r.ErrCode}
			if r.ErrCode != 0 {
				t.Status = "failed"
				failed = append(failed, t)
			}
			ts = append(ts, t)
		}
		if err := s.store.recordTransfers(ctx, ts, now); err != nil {
			undo()
			return err
		}
	}
	chats, err := s.dir.GroupsOwnedBy(ctx, c.CorpID, user)
	if err != nil {
		undo()
		return err
	}
	chats = slices.DeleteFunc(chats, func(chat string) bool { return done[chat] })
	sentGroups, groupFailures, err := s.transferGroups(ctx, c, user, to, chats)
	if err != nil {
		return err
	}
	failed = append(failed, groupFailures...)
	s.log.Info("customers and groups of a staff member who left handed over", "corp", c.CorpID, "from", user, "to", to,
		"customers", len(customers), "groups", sentGroups, "groups_queued", len(chats)-sentGroups, "refused_at_once", len(failed))
	s.reportUnassigned(ctx, c, user, failed)
	return nil
}

// WeCom's hand-over limits: customers or groups per call, and groups of
// one leaver a new owner may take a day.
const (
	maxTransferBatch   = 100
	maxGroupsPerDay    = 300
	groupQuotaInterval = 24 * time.Hour
)

// transferGroups hands a leaver's groups to their successor, at most 300 in
// any 24 hours (a rolling day, so WeCom's calendar day is never exceeded);
// the rest are recorded as queued and sent by CheckHandovers on later days.
// It returns how many were sent and those WeCom refused.
func (s *Service) transferGroups(ctx context.Context, c *Code, user, to string, chats []string) (int, []transfer, error) {
	if len(chats) == 0 {
		return 0, nil, nil
	}
	now := s.now()
	sent, err := s.store.groupsHandedSince(ctx, c.CorpID, user, to, qsql.Millis(now.Add(-groupQuotaInterval)))
	if err != nil {
		return 0, nil, err
	}
	quota := max(maxGroupsPerDay-sent, 0)
	send, wait := chats[:min(quota, len(chats))], chats[min(quota, len(chats)):]
	var failed []transfer
	for start := 0; start < len(send); start += maxTransferBatch {
		batch := send[start:min(start+maxTransferBatch, len(send))]
		res, err := s.wc.TransferGroupChats(ctx, c.CorpID, batch, to)
		if err != nil {
			return start, failed, fmt.Errorf("transfer groups of %s: %w", user, err)
		}
		refused := map[string]int64{}
		for _, r := range res {
			refused[r.ChatID] = r.ErrCode
		}
		ts := make([]transfer, 0, len(batch))
		for _, chat := range batch {
			t := transfer{CorpID: c.CorpID, Handover: user, Item: chat, Kind: "group", Takeover: to, CodeID: c.ID, Status: "done"}
			if code, ok := refused[chat]; ok {
				t.Status, t.ErrCode = "failed", code
				failed = append(failed, t)
			}
			ts = append(ts, t)
		}
		if err := s.store.recordTransfers(ctx, ts, qsql.Millis(s.now())); err != nil {
			return start, failed, err
		}
	}
	queued := make([]transfer, len(wait))
	for i, chat := range wait {
		queued[i] = transfer{CorpID: c.CorpID, Handover: user, Item: chat, Kind: "group", Takeover: to, CodeID: c.ID, Status: "queued"}
	}
	return len(send), failed, s.store.recordTransfers(ctx, queued, qsql.Millis(now))
}

// CheckHandovers polls WeCom for the outcome of hand-overs still waiting
// (resigned/transfer_result) and tells each code's owner which customers
// could not be handed over (refused, or the successor is full): none is left
// unassigned without someone knowing. Run by cron; a failed pass is simply
// done again.
func (s *Service) CheckHandovers(ctx context.Context) error {
	pairs, err := s.store.waitingHandovers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pairs {
		if err := s.checkHandover(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("hand-over of %s to %s: %w", p.Handover, p.Takeover, err))
		}
	}
	// Groups over a day's quota wait for the next day's.
	queued, err := s.store.queuedGroups(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, p := range queued {
		if err := s.sendQueuedGroups(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("queued groups of %s to %s: %w", p.Handover, p.Takeover, err))
		}
	}
	return errors.Join(errs...)
}

// sendQueuedGroups sends what today's quota allows of a leaver's queued groups.
func (s *Service) sendQueuedGroups(ctx context.Context, p transfer) error {
	chats, err := s.store.queuedGroupsOf(ctx, p.CorpID, p.Handover, p.Takeover)
	if err != nil || len(chats) == 0 {
		return err
	}
	c, err := s.store.get(ctx, p.CorpID, p.CodeID)
	if err != nil {
		return err
	}
	_, failed, err := s.transferGroups(ctx, c, p.Handover, p.Takeover, chats)
	s.reportUnassigned(ctx, c, p.Handover, failed)
	return err
}

func (s *Service) checkHandover(ctx context.Context, p transfer) error {
	now := qsql.Millis(s.now())
	var lost []transfer
	cursor := ""
	for {
		page, next, err := s.wc.ResignedTransferResult(ctx, p.CorpID, p.Handover, p.Takeover, cursor)
		if err != nil {
			return err
		}
		for _, r := range page {
			status := map[int]string{wecom.TransferDone: "done", wecom.TransferRefused: "refused", wecom.TransferFull: "full"}[r.Status]
			if status == "" {
				continue // still waiting
			}
			changed, err := s.store.settleTransfer(ctx, p.CorpID, p.Handover, r.ExternalUserID, status, now)
			if err != nil {
				return err
			}
			if changed && status != "done" {
				lost = append(lost, transfer{CorpID: p.CorpID, Handover: p.Handover, Item: r.ExternalUserID, Kind: "customer", Takeover: p.Takeover, Status: status})
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(lost) == 0 {
		return nil
	}
	c, err := s.store.get(ctx, p.CorpID, p.CodeID)
	if err != nil {
		return err
	}
	s.reportUnassigned(ctx, c, p.Handover, lost)
	return nil
}

// reportUnassigned tells the code's owner, by name, the customers and groups
// of a leaver that could not be handed over.
func (s *Service) reportUnassigned(ctx context.Context, c *Code, user string, ts []transfer) {
	if len(ts) == 0 {
		return
	}
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		name := t.Item
		if t.Kind == "customer" {
			if n, err := s.dir.ContactName(ctx, c.CorpID, t.Item); err == nil && n != "" {
				name = n
			}
		}
		names = append(names, fmt.Sprintf("%s (%s)", name, t.Status))
	}
	s.log.Warn("customers or groups of a staff member who left could not be handed over", "corp", c.CorpID, "code", c.ID, "staff", user, "items", names)
	s.tellOwner(ctx, c, fmt.Sprintf("离职员工 %s 的以下客户/群未能交接，请手动处理 / Not handed over from %s, please follow up: %s",
		user, user, strings.Join(names, ", ")))
}
