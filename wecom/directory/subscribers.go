package directory

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// Subscriber names, stable because deliveries are recorded under them.
const (
	SubscriberContacts = "directory.contacts"
	SubscriberTags     = "directory.tags"
	SubscriberChats    = "directory.chats"
)

// Subscribe registers the mirror's subscribers. Each sees one contact's
// (or group's) events one at a time, oldest first.
func (d *Directory) Subscribe(b *jobs.Bus) {
	d.bus = b
	jobs.RegisterEvent[ContactSaved](b)
	jobs.On(b, jobs.Subscription[*wecom.ExternalContactEvent]{
		Name:  SubscriberContacts,
		Types: []string{wecom.EventExternalContact + "/*"},
		Handle: func(ctx context.Context, dl jobs.Delivery, ev *wecom.ExternalContactEvent) error {
			return d.HandleContactEvent(ctx, dl.CorpID, ev)
		},
		HandleBatch: func(ctx context.Context, items []jobs.Item[*wecom.ExternalContactEvent]) error {
			evs := make([]CorpContactEvent, len(items))
			for i, it := range items {
				evs[i] = CorpContactEvent{CorpID: it.CorpID, Event: it.Event}
			}
			return d.HandleContactEvents(ctx, evs)
		},
	})
	jobs.On(b, jobs.Subscription[*wecom.ExternalTagEvent]{
		Name:  SubscriberTags,
		Types: []string{wecom.EventExternalTag + "/*"},
		Handle: func(ctx context.Context, dl jobs.Delivery, _ *wecom.ExternalTagEvent) error {
			return d.SyncTags(ctx, dl.CorpID)
		},
	})
	jobs.On(b, jobs.Subscription[*wecom.ExternalChatEvent]{
		Name:  SubscriberChats,
		Types: []string{wecom.EventExternalChat + "/*"},
		Handle: func(ctx context.Context, dl jobs.Delivery, ev *wecom.ExternalChatEvent) error {
			return d.HandleChatEvent(ctx, dl.CorpID, ev)
		},
	})
}

// HandleContactEvent keeps contacts and follow relations current. Adds and
// edits fetch the contact from WeCom (its current state, so replays and
// out-of-order events converge); deletions are recorded, not erased.
func (d *Directory) HandleContactEvent(ctx context.Context, corpID string, ev *wecom.ExternalContactEvent) error {
	switch ev.ChangeType {
	case wecom.ChangeAddExternalContact, wecom.ChangeAddHalfExternalContact, wecom.ChangeEditExternalContact:
		return d.RefreshContact(ctx, corpID, ev.ExternalUserID)
	case wecom.ChangeDelExternalContact:
		by := DeletedByStaff
		if ev.Source == wecom.SourceDeleteByTransfer {
			by = DeletedByTransfer
		}
		return d.markFollowDeleted(ctx, corpID, ev.ExternalUserID, ev.UserID, by, ev.Time())
	case wecom.ChangeDelFollowUser:
		return d.markFollowDeleted(ctx, corpID, ev.ExternalUserID, ev.UserID, DeletedByCustomer, ev.Time())
	case wecom.ChangeTransferFail:
		_, err := d.db.ExecContext(ctx, `UPDATE follow_relations SET transfer_fail = ?, updated_at = ? WHERE corp_id = ? AND external_userid = ? AND userid = ?`,
			ev.FailReason, qsql.Millis(d.now()), corpID, ev.ExternalUserID, ev.UserID)
		return err
	}
	return nil
}

// CorpContactEvent is a contact event with the corp it came from.
type CorpContactEvent struct {
	CorpID string
	Event  *wecom.ExternalContactEvent
}

// HandleContactEvents is HandleContactEvent for many events of distinct
// contacts (a bus batch): the contacts to refresh are read from WeCom side
// by side and written in one transaction; other changes run one by one.
func (d *Directory) HandleContactEvents(ctx context.Context, evs []CorpContactEvent) error {
	var refresh []contactRef
	for _, e := range evs {
		switch e.Event.ChangeType {
		case wecom.ChangeAddExternalContact, wecom.ChangeAddHalfExternalContact, wecom.ChangeEditExternalContact:
			refresh = append(refresh, contactRef{e.CorpID, e.Event.ExternalUserID})
		default:
			if err := d.HandleContactEvent(ctx, e.CorpID, e.Event); err != nil {
				return err
			}
		}
	}
	return d.refreshContacts(ctx, refresh)
}

// RefreshContact fetches a contact and every follow relation from WeCom and stores them.
func (d *Directory) RefreshContact(ctx context.Context, corpID, externalUserID string) error {
	return d.refreshContacts(ctx, []contactRef{{corpID, externalUserID}})
}

type contactRef struct{ corpID, externalUserID string }

// refreshContacts fetches contacts from WeCom, concurrently, and stores
// them and their follow relations in one transaction.
func (d *Directory) refreshContacts(ctx context.Context, refs []contactRef) error {
	if len(refs) == 0 {
		return nil
	}
	// Rows are stamped with when they were read, before the read: a
	// slower, older read of the same contact never overwrites them.
	readAt := qsql.Millis(d.now())
	found := make([]*contactWrite, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range refs {
		g.Go(func() error {
			detail, err := d.wc.GetExternalContact(gctx, r.corpID, r.externalUserID)
			if wecom.IsCode(err, wecom.CodeInvalidExternalID, 84061) {
				// Gone from WeCom before we got to it: the deletion event records the loss.
				d.log.Info("contact no longer in WeCom", "corp", r.corpID, "external_userid", r.externalUserID)
				return nil
			}
			if err != nil {
				return fmt.Errorf("fetch contact %s: %w", r.externalUserID, err)
			}
			found[i] = &contactWrite{CorpID: r.corpID, Contact: detail.ExternalContact, Follows: detail.FollowUser}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	ws := make([]contactWrite, 0, len(found))
	for _, w := range found {
		if w != nil {
			ws = append(ws, *w)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	now := readAt
	return d.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if err := d.writeContacts(ctx, tx, ws, now); err != nil {
			return err
		}
		if d.bus == nil {
			return nil
		}
		saved := make([]jobs.Published, len(ws))
		for i, w := range ws {
			saved[i] = jobs.Published{CorpID: w.CorpID, Event: ContactSaved{CorpID: w.CorpID, ExternalUserID: w.Contact.ExternalUserID,
				Name: w.Contact.Name, UnionID: w.Contact.UnionID, SavedAt: now}}
		}
		return d.bus.PublishAll(ctx, tx, saved)
	})
}

// ContactSaved is published when the mirror stores a contact read from
// WeCom after one of its events (not by the full import), with what other
// packages need of it: its name and unionid.
type ContactSaved struct {
	CorpID         string `json:"corp_id"`
	ExternalUserID string `json:"external_userid"`
	Name           string `json:"name"`
	UnionID        string `json:"unionid,omitempty"`
	SavedAt        int64  `json:"saved_at"`
}

func (e ContactSaved) EventType() string    { return "ContactSaved" }
func (e ContactSaved) EventSubject() string { return "ext:" + e.ExternalUserID }
func (e ContactSaved) EventKey() string     { return fmt.Sprintf("%s/%d", e.ExternalUserID, e.SavedAt) }
func (e ContactSaved) EventTime() time.Time { return qsql.FromMillis(e.SavedAt) }

// HandleChatEvent mirrors a customer group's current state.
func (d *Directory) HandleChatEvent(ctx context.Context, corpID string, ev *wecom.ExternalChatEvent) error {
	if ev.ChangeType == "dismiss" {
		now := qsql.Millis(d.now())
		_, err := d.db.ExecContext(ctx, `UPDATE group_chats SET dismissed_at = ?, updated_at = ? WHERE corp_id = ? AND chat_id = ?`, now, now, corpID, ev.ChatID)
		return err
	}
	return d.RefreshGroup(ctx, corpID, ev.ChatID)
}

// RefreshGroup fetches a group chat and stores it.
func (d *Directory) RefreshGroup(ctx context.Context, corpID, chatID string) error {
	g, err := d.wc.GetGroupChat(ctx, corpID, chatID)
	if wecom.IsCode(err, wecom.CodeInvalidChatID) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch group chat: %w", err)
	}
	now := qsql.Millis(d.now())
	q := d.db.Upsert("group_chats", []string{"corp_id", "chat_id", "name", "owner", "notice", "member_count", "member_version", "created_at", "updated_at"},
		[]string{"corp_id", "chat_id"}, []string{"name", "owner", "notice", "member_count", "member_version", "updated_at"})
	_, err = d.db.ExecContext(ctx, q, corpID, g.ChatID, g.Name, g.Owner, g.Notice, len(g.MemberList), g.MemberVersion, g.CreateTime*1000, now)
	return err
}

// SyncTags replaces the mirror of the corp's tags with WeCom's list; tags and
// groups no longer listed are marked deleted.
func (d *Directory) SyncTags(ctx context.Context, corpID string) error {
	groups, err := d.wc.ListCorpTags(ctx, corpID)
	if err != nil {
		return fmt.Errorf("list corp tags: %w", err)
	}
	// Rule-group tags are listed apart; codes and contacts use them alike.
	strategy, err := d.wc.ListStrategyTags(ctx, corpID)
	if err != nil {
		return fmt.Errorf("list strategy tags: %w", err)
	}
	groups = append(groups, strategy...)
	now := qsql.Millis(d.now())
	return d.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		gq := d.db.Upsert("tag_groups", []string{"corp_id", "id", "name", "sort_order", "strategy_id", "deleted_at", "updated_at"}, []string{"corp_id", "id"},
			[]string{"name", "sort_order", "strategy_id", "deleted_at", "updated_at"})
		tq := d.db.Upsert("tags", []string{"corp_id", "id", "group_id", "name", "sort_order", "deleted_at", "updated_at"}, []string{"corp_id", "id"},
			[]string{"group_id", "name", "sort_order", "deleted_at", "updated_at"})
		for _, g := range groups {
			if _, err := tx.ExecContext(ctx, gq, corpID, g.GroupID, g.GroupName, g.Order, g.StrategyID, nil, now); err != nil {
				return err
			}
			for _, t := range g.Tags {
				if _, err := tx.ExecContext(ctx, tq, corpID, t.ID, g.GroupID, t.Name, t.Order, nil, now); err != nil {
					return err
				}
			}
		}
		// Everything this pass did not touch is gone from WeCom.
		if _, err := tx.ExecContext(ctx, `UPDATE tags SET deleted_at = ? WHERE corp_id = ? AND updated_at < ? AND deleted_at IS NULL`, now, corpID, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE tag_groups SET deleted_at = ? WHERE corp_id = ? AND updated_at < ? AND deleted_at IS NULL`, now, corpID, now)
		return err
	})
}
