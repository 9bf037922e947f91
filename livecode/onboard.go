package livecode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

var welcomeTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "qiflow_welcome_messages_total",
	Help: "Welcome messages by outcome: sent, already (41051), expired (past 20 s), failed, none (no welcome code).",
}, []string{"outcome"})

// Subscriber names.
const (
	SubscriberOnboard = "livecode.onboard"
	SubscriberLosses  = "livecode.losses"
)

// welcomeLife is how long WeCom's welcome code is valid.
const welcomeLife = 20 * time.Second

// EventContactAdded is the domain event written for every add.
const EventContactAdded = "ContactAdded"

// ContactAdded is the payload of the ContactAdded domain event.
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
	AddedAt        int64  `json:"added_at"`
	SourceID       int64  `json:"source_id"`
}

// Subscribe registers onboarding (fast lane: the welcome cannot wait) and loss recording.
func (s *Service) Subscribe(in *jobs.Inbox) {
	in.Subscribe(jobs.Subscriber{
		Name: SubscriberOnboard,
		Lane: jobs.LaneFast,
		Match: func(ev wecom.Event) bool {
			e, ok := ev.(*wecom.ExternalContactEvent)
			return ok && (e.ChangeType == wecom.ChangeAddExternalContact || e.ChangeType == wecom.ChangeAddHalfExternalContact)
		},
		Handle: func(ctx context.Context, d jobs.Delivery) error {
			return s.Onboard(ctx, d.CorpID, d.Event.(*wecom.ExternalContactEvent))
		},
	})
	s.subscribeGroups(in)
	in.Subscribe(jobs.Subscriber{
		Name: SubscriberLosses,
		Match: func(ev wecom.Event) bool {
			e, ok := ev.(*wecom.ExternalContactEvent)
			return ok && (e.ChangeType == wecom.ChangeDelFollowUser || e.ChangeType == wecom.ChangeDelExternalContact)
		},
		Handle: func(ctx context.Context, d jobs.Delivery) error {
			return s.RecordLoss(ctx, d.CorpID, d.Event.(*wecom.ExternalContactEvent))
		},
	})
}

// Onboard does, in order, what a new contact through a code gets: the welcome
// message, tags, remark and description, the source record and the count.
// Every step is idempotent, so a retried or replayed event changes nothing more.
func (s *Service) Onboard(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	var c *Code
	if id := ParseState(ev.State); id > 0 {
		code, err := s.store.get(ctx, corp, id)
		switch {
		case err == nil:
			c = code
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	vars := TemplateVars{Date: s.calendar(corp).DayKey(ev.Time())}
	if c != nil {
		vars.Channel, vars.CodeName = c.Channel, c.Name
		names, err := s.dir.StaffNames(ctx, corp, []string{ev.UserID})
		if err != nil {
			return err
		}
		vars.StaffName = names[ev.UserID]
		// The contact mirror may not have the contact yet; ask WeCom once.
		if vars.CustomerName, err = s.dir.ContactName(ctx, corp, ev.ExternalUserID); err == nil && vars.CustomerName == "" {
			if d, err := s.wc.GetExternalContact(ctx, corp, ev.ExternalUserID); err == nil {
				vars.CustomerName = d.ExternalContact.Name
			}
		}
	}
	if err := s.welcome(ctx, corp, c, ev, vars); err != nil {
		return err
	}
	if c != nil {
		if len(c.Settings.Tags) > 0 {
			// Tags are set, not toggled: marking again changes nothing.
			if err := s.wc.MarkTag(ctx, corp, ev.UserID, ev.ExternalUserID, c.Settings.Tags, nil); err != nil && !gone(err) {
				return fmt.Errorf("mark tags: %w", err)
			}
		}
		if c.Settings.RemarkTemplate != "" || c.Settings.DescriptionTemplate != "" {
			r := wecom.Remark{UserID: ev.UserID, ExternalUserID: ev.ExternalUserID}
			if c.Settings.RemarkTemplate != "" {
				v := truncate(Render(c.Settings.RemarkTemplate, vars), 20)
				r.Remark = &v
			}
			if c.Settings.DescriptionTemplate != "" {
				v := truncate(Render(c.Settings.DescriptionTemplate, vars), 150)
				r.Description = &v
			}
			if err := s.wc.RemarkExternalContact(ctx, corp, r); err != nil && !gone(err) {
				return fmt.Errorf("set remark: %w", err)
			}
		}
	}
	counted, day, err := s.recordSource(ctx, corp, c, ev)
	if err != nil {
		return err
	}
	// Caps count adds through codes (per code, and per staff member across
	// codes); a direct add is recorded but uses no cap.
	if counted && c != nil {
		if err := s.consume(ctx, corp, day, c.ID, ev.UserID); err != nil {
			// The database has the add; the counter is rebuilt from it when missing.
			s.log.Error("counting an add in redis failed", "corp", corp, "code", c.ID, "err", err)
		}
	}
	if c != nil && (c.Mode == ModeWeComQR || c.Mode == ModeLink) {
		if err := s.Reconcile(ctx, corp, c.ID); err != nil && !errors.Is(err, ErrBusy) {
			s.log.Warn("reconcile after an add failed; the minute reconciler will retry", "code", c.ID, "err", err)
		}
	}
	return nil
}

// gone reports WeCom errors meaning the relation no longer exists: nothing to retry.
func gone(err error) bool { return wecom.IsCode(err, wecom.CodeInvalidExternalID, 84061) }

// welcomeFor picks the message for now: the variant whose slot holds now, or the default.
func (s *Service) welcomeFor(c *Code, now time.Time, vars TemplateVars) (string, []Attachment) {
	w := c.Settings.Welcome
	text, atts := w.Text, w.Attachments
	local := now.In(s.calendar(c.CorpID).Location())
	for _, v := range w.Variants {
		if inSlot(v.Slot, local, local.Weekday()) {
			text, atts = v.Text, v.Attachments
			break
		}
	}
	return Render(text, vars), atts
}

// resolve turns attachments into WeCom's, with media ids for stored files.
func (s *Service) resolve(ctx context.Context, corp string, atts []Attachment) ([]wecom.Attachment, error) {
	out := make([]wecom.Attachment, 0, len(atts))
	for _, a := range atts {
		wa := a.Attachment
		if a.FileID > 0 {
			if s.Media == nil {
				return nil, errors.New("attachments from stored files need the media store")
			}
			id, err := s.Media.MediaID(ctx, corp, a.FileID)
			if err != nil {
				return nil, err
			}
			switch wa.MsgType {
			case "image":
				wa.Image = &wecom.Image{MediaID: id}
			case "video":
				wa.Video = &wecom.Media{MediaID: id}
			case "file":
				wa.File = &wecom.Media{MediaID: id}
			case "miniprogram":
				mp := wecom.MiniProgram{}
				if wa.MiniProgram != nil {
					mp = *wa.MiniProgram
				}
				mp.PicMediaID = id
				wa.MiniProgram = &mp
			}
		}
		out = append(out, wa)
	}
	return out, nil
}

// Preview is a welcome message as it would go out now.
type Preview struct {
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments"`
}

// PreviewWelcome renders a code's welcome message as it would go out now.
func (s *Service) PreviewWelcome(c *Code, customerName, staffName string) Preview {
	now := s.now()
	text, atts := s.welcomeFor(c, now, TemplateVars{CustomerName: customerName, StaffName: staffName, Channel: c.Channel, CodeName: c.Name,
		Date: s.calendar(c.CorpID).DayKey(now)})
	if atts == nil {
		atts = []Attachment{}
	}
	return Preview{Text: text, Attachments: atts}
}

// welcome sends the code's welcome message exactly once per add: the
// welcome_sends row (keyed by the single-use welcome code) records the
// outcome, and a half add followed by a full add of the same pair is
// greeted once. Past CreateTime + 20 s nothing is attempted.
func (s *Service) welcome(ctx context.Context, corp string, c *Code, ev *wecom.ExternalContactEvent, vars TemplateVars) error {
	if c == nil || (c.Settings.Welcome.Text == "" && len(c.Settings.Welcome.Attachments) == 0 && len(c.Settings.Welcome.Variants) == 0) {
		return nil
	}
	now := s.now()
	key := ev.WelcomeCode
	if key == "" {
		// WeCom (or another app, or the console's own welcome) already greeted the customer.
		s.setWelcome(ctx, corp, "none:"+ev.DedupKey(), c.ID, ev, "none", nil, now)
		return nil
	}
	deadline := ev.Time().Add(welcomeLife)
	// One welcome decision per pair at a time: a half add and a full add
	// processed together must not each see the other and both stay silent.
	lock, ok, err := s.kv.TryLock(ctx, s.kv.Key("lc", "welcome", corp, ev.ExternalUserID, ev.UserID), 10*time.Second)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("another delivery is greeting this pair; retry")
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	inserted, status, err := s.claimWelcome(ctx, corp, key, c.ID, ev, now)
	if err != nil {
		return err
	}
	if !inserted && status != "sending" {
		return nil // already settled by an earlier delivery
	}
	if !now.Before(deadline) {
		s.finishWelcome(ctx, corp, key, c, ev, "expired", nil, now)
		return nil
	}
	if sent, err := s.pairGreeted(ctx, corp, ev, key, now); err != nil {
		return err
	} else if sent {
		s.finishWelcome(ctx, corp, key, c, ev, "already", nil, now)
		return nil
	}
	text, atts := s.welcomeFor(c, now, vars)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	msg := wecom.WelcomeMsg{WelcomeCode: key}
	if text != "" {
		msg.Text = &wecom.Text{Content: text}
	}
	if msg.Attachments, err = s.resolve(sctx, corp, atts); err == nil {
		if inv := s.groupInvite(sctx, c); inv != nil && len(msg.Attachments) < 9 {
			msg.Attachments = append(msg.Attachments, *inv)
		}
		err = s.wc.SendWelcomeMsg(sctx, corp, msg)
	}
	switch {
	case err == nil:
		s.finishWelcome(ctx, corp, key, c, ev, "sent", nil, s.now())
	case wecom.IsCode(err, wecom.CodeWelcomeCodeUsed):
		s.finishWelcome(ctx, corp, key, c, ev, "already", nil, s.now())
	case s.now().Add(2*time.Second).Before(deadline) && !wecom.IsCode(err, wecom.CodeWelcomeCodeExpired, 40058, 40007):
		return fmt.Errorf("send welcome: %w", err) // the fast lane retries while the code lives
	default:
		s.finishWelcome(ctx, corp, key, c, ev, "failed", err, s.now())
	}
	return nil
}

// claimWelcome inserts the welcome row; when it exists it returns its status.
func (s *Service) claimWelcome(ctx context.Context, corp, key string, code int64, ev *wecom.ExternalContactEvent, now time.Time) (bool, string, error) {
	q := s.db.InsertIgnoreRows("welcome_sends", []string{"corp_id", "welcome_code", "code_id", "external_userid", "userid", "status", "created_at", "updated_at"},
		[]string{"corp_id", "welcome_code"}, 1)
	res, err := s.db.ExecContext(ctx, q, corp, key, code, ev.ExternalUserID, ev.UserID, "sending", qsql.Millis(now), qsql.Millis(now))
	if err != nil {
		return false, "", err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, "sending", nil
	}
	var status string
	err = s.db.GetContext(ctx, &status, `SELECT status FROM welcome_sends WHERE corp_id = ? AND welcome_code = ?`, corp, key)
	return false, status, err
}

// pairGreeted says whether the pair got a welcome in the last minute under
// another code (a half add followed by a full add).
func (s *Service) pairGreeted(ctx context.Context, corp string, ev *wecom.ExternalContactEvent, key string, now time.Time) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM welcome_sends WHERE corp_id = ? AND external_userid = ? AND userid = ? AND welcome_code <> ?
		AND status IN ('sent', 'sending') AND created_at > ?`, corp, ev.ExternalUserID, ev.UserID, key, qsql.Millis(now.Add(-time.Minute)))
	return n > 0, err
}

func (s *Service) setWelcome(ctx context.Context, corp, key string, code int64, ev *wecom.ExternalContactEvent, status string, cause error, now time.Time) {
	q := s.db.InsertIgnoreRows("welcome_sends", []string{"corp_id", "welcome_code", "code_id", "external_userid", "userid", "status", "created_at", "updated_at"},
		[]string{"corp_id", "welcome_code"}, 1)
	if res, err := s.db.ExecContext(ctx, q, corp, key, code, ev.ExternalUserID, ev.UserID, status, qsql.Millis(now), qsql.Millis(now)); err == nil {
		if n, _ := res.RowsAffected(); n == 1 {
			welcomeTotal.WithLabelValues(status).Inc()
		}
	}
}

// finishWelcome settles a welcome row once, counting its outcome in metrics and stats.
func (s *Service) finishWelcome(ctx context.Context, corp, key string, c *Code, ev *wecom.ExternalContactEvent, status string, cause error, now time.Time) {
	var msg any
	if cause != nil {
		msg = cause.Error()
	}
	ctx = context.WithoutCancel(ctx)
	res, err := s.db.ExecContext(ctx, `UPDATE welcome_sends SET status = ?, error = ?, updated_at = ? WHERE corp_id = ? AND welcome_code = ? AND status = 'sending'`,
		status, msg, qsql.Millis(now), corp, key)
	if err != nil {
		s.log.Error("recording a welcome outcome failed", "corp", corp, "err", err)
		return
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return
	}
	welcomeTotal.WithLabelValues(status).Inc()
	field := "welcome_missed"
	if status == "sent" {
		field = "welcome_sent"
	}
	if status == "already" {
		return
	}
	day := s.calendar(corp).DayKey(ev.Time())
	if err := s.bumpStats(ctx, s.db, corp, c.ID, ev.UserID, day, field, 1); err != nil {
		s.log.Error("welcome stats", "err", err)
	}
	if status != "sent" {
		s.log.Warn("welcome message not sent", "corp", corp, "code", c.ID, "userid", ev.UserID, "external_userid", ev.ExternalUserID, "outcome", status, "err", msg)
	}
}

// recordSource writes the add's source (every touch kept, the first marked by
// being the earliest), its statistics and the ContactAdded event in one
// transaction. counted is false for a re-add, a repeated event, or a half add
// followed by a full add (the relation is already recorded as live).
func (s *Service) recordSource(ctx context.Context, corp string, c *Code, ev *wecom.ExternalContactEvent) (counted bool, day string, err error) {
	day = s.calendar(corp).DayKey(ev.Time())
	// One add of a pair at a time, so a half and a full add are not both counted.
	lock, ok, err := s.kv.TryLock(ctx, s.kv.Key("lc", "pair", corp, ev.ExternalUserID, ev.UserID), 15*time.Second)
	if err != nil {
		return false, day, err
	}
	if !ok {
		return false, day, errors.New("another delivery is recording this pair; retry")
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	var prev []struct {
		LostAt *int64 `db:"lost_at"`
		Key    string `db:"event_key"`
	}
	if err := s.db.SelectContext(ctx, &prev, `SELECT lost_at, event_key FROM contact_sources WHERE corp_id = ? AND external_userid = ? AND userid = ? ORDER BY added_at DESC, id DESC LIMIT 1`,
		corp, ev.ExternalUserID, ev.UserID); err != nil {
		return false, day, err
	}
	readd := false
	if len(prev) == 1 {
		if prev[0].LostAt == nil {
			return false, day, nil // same live relation: a repeat, or the full add after a half add
		}
		readd = true
	}
	src := ContactAdded{CorpID: corp, ExternalUserID: ev.ExternalUserID, UserID: ev.UserID, Source: "direct", State: ev.State,
		ReAdd: readd, AddedAt: qsql.Millis(ev.Time())}
	var codeID int64
	if c != nil {
		codeID = c.ID
		src.Source, src.CodeID, src.Channel = "code", c.ID, c.Channel
		src.OutOfPeriod = !inPeriod(c, ev.Time())
	}
	err = s.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO contact_sources (corp_id, event_key, external_userid, userid, code_id, channel, state, add_way, is_readd, out_of_period, day, added_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, corp, ev.DedupKey(), ev.ExternalUserID, ev.UserID, codeID, src.Channel, ev.State, 1, readd, src.OutOfPeriod, day, src.AddedAt)
		if err != nil {
			return err
		}
		src.SourceID, _ = res.LastInsertId()
		field := "adds"
		if readd {
			field = "readds"
		}
		if err := s.bumpStats(ctx, tx, corp, codeID, ev.UserID, day, field, 1); err != nil {
			return err
		}
		payload, _ := json.Marshal(src)
		_, err = tx.ExecContext(ctx, `INSERT INTO domain_events (corp_id, type, dedup_key, payload, created_at) VALUES (?, ?, ?, ?, ?)`,
			corp, EventContactAdded, ev.DedupKey(), string(payload), qsql.Millis(s.now()))
		return err
	})
	if err != nil {
		return false, day, err
	}
	return !readd, day, nil
}

// bumpStats adds n to one counter of a (code, staff, day) statistics row.
func (s *Service) bumpStats(ctx context.Context, ex sqlx.ExecerContext, corp string, code int64, user, day, field string, n int) error {
	switch field {
	case "visits", "adds", "readds", "lost_customer", "lost_staff", "welcome_sent", "welcome_missed":
	default:
		return fmt.Errorf("unknown stats field %q", field)
	}
	var q string
	if s.db.Dialect == qsql.MySQL {
		q = `INSERT INTO live_code_stats (corp_id, code_id, userid, day, ` + field + `) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE ` + field + ` = ` + field + ` + VALUES(` + field + `)`
	} else {
		q = `INSERT INTO live_code_stats (corp_id, code_id, userid, day, ` + field + `) VALUES (?, ?, ?, ?, ?) ON CONFLICT(corp_id, code_id, userid, day) DO UPDATE SET ` + field + ` = ` + field + ` + excluded.` + field
	}
	_, err := ex.ExecContext(ctx, q, corp, code, user, day, n)
	return err
}

// RecordLoss records a deletion against the relation's source: the customer
// deleted the staff member (del_follow_user) or the staff member deleted the
// customer (del_external_contact). A deletion by transfer is not a loss.
func (s *Service) RecordLoss(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	if ev.ChangeType == wecom.ChangeDelExternalContact && ev.Source == wecom.SourceDeleteByTransfer {
		return nil
	}
	by, field := "staff", "lost_staff"
	if ev.ChangeType == wecom.ChangeDelFollowUser {
		by, field = "customer", "lost_customer"
	}
	at := qsql.Millis(ev.Time())
	var src struct {
		ID     int64  `db:"id"`
		CodeID int64  `db:"code_id"`
		Name   string `db:"name"`
	}
	err := s.db.GetContext(ctx, &src, `SELECT s.id, s.code_id, COALESCE(c.name, '') AS name FROM contact_sources s LEFT JOIN live_codes c ON c.id = s.code_id
		WHERE s.corp_id = ? AND s.external_userid = ? AND s.userid = ? AND s.lost_at IS NULL AND s.added_at <= ? ORDER BY s.added_at DESC, s.id DESC LIMIT 1`,
		corp, ev.ExternalUserID, ev.UserID, at)
	if qsql.IsNoRows(err) {
		return nil // added before Qiflow knew the corp, or already recorded
	}
	if err != nil {
		return err
	}
	counted := false
	err = s.db.WriteTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE contact_sources SET lost_at = ?, lost_by = ? WHERE id = ? AND lost_at IS NULL`, at, by, src.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		counted = true
		return s.bumpStats(ctx, tx, corp, src.CodeID, ev.UserID, s.calendar(corp).DayKey(ev.Time()), field, 1)
	})
	if err != nil || !counted {
		return err
	}
	if by == "customer" && s.NotifyOnLoss[corp] {
		name, _ := s.dir.ContactName(ctx, corp, ev.ExternalUserID)
		text := fmt.Sprintf("客户 %s 已将您删除 / %s removed you", name, name)
		if src.Name != "" {
			text += fmt.Sprintf(" (渠道 %s)", src.Name)
		}
		if err := s.wc.SendAppMessage(ctx, corp, ev.UserID, text); err != nil {
			s.log.Warn("loss notification not sent", "corp", corp, "userid", ev.UserID, "err", err)
		}
	}
	return nil
}

// groupInvite is the link card to the code's invited group code, if any.
func (s *Service) groupInvite(ctx context.Context, c *Code) *wecom.Attachment {
	id := c.Settings.Welcome.InviteGroupCode
	if id == 0 {
		return nil
	}
	g, err := s.store.get(ctx, c.CorpID, id)
	if err != nil || g.Status != StatusActive {
		return nil
	}
	title := g.Name
	if len(title) > 120 {
		title = truncate(title, 40)
	}
	return &wecom.Attachment{MsgType: "link", Link: &wecom.Link{Title: title, Desc: "点击加入群聊 Tap to join the group", URL: s.publicURL + "/g/" + g.Slug}}
}
