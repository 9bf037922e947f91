package livecode

import (
	"context"
	"fmt"
	"time"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/wecom"
)

// Subscriber names, stable because deliveries are recorded under them.
// Onboarding is split so one failing step never holds up another: the
// source record and counts touch only the database; the welcome has its own
// fast lane (its code lives 20 s); tags and remark call WeCom and may fail
// and retry on their own.
const (
	SubscriberSources = "livecode.sources" // adds and losses: source, relation, counts, ContactAdded/ContactLost
	SubscriberWelcome = "livecode.welcome" // the welcome message (fast lane)
	SubscriberProfile = "livecode.profile" // tags and remark from the code
	SubscriberGroups  = "livecode.groups"  // group codes: joins, leaves, switching groups
)

var (
	addTypes  = []string{wecom.EventExternalContact + "/" + wecom.ChangeAddExternalContact, wecom.EventExternalContact + "/" + wecom.ChangeAddHalfExternalContact}
	lossTypes = []string{wecom.EventExternalContact + "/" + wecom.ChangeDelExternalContact, wecom.EventExternalContact + "/" + wecom.ChangeDelFollowUser}
)

// Subscribe registers live codes' subscribers and the domain events they publish.
func (s *Service) Subscribe(b *jobs.Bus) {
	s.bus = b
	jobs.RegisterEvent[ContactAdded](b)
	jobs.RegisterEvent[ContactLost](b)
	jobs.On(b, jobs.Subscription[*wecom.ExternalContactEvent]{
		Name:  SubscriberSources,
		Types: append(append([]string{}, addTypes...), lossTypes...),
		Handle: func(ctx context.Context, d jobs.Delivery, ev *wecom.ExternalContactEvent) error {
			return s.RecordContactEvent(ctx, d.CorpID, ev)
		},
		HandleBatch: func(ctx context.Context, items []jobs.Item[*wecom.ExternalContactEvent]) error {
			evs := make([]ContactEvent, len(items))
			for i, it := range items {
				evs[i] = ContactEvent{CorpID: it.CorpID, Event: it.Event}
			}
			return s.RecordContactEvents(ctx, evs)
		},
	})
	jobs.On(b, jobs.Subscription[*wecom.ExternalContactEvent]{
		Name:  SubscriberWelcome,
		Lane:  jobs.LaneFast,
		Types: addTypes,
		// Only adds through a code have a welcome to send.
		Where: func(ev *wecom.ExternalContactEvent) bool { return ParseState(ev.State) > 0 },
		Handle: func(ctx context.Context, d jobs.Delivery, ev *wecom.ExternalContactEvent) error {
			return s.Welcome(ctx, d.CorpID, ev)
		},
	})
	jobs.On(b, jobs.Subscription[*wecom.ExternalContactEvent]{
		Name:  SubscriberProfile,
		Types: addTypes,
		Where: func(ev *wecom.ExternalContactEvent) bool { return ParseState(ev.State) > 0 },
		Handle: func(ctx context.Context, d jobs.Delivery, ev *wecom.ExternalContactEvent) error {
			return s.ApplyProfile(ctx, d.CorpID, ev)
		},
	})
	jobs.On(b, jobs.Subscription[*wecom.ExternalChatEvent]{
		Name:  SubscriberGroups,
		Types: []string{wecom.EventExternalChat + "/update"},
		Where: func(ev *wecom.ExternalChatEvent) bool {
			return ev.UpdateDetail == wecom.ChatAddMember || ev.UpdateDetail == wecom.ChatDelMember
		},
		Handle: func(ctx context.Context, d jobs.Delivery, ev *wecom.ExternalChatEvent) error {
			return s.HandleChat(ctx, d.CorpID, d.EventID, ev)
		},
	})
}

// ContactAdded is published once for every add of a customer to a staff
// member: through a code (with its channel) or direct.
type ContactAdded struct {
	CorpID         string `json:"corp_id"`
	ExternalUserID string `json:"external_userid"`
	UserID         string `json:"userid"`
	Source         string `json:"source"` // "code" or "direct"
	CodeID         int64  `json:"code_id,omitempty"`
	Channel        string `json:"channel,omitempty"`
	State          string `json:"state,omitempty"`
	ReAdd          bool   `json:"re_add"`
	OutOfPeriod    bool   `json:"out_of_period,omitempty"`
	AddedAt        int64  `json:"added_at"` // Unix ms
	SourceID       int64  `json:"source_id"`
}

func (e ContactAdded) EventType() string    { return "ContactAdded" }
func (e ContactAdded) EventSubject() string { return wecom.ContactSubject(e.ExternalUserID) }
func (e ContactAdded) EventKey() string     { return fmt.Sprint(e.SourceID) }
func (e ContactAdded) EventTime() time.Time { return time.UnixMilli(e.AddedAt) }

// ContactLost is published once when a customer and a staff member are no
// longer connected: the customer deleted the staff member, or the other way
// round (a hand-over by transfer is not a loss).
type ContactLost struct {
	CorpID         string `json:"corp_id"`
	ExternalUserID string `json:"external_userid"`
	UserID         string `json:"userid"`
	By             string `json:"by"` // customer | staff
	CodeID         int64  `json:"code_id,omitempty"`
	Channel        string `json:"channel,omitempty"`
	LostAt         int64  `json:"lost_at"` // Unix ms
	SourceID       int64  `json:"source_id"`
}

func (e ContactLost) EventType() string    { return "ContactLost" }
func (e ContactLost) EventSubject() string { return wecom.ContactSubject(e.ExternalUserID) }
func (e ContactLost) EventKey() string     { return fmt.Sprintf("%d/%d", e.SourceID, e.LostAt) }
func (e ContactLost) EventTime() time.Time { return time.UnixMilli(e.LostAt) }
