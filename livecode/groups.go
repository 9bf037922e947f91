package livecode

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// maxJoinWayChats is WeCom's limit of chats in one join way.
const maxJoinWayChats = 5

// manualReminderLead is how long before a manual group's QR expires its
// code's owner is reminded.
const manualReminderLead = 24 * time.Hour

// joinWay is the WeCom join way for a group code over chats.
func (s *Service) joinWay(c *Code, chats []string) wecom.JoinWay {
	auto := 0
	if c.Settings.AutoCreateRoom {
		auto = 1
	}
	return wecom.JoinWay{ConfigID: c.ConfigID, Scene: 2, Remark: truncate(c.Name, 30), AutoCreateRoom: auto,
		RoomBaseName: c.Settings.RoomBaseName, RoomBaseID: c.Settings.RoomBaseID, ChatIDList: chats, State: codeState(c.ID)}
}

// openGroupsLive lists, in the code's order, up to 5 groups still under
// their threshold, reading each group's member count from WeCom (the mirror
// may not have seen the event that made the reconcile due yet).
func (s *Service) openGroupsLive(ctx context.Context, c *Code) ([]string, error) {
	var open []string
	for i, g := range c.Settings.Groups {
		if len(open) == maxJoinWayChats {
			break
		}
		chat, err := s.wc.GetGroupChat(ctx, c.CorpID, g.ChatID)
		if wecom.IsCode(err, wecom.CodeInvalidChatID) {
			return nil, apperr.Field(fmt.Sprintf("settings.groups[%d].chat_id", i), "unknown customer group "+g.ChatID)
		}
		if err != nil {
			return nil, fmt.Errorf("read group %s: %w", g.ChatID, err)
		}
		if len(chat.MemberList) < g.Threshold {
			open = append(open, g.ChatID)
		}
	}
	return open, nil
}

// reconcileGroups keeps a group code's join way on the first groups not yet
// full: a group at its threshold is replaced by the next. When none is left,
// WeCom's auto-created rooms take over if allowed; otherwise the owner is
// alerted and the way is left as it is. The way is compared with what
// Qiflow last set, and read back from WeCom only on a drift check.
func (s *Service) reconcileGroups(ctx context.Context, c *Code, drift bool) error {
	desired, err := s.openGroupsLive(ctx, c)
	if err != nil {
		return err
	}
	if len(desired) == 0 {
		if !c.Settings.AutoCreateRoom && s.nextManual(ctx, c) == nil {
			s.alertFull(ctx, c)
		}
		return nil
	}
	have := c.WeComUsers
	if drift {
		w, err := s.wc.GetJoinWay(ctx, c.CorpID, c.ConfigID)
		if err != nil {
			return fmt.Errorf("get join way: %w", err)
		}
		have = w.ChatIDList
	}
	if !slices.Equal(have, desired) {
		if err := s.wc.UpdateJoinWay(ctx, c.CorpID, s.joinWay(c, desired)); err != nil {
			return fmt.Errorf("update join way: %w", err)
		}
		s.log.Info("join way groups updated", "corp", c.CorpID, "code", c.ID, "groups", desired)
	}
	if slices.Equal(c.WeComUsers, desired) {
		return nil
	}
	if err := s.store.setWeComUsers(ctx, c.ID, desired, qsql.Millis(s.now())); err != nil {
		return err
	}
	c.WeComUsers = desired
	return s.store.indexGroups(ctx, c)
}

// alertFull tells the code's owner, once a day, that every group is full.
func (s *Service) alertFull(ctx context.Context, c *Code) {
	first, err := s.once(ctx, c.CorpID, "full", fmt.Sprint(c.ID), s.calendar(c.CorpID).DayKey(s.now()))
	if err != nil || !first {
		return
	}
	s.log.Warn("every group of a group code is full; add a group or allow auto-created rooms", "corp", c.CorpID, "code", c.ID, "name", c.Name)
	s.tellOwner(ctx, c, fmt.Sprintf("群活码「%s」的群都已满，请添加新群。Every group of group code %q is full.", c.Name, c.Name))
}

// HandleChat is the group subscriber's work for one member change of a
// chat: for each group code using the chat, it counts joins through the
// code (by the members' join state) and leaves, once per event (the effect
// record and the counts are one transaction), and makes the code due for a
// reconcile, since the group may now be full.
func (s *Service) HandleChat(ctx context.Context, corp string, eventID int64, ev *wecom.ExternalChatEvent) error {
	ids, err := s.store.codesOfChat(ctx, corp, ev.ChatID)
	if err != nil || len(ids) == 0 {
		return err
	}
	var joined map[string]int // join state → members of this event
	if ev.UpdateDetail == wecom.ChatAddMember && ev.JoinScene == 3 {
		if joined, err = s.joinStates(ctx, corp, ev); err != nil {
			return err
		}
	}
	day := s.calendar(corp).DayKey(ev.Time())
	now := qsql.Millis(s.now())
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, id := range ids {
			first, err := s.store.applyOnce(ctx, tx, corp, effectKey("chat", fmt.Sprint(eventID), fmt.Sprint(id)), now)
			if err != nil {
				return err
			}
			if !first {
				continue
			}
			// The chat id stands in the stats' staff column.
			switch ev.UpdateDetail {
			case wecom.ChatAddMember:
				if n := joined[codeState(id)]; n > 0 {
					err = s.store.bumpStats(ctx, tx, corp, id, ev.ChatID, day, "adds", n)
				}
			case wecom.ChatDelMember:
				err = s.store.bumpStats(ctx, tx, corp, id, ev.ChatID, day, "lost_customer", len(ev.MemChangeList))
			}
			if err != nil {
				return err
			}
		}
		tx.AfterCommit(s.wakeReconciler)
		return s.store.triggerReconcile(ctx, tx, corp, ids, now)
	})
}

// joinStates counts the event's new members by their join state.
func (s *Service) joinStates(ctx context.Context, corp string, ev *wecom.ExternalChatEvent) (map[string]int, error) {
	chat, err := s.wc.GetGroupChat(ctx, corp, ev.ChatID)
	if wecom.IsCode(err, wecom.CodeInvalidChatID) {
		return nil, nil // dismissed since: nothing to attribute
	}
	if err != nil {
		return nil, fmt.Errorf("read group %s: %w", ev.ChatID, err)
	}
	out := map[string]int{}
	for _, m := range chat.MemberList {
		if slices.Contains(ev.MemChangeList, m.UserID) {
			out[m.State]++
		}
	}
	return out, nil
}

// manualKey is the statistics "staff" column of a manual group.
func manualKey(fileID int64) string { return fmt.Sprintf("manual:%d", fileID) }

// nextManual is the first manual group not expired and under its cap, or nil.
func (s *Service) nextManual(ctx context.Context, c *Code) *ManualGroup {
	now := s.now()
	for i, mg := range c.Settings.ManualGroups {
		if !now.Before(mg.ExpiresAt) {
			continue
		}
		if mg.Cap > 0 {
			shown, err := s.store.manualShown(ctx, c.CorpID, c.ID, manualKey(mg.FileID))
			if err != nil || shown >= mg.Cap {
				continue
			}
		}
		return &c.Settings.ManualGroups[i]
	}
	return nil
}

// GroupPage is what a group code's landing page shows now: the join way's
// QR while a managed group is open, else the next manual group's image.
type GroupPage struct {
	QR       string // image URL
	Manual   *ManualGroup
	Visitors string // the statistics key the visit counts under
}

// GroupLanding picks what /g/{slug} shows.
func (s *Service) GroupLanding(ctx context.Context, c *Code) (GroupPage, bool) {
	if c.ConfigID != "" {
		// The mirror's member counts (kept current by chat events) answer
		// without a WeCom call per visit.
		ids := make([]string, len(c.Settings.Groups))
		for i, g := range c.Settings.Groups {
			ids[i] = g.ChatID
		}
		counts, err := s.dir.GroupMemberCounts(ctx, c.CorpID, ids)
		open := c.Settings.AutoCreateRoom
		for _, g := range c.Settings.Groups {
			n, known := counts[g.ChatID]
			open = open || err != nil || !known || n < g.Threshold
		}
		if open {
			return GroupPage{QR: c.QRCode}, true
		}
	}
	if mg := s.nextManual(ctx, c); mg != nil {
		return GroupPage{QR: fmt.Sprintf("/g/%s/manual/%d", c.Slug, mg.FileID), Manual: mg, Visitors: manualKey(mg.FileID)}, true
	}
	if c.ConfigID != "" {
		return GroupPage{QR: c.QRCode}, true // full, but still the best we have
	}
	return GroupPage{}, false
}

// remindManual tells the owner, once, within a day of a manual group's QR expiring.
func (s *Service) remindManual(ctx context.Context, c *Code) {
	now := s.now()
	for _, mg := range c.Settings.ManualGroups {
		left := mg.ExpiresAt.Sub(now)
		if left <= 0 || left > manualReminderLead {
			continue
		}
		first, err := s.once(ctx, c.CorpID, "manual-expiry", fmt.Sprint(c.ID), fmt.Sprint(mg.FileID), mg.ExpiresAt.UTC().Format(time.RFC3339))
		if err != nil || !first {
			continue
		}
		s.log.Warn("a manual group QR expires within a day", "corp", c.CorpID, "code", c.ID, "group", mg.Name, "expires_at", mg.ExpiresAt)
		s.tellOwner(ctx, c, fmt.Sprintf("群活码「%s」的群「%s」二维码将于 %s 过期，请上传新的二维码。The QR of group %q expires at %s: upload a new one.",
			c.Name, mg.Name, mg.ExpiresAt.In(s.calendar(c.CorpID).Location()).Format("01-02 15:04"), mg.Name, mg.ExpiresAt.Format(time.RFC3339)))
	}
}

// ManualImage returns a manual group's QR image, when the code lists it.
func (s *Service) ManualImage(ctx context.Context, c *Code, fileID int64) ([]byte, error) {
	for _, mg := range c.Settings.ManualGroups {
		if mg.FileID == fileID && s.Media != nil {
			return s.Media.Data(ctx, c.CorpID, fileID)
		}
	}
	return nil, ErrNotFound
}
