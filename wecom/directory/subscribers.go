package directory

import (
	"context"
	"fmt"

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
	jobs.On(b, jobs.Subscription[*wecom.ExternalContactEvent]{
		Name:  SubscriberContacts,
		Types: []string{wecom.EventExternalContact + "/*"},
		Handle: func(ctx context.Context, dl jobs.Delivery, ev *wecom.ExternalContactEvent) error {
			return d.HandleContactEvent(ctx, dl.CorpID, ev)
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

// RefreshContact fetches a contact and every follow relation from WeCom and stores them.
func (d *Directory) RefreshContact(ctx context.Context, corpID, externalUserID string) error {
	detail, err := d.wc.GetExternalContact(ctx, corpID, externalUserID)
	if wecom.IsCode(err, wecom.CodeInvalidExternalID, 84061) {
		// Gone from WeCom before we got to it: the deletion event records the loss.
		d.log.Info("contact no longer in WeCom", "corp", corpID, "external_userid", externalUserID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch contact: %w", err)
	}
	now := qsql.Millis(d.now())
	return d.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if err := d.upsertContact(ctx, tx, corpID, detail.ExternalContact, now); err != nil {
			return err
		}
		for _, f := range detail.FollowUser {
			if err := d.upsertFollow(ctx, tx, corpID, externalUserID, f, now); err != nil {
				return err
			}
		}
		return nil
	})
}

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
