package livecode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

var welcomeTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "qiflow_welcome_messages_total",
	Help: "Welcome messages by outcome: sent, already (41051 used, 41096 being sent), expired (past 20 s, or 41050), failed, none (no welcome code).",
}, []string{"outcome"})

// welcomeLife is how long WeCom's welcome code is valid.
const welcomeLife = 20 * time.Second

// Welcome sends the welcome message of the code an add came through, once:
// the welcome_sends row (keyed by the single-use welcome code) records the
// decision and its outcome. A half add followed by a full add of one pair is
// greeted once: the bus hands one contact's events to this subscriber one at
// a time, in order, so the second sees the first's row. Past CreateTime +
// 20 s nothing is attempted.
func (s *Service) Welcome(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	id := ParseState(ev.State)
	if id == 0 {
		return nil
	}
	c, err := s.store.get(ctx, corp, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	w := c.Settings.Welcome
	if w.Text == "" && len(w.Attachments) == 0 && len(w.Variants) == 0 {
		return nil
	}
	now := s.now()
	row := welcomeRow{CorpID: corp, Key: ev.WelcomeCode, CodeID: c.ID, ExternalUserID: ev.ExternalUserID, UserID: ev.UserID, Status: "sending"}
	if ev.WelcomeCode == "" {
		// WeCom (or another app, or the console's own welcome) already greeted the customer.
		row.Key, row.Status = "none:"+ev.DedupKey(), "none"
		if inserted, _, err := s.store.insertWelcome(ctx, row, qsql.Millis(now)); err != nil {
			return err
		} else if inserted {
			welcomeTotal.WithLabelValues("none").Inc()
		}
		return nil
	}
	inserted, status, err := s.store.insertWelcome(ctx, row, qsql.Millis(now))
	if err != nil {
		return err
	}
	if !inserted && status != "sending" {
		return nil // settled by an earlier delivery
	}
	deadline := ev.Time().Add(welcomeLife)
	if !now.Before(deadline) {
		return s.finishWelcome(ctx, c, ev, "expired", nil)
	}
	if greeted, err := s.store.pairGreeted(ctx, corp, ev.ExternalUserID, ev.UserID, ev.WelcomeCode, qsql.Millis(now.Add(-time.Minute))); err != nil {
		return err
	} else if greeted {
		return s.finishWelcome(ctx, c, ev, "already", nil)
	}
	vars, err := s.templateVars(ctx, corp, c, ev)
	if err != nil {
		return err
	}
	text, atts := s.welcomeFor(c, now, vars)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	msg := wecom.WelcomeMsg{WelcomeCode: ev.WelcomeCode}
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
		return s.finishWelcome(ctx, c, ev, "sent", nil)
	case wecom.IsCode(err, wecom.CodeWelcomeCodeUsed, wecom.CodeWelcomeSending):
		// Used, or being sent (an earlier attempt of ours whose answer was
		// lost, or another app): the customer is greeted; not a failure.
		return s.finishWelcome(ctx, c, ev, "already", nil)
	case wecom.IsCode(err, wecom.CodeWelcomeCodeInvalid):
		return s.finishWelcome(ctx, c, ev, "expired", err) // never retried: the code is gone
	case s.now().Add(2*time.Second).Before(deadline) && !wecom.IsCode(err, wecom.CodeInvalidParameter, 40007):
		return fmt.Errorf("send welcome: %w", err) // the fast lane retries while the code lives
	default:
		return s.finishWelcome(ctx, c, ev, "failed", err)
	}
}

// templateVars are the add's values for templates (welcome, remark).
func (s *Service) templateVars(ctx context.Context, corp string, c *Code, ev *wecom.ExternalContactEvent) (TemplateVars, error) {
	vars := TemplateVars{Date: s.calendar(corp).DayKey(ev.Time()), Channel: c.Channel, CodeName: c.Name}
	names, err := s.dir.StaffNames(ctx, corp, []string{ev.UserID})
	if err != nil {
		return vars, err
	}
	vars.StaffName = names[ev.UserID]
	// The contact mirror may not have the contact yet; ask WeCom once.
	if vars.CustomerName, err = s.dir.ContactName(ctx, corp, ev.ExternalUserID); err == nil && vars.CustomerName == "" {
		if d, err := s.wc.GetExternalContact(ctx, corp, ev.ExternalUserID); err == nil {
			vars.CustomerName = d.ExternalContact.Name
		}
	}
	return vars, nil
}

// finishWelcome settles the welcome row once, counting its outcome in
// metrics and, in the same transaction, in the code's statistics.
func (s *Service) finishWelcome(ctx context.Context, c *Code, ev *wecom.ExternalContactEvent, status string, cause error) error {
	var msg *string
	if cause != nil {
		m := cause.Error()
		msg = &m
	}
	field := "welcome_missed"
	if status == "sent" {
		field = "welcome_sent"
	}
	day := s.calendar(c.CorpID).DayKey(ev.Time())
	settled, err := s.store.finishWelcome(context.WithoutCancel(ctx), c.CorpID, ev.WelcomeCode, status, msg, qsql.Millis(s.now()), func(tx *qsql.Tx) error {
		if status == "already" {
			return nil // greeted through another add: not a miss
		}
		return s.store.bumpStats(ctx, tx, c.CorpID, c.ID, ev.UserID, day, field, 1)
	})
	if err != nil || !settled {
		return err
	}
	welcomeTotal.WithLabelValues(status).Inc()
	if status != "sent" && status != "already" {
		s.log.Warn("welcome message not sent", "corp", c.CorpID, "code", c.ID, "userid", ev.UserID, "external_userid", ev.ExternalUserID, "outcome", status, "err", cause)
	}
	return nil
}

// welcomeFor picks the message for now: the variant whose slot holds now, or the default.
func (s *Service) welcomeFor(c *Code, now time.Time, vars TemplateVars) (string, []Attachment) {
	w := c.Settings.Welcome
	text, atts := w.Text, w.Attachments
	local := now.In(s.calendar(c.CorpID).Location())
	for _, v := range w.Variants {
		if v.Slot.Contains(local, local.Weekday()) {
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
	return &wecom.Attachment{MsgType: "link", Link: &wecom.Link{Title: title, Desc: "点击加入群聊 Tap to join the group", URL: s.LandingURL(g)}}
}
