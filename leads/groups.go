package leads

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// SubscriberGroups is the bus subscriber that records customers joining
// and leaving customer groups as their people's activities.
const SubscriberGroups = "leads.groups"

// Activity types of group membership.
const (
	ActivityGroupJoined = "wecom.group_joined"
	ActivityGroupLeft   = "wecom.group_left"
)

func (s *Service) subscribeGroups(b *jobs.Bus) {
	jobs.On(b, jobs.Subscription[*wecom.ExternalChatEvent]{
		Name:  SubscriberGroups,
		Types: []string{wecom.EventExternalChat + "/update"},
		Where: func(ev *wecom.ExternalChatEvent) bool {
			return ev.UpdateDetail == wecom.ChatAddMember || ev.UpdateDetail == wecom.ChatDelMember
		},
		Handle: func(ctx context.Context, d jobs.Delivery, ev *wecom.ExternalChatEvent) error {
			return s.RecordGroupChange(ctx, d.CorpID, ev)
		},
	})
}

// RecordGroupChange records, for each customer the event names who is a
// known person, a wecom.group_joined or wecom.group_left activity with the
// chat (staff members in the list, and customers not yet known, are
// skipped). A redelivered event records nothing twice (its key).
func (s *Service) RecordGroupChange(ctx context.Context, corp string, ev *wecom.ExternalChatEvent) error {
	typ := ActivityGroupJoined
	if ev.UpdateDetail == wecom.ChatDelMember {
		typ = ActivityGroupLeft
	}
	ids := make([]Identity, len(ev.MemChangeList))
	for i, m := range ev.MemChangeList {
		ids[i] = Identity{IdentityWeCom, m}
	}
	people, err := s.store.identityOwners(ctx, s.db, corp, ids)
	if err != nil || len(people) == 0 {
		return err
	}
	props, _ := json.Marshal(map[string]any{"chat_id": ev.ChatID, "join_scene": ev.JoinScene, "quit_scene": ev.QuitScene})
	var rows []activityRow
	for _, id := range ids {
		if person := people[id]; person > 0 {
			rows = append(rows, activityRow{Corp: corp, Person: person, Type: typ, At: qsql.Millis(ev.Time()), Props: string(props),
				Key: fmt.Sprintf("group:%s:%s:%s:%d", typ, ev.ChatID, id.Value, ev.CreateTime)})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		_, err := s.recordAndScore(ctx, tx, rows, s.now())
		return err
	})
}
