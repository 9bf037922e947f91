package leads

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"

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

// GroupsOf is, for each live lead among ids, the customer groups (chat
// ids, sorted) its person is in now: those whose latest join or leave
// activity is a join. Segments and journeys read it for conditions on
// group membership.
func (s *Service) GroupsOf(ctx context.Context, corp string, ids []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT id, person_id FROM leads WHERE corp_id = ? AND id IN (?) AND merged_into = 0`, corp, ids)
	if err != nil {
		return nil, err
	}
	var leads []struct {
		ID     int64 `db:"id"`
		Person int64 `db:"person_id"`
	}
	if err := s.db.SelectContext(ctx, &leads, s.db.Rebind(q), args...); err != nil || len(leads) == 0 {
		return out, err
	}
	leadOf := make(map[int64]int64, len(leads))
	people := make([]int64, len(leads))
	for i, l := range leads {
		leadOf[l.Person], people[i] = l.ID, l.Person
	}
	q, args, err = sqlx.In(`SELECT person_id, type, properties FROM activities WHERE person_id IN (?) AND corp_id = ? AND type IN (?) ORDER BY person_id, at, id`,
		people, corp, []string{ActivityGroupJoined, ActivityGroupLeft})
	if err != nil {
		return nil, err
	}
	var acts []struct {
		Person int64  `db:"person_id"`
		Type   string `db:"type"`
		Props  string `db:"properties"`
	}
	if err := s.db.SelectContext(ctx, &acts, s.db.Rebind(q), args...); err != nil {
		return nil, err
	}
	in := map[int64]map[string]bool{} // person → chat → in it (the latest activity wins)
	for _, a := range acts {
		var p struct {
			ChatID string `json:"chat_id"`
		}
		if json.Unmarshal([]byte(a.Props), &p) != nil || p.ChatID == "" {
			continue
		}
		if in[a.Person] == nil {
			in[a.Person] = map[string]bool{}
		}
		in[a.Person][p.ChatID] = a.Type == ActivityGroupJoined
	}
	for person, chats := range in {
		var list []string
		for chat, member := range chats {
			if member {
				list = append(list, chat)
			}
		}
		slices.Sort(list)
		if len(list) > 0 {
			out[leadOf[person]] = list
		}
	}
	return out, nil
}
