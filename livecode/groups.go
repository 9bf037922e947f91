package livecode

import (
	"context"
	"fmt"
	"slices"

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
		if !c.Settings.AutoCreateRoom {
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
