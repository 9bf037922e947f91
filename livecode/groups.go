package livecode

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// SubscriberGroups follows customer-group changes for group codes.
const SubscriberGroups = "livecode.groups"

// maxJoinWayChats is WeCom's limit of chats in one join way.
const maxJoinWayChats = 5

// joinWay is the WeCom join way for a group code over chats.
func (s *Service) joinWay(c *Code, chats []string) wecom.JoinWay {
	auto := 0
	if c.Settings.AutoCreateRoom {
		auto = 1
	}
	return wecom.JoinWay{ConfigID: c.ConfigID, Scene: 2, Remark: truncate(c.Name, 30), AutoCreateRoom: auto,
		RoomBaseName: c.Settings.RoomBaseName, RoomBaseID: c.Settings.RoomBaseID, ChatIDList: chats, State: codeState(c.ID)}
}

// openGroups lists, in the code's order, up to 5 groups still under their
// threshold, reading each group's member count from WeCom.
func (s *Service) openGroups(ctx context.Context, c *Code) ([]string, error) {
	var open []string
	for i, g := range c.Settings.Groups {
		if len(open) == maxJoinWayChats {
			break
		}
		chat, err := s.wc.GetGroupChat(ctx, c.CorpID, g.ChatID)
		if wecom.IsCode(err, wecom.CodeInvalidChatID) {
			return nil, &ValidationError{Fields: map[string]string{fmt.Sprintf("settings.groups[%d].chat_id", i): "unknown customer group " + g.ChatID}}
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
// alerted and the way is left as it is.
func (s *Service) reconcileGroups(ctx context.Context, c *Code) error {
	desired, err := s.openGroups(ctx, c)
	if err != nil {
		return err
	}
	have, err := s.wc.GetJoinWay(ctx, c.CorpID, c.ConfigID)
	if err != nil {
		return fmt.Errorf("get join way: %w", err)
	}
	if len(desired) == 0 {
		if !c.Settings.AutoCreateRoom && s.nextManual(ctx, c) == nil {
			s.alertFull(ctx, c)
		}
		return nil
	}
	if slices.Equal(have.ChatIDList, desired) {
		return nil
	}
	if err := s.wc.UpdateJoinWay(ctx, c.CorpID, s.joinWay(c, desired)); err != nil {
		return fmt.Errorf("update join way: %w", err)
	}
	s.log.Info("join way groups updated", "corp", c.CorpID, "code", c.ID, "groups", desired)
	return s.store.setWeComUsers(ctx, c.ID, desired, qsql.Millis(s.now()))
}

// alertFull tells the code's owner, once a day, that every group is full.
func (s *Service) alertFull(ctx context.Context, c *Code) {
	day := s.calendar(c.CorpID).DayKey(s.now())
	first, err := s.kv.SetNX(ctx, s.kv.Key("lc", "full", c.CorpID, fmt.Sprint(c.ID), day), 1, dayKeyTTL).Result()
	if err != nil || !first {
		return
	}
	s.log.Warn("every group of a group code is full; add a group or allow auto-created rooms", "corp", c.CorpID, "code", c.ID, "name", c.Name)
	s.tellOwner(ctx, c, fmt.Sprintf("群活码「%s」的群都已满，请添加新群。Every group of group code %q is full.", c.Name, c.Name))
}

// subscribeGroups reconciles the group codes of a chat when its members
// change, and counts joins and leaves through a code (attributed by the
// member's join state).
func (s *Service) subscribeGroups(in *jobs.Inbox) {
	in.Subscribe(jobs.Subscriber{
		Name: SubscriberGroups,
		Match: func(ev wecom.Event) bool {
			e, ok := ev.(*wecom.ExternalChatEvent)
			return ok && (e.UpdateDetail == wecom.ChatAddMember || e.UpdateDetail == wecom.ChatDelMember)
		},
		Handle: func(ctx context.Context, d jobs.Delivery) error {
			return s.HandleChat(ctx, d.CorpID, d.Event.(*wecom.ExternalChatEvent))
		},
	})
}

// HandleChat is the group subscriber's work for one member change.
func (s *Service) HandleChat(ctx context.Context, corp string, ev *wecom.ExternalChatEvent) error {
	codes, err := s.store.list(ctx, ListFilter{CorpID: corp, Mode: ModeJoinWay, Limit: 1000})
	if err != nil {
		return err
	}
	day := s.calendar(corp).DayKey(ev.Time())
	for _, c := range codes {
		listed := false
		for _, g := range c.Settings.Groups {
			listed = listed || g.ChatID == ev.ChatID
		}
		if !listed && !slices.Contains(c.WeComUsers, ev.ChatID) {
			continue
		}
		// Stats keyed by (code, chat) as the "staff" column; once per member version.
		first, err := s.kv.SetNX(ctx, s.kv.Key("lc", "chatev", corp, ev.ChatID, ev.CurMemVer, ev.UpdateDetail, fmt.Sprint(c.ID)), 1, dayKeyTTL).Result()
		if err != nil {
			return err
		}
		if first {
			if ev.UpdateDetail == wecom.ChatAddMember && ev.JoinScene == 3 {
				if err := s.bumpStats(ctx, s.db, corp, c.ID, ev.ChatID, day, "adds", s.joinedByState(ctx, corp, ev, codeState(c.ID))); err != nil {
					return err
				}
			}
			if ev.UpdateDetail == wecom.ChatDelMember {
				if err := s.bumpStats(ctx, s.db, corp, c.ID, ev.ChatID, day, "lost_customer", len(ev.MemChangeList)); err != nil {
					return err
				}
			}
		}
		if err := s.Reconcile(ctx, corp, c.ID); err != nil && err != ErrBusy {
			return err
		}
	}
	return nil
}

// joinedByState counts the event's new members whose join state names the code.
func (s *Service) joinedByState(ctx context.Context, corp string, ev *wecom.ExternalChatEvent, state string) int {
	chat, err := s.wc.GetGroupChat(ctx, corp, ev.ChatID)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range chat.MemberList {
		if m.State == state && slices.Contains(ev.MemChangeList, m.UserID) {
			n++
		}
	}
	return n
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
			var shown int
			if err := s.db.GetContext(ctx, &shown, `SELECT COALESCE(SUM(visits), 0) FROM live_code_stats WHERE corp_id = ? AND code_id = ? AND userid = ?`,
				c.CorpID, c.ID, manualKey(mg.FileID)); err != nil || shown >= mg.Cap {
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

// remindManual tells the owner, once, a day before a manual group's QR expires.
func (s *Service) remindManual(ctx context.Context, c *Code) {
	now := s.now()
	for _, mg := range c.Settings.ManualGroups {
		left := mg.ExpiresAt.Sub(now)
		if left <= 0 || left > 24*time.Hour {
			continue
		}
		first, err := s.kv.SetNX(ctx, s.kv.Key("lc", "expiry", c.CorpID, fmt.Sprint(c.ID), fmt.Sprint(mg.FileID)), 1, 8*24*time.Hour).Result()
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
