package journeys

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// Messenger queues messages to customers at WeCom and reads their results.
type Messenger interface {
	AddMsgTemplate(ctx context.Context, corpID string, m wecom.MsgTemplate) (string, []string, error)
	GroupMsgSendResult(ctx context.Context, corpID, msgID, userID, cursor string) ([]wecom.GroupMsgSend, string, error)
	SendAppMessage(ctx context.Context, corpID, userID, text string) error
}

// StaffOf is a Qiflow user's WeCom staff member ("" none).
type StaffOf func(ctx context.Context, corpID string, userID int64) (string, error)

// SetMessenger gives the service WeCom for customer messages and notices
// to staff, and how to find a lead owner's staff member.
func (s *Service) SetMessenger(m Messenger, staff StaffOf) { s.messenger, s.staffOf = m, staff }

// MessageSettings are a corp's rules for messages to customers across all
// its journeys.
type MessageSettings struct {
	// At most CapDay messages a day and CapWeek a week per person (rolling
	// 24 hours and 7 days); a message over a cap waits until it fits.
	CapDay  int `db:"cap_day" json:"cap_day"`
	CapWeek int `db:"cap_week" json:"cap_week"`
	// Quiet hours in the corp's zone (HH:MM; start after end wraps midnight):
	// a message due in them waits for their end.
	QuietStart string `db:"quiet_start" json:"quiet_start"`
	QuietEnd   string `db:"quiet_end" json:"quiet_end"`
	// OptOutActivity: a person with this activity gets no messages.
	OptOutActivity string `db:"opt_out_activity" json:"opt_out_activity"`
}

// DefaultMessageSettings apply until a corp sets its own.
var DefaultMessageSettings = MessageSettings{CapDay: 1, CapWeek: 3, QuietStart: "21:00", QuietEnd: "08:00", OptOutActivity: "contact.opted_out"}

func (m *MessageSettings) check() error {
	f := apperr.Fields{}
	if m.CapDay < 1 || m.CapDay > 20 {
		f.Add("cap_day", "is between 1 and 20")
	}
	if m.CapWeek < m.CapDay || m.CapWeek > 100 {
		f.Add("cap_week", "is at least cap_day and at most 100")
	}
	if m.QuietStart != "" || m.QuietEnd != "" {
		if !hhmm.MatchString(m.QuietStart) {
			f.Add("quiet_start", "is a time of day as 21:00 (both empty: no quiet hours)")
		}
		if !hhmm.MatchString(m.QuietEnd) {
			f.Add("quiet_end", "is a time of day as 08:00 (both empty: no quiet hours)")
		}
	}
	if m.OptOutActivity == "" {
		f.Add("opt_out_activity", "is required")
	}
	return f.Err()
}

// MessageSettingsOf reads a corp's settings (the defaults until set).
func (s *Service) MessageSettingsOf(ctx context.Context, corp string) (MessageSettings, error) {
	m, ok, err := readMessageSettings(ctx, s.db, corp)
	if err != nil || !ok {
		return DefaultMessageSettings, err
	}
	return m, nil
}

// SetMessageSettings stores a corp's settings; they apply to the next message.
func (s *Service) SetMessageSettings(ctx context.Context, corp string, m MessageSettings) (MessageSettings, error) {
	if err := m.check(); err != nil {
		return m, err
	}
	return m, writeMessageSettings(ctx, s.db, corp, m, qsql.Millis(s.now()))
}

// waitError defers an action to a later time (quiet hours, a cap) without
// counting a failure.
type waitError struct {
	until  time.Time
	reason string
}

func (w waitError) Error() string {
	return "waits until " + w.until.Format(time.RFC3339) + ": " + w.reason
}

// Message statuses.
const (
	MsgSending     = "sending"
	MsgQueued      = "queued"
	MsgSent        = "sent"
	MsgNotFriend   = "not_friend"
	MsgLimit       = "limit"
	MsgUnreachable = "unreachable"
	MsgUnknown     = "unknown"
)

// message queues a run's customer message at WeCom through the lead's
// staff member, who confirms it in their app. Once per run and step: the
// row is written first, and a step that has one never calls WeCom again
// (a call whose answer was lost is recorded unknown rather than risk a
// second copy: a customer's receiving limit is precious).
func (s *Service) message(ctx context.Context, a *Action, r *Run, p *leads.Profile, now time.Time) (string, error) {
	if s.messenger == nil {
		return "", fmt.Errorf("%w: no WeCom to send through", errPermanent)
	}
	var invite *wecom.Link
	if a.Kind == ActionInvite {
		link, err := s.inviteLink(ctx, r.CorpID, a.Code)
		if err != nil {
			return "", err
		}
		invite = link
	}
	if p.ExternalUserID == "" || p.StaffUserID == "" {
		return "skipped: not a WeCom contact", nil
	}
	set, err := s.MessageSettingsOf(ctx, r.CorpID)
	if err != nil {
		return "", err
	}
	if done, err := messageExists(ctx, s.db, r.ID, r.Step); err != nil || done != "" {
		return "already " + done, err
	}
	counts, err := s.leads.CountActivities(ctx, r.CorpID, []int64{p.LeadID}, []leads.ActivityQuery{{Type: set.OptOutActivity}})
	if err != nil {
		return "", err
	}
	if counts[p.LeadID][0].N > 0 {
		return "skipped: opted out", nil
	}
	loc := s.calendars.For(r.CorpID).Location()
	if end, quiet := quietUntil(set, now.In(loc)); quiet {
		return "", waitError{until: end, reason: "quiet hours"}
	}
	sent, err := messagesSince(ctx, s.db, r.CorpID, p.LeadID, qsql.Millis(now.Add(-7*24*time.Hour)))
	if err != nil {
		return "", err
	}
	if until, capped := capUntil(set, sent, now); capped {
		return "", waitError{until: until, reason: "frequency cap"}
	}
	ms := qsql.Millis(now)
	row := messageRow{Run: r.ID, Step: r.Step, Corp: r.CorpID, Journey: r.JourneyID, Lead: p.LeadID, Person: p.PersonID,
		Sender: p.StaffUserID, External: p.ExternalUserID, Status: MsgSending, At: ms}
	if ok, err := insertMessage(ctx, s.db, row); err != nil || !ok {
		return "already sending", err
	}
	tmpl := wecom.MsgTemplate{ChatType: "single", ExternalUserID: []string{p.ExternalUserID}, Sender: p.StaffUserID}
	if text := strings.ReplaceAll(a.Text, "{{name}}", p.Name); text != "" {
		tmpl.Text = &wecom.Text{Content: text}
	}
	for _, id := range a.Images {
		if s.media == nil {
			return "", fmt.Errorf("%w: no media store for the message's images", errPermanent)
		}
		mediaID, err := s.media.MediaID(ctx, r.CorpID, id)
		if err != nil {
			// The row is gone with it: nothing was queued, the step may retry.
			if derr := deleteMessage(ctx, s.db, r.ID, r.Step); derr != nil {
				return "", derr
			}
			return "", fmt.Errorf("image %d: %w", id, err)
		}
		tmpl.Attachments = append(tmpl.Attachments, wecom.Attachment{MsgType: "image", Image: &wecom.Image{MediaID: mediaID}})
	}
	for i, x := range a.Attachments {
		att, err := s.attachment(ctx, r.CorpID, x)
		if err != nil {
			if derr := deleteMessage(ctx, s.db, r.ID, r.Step); derr != nil {
				return "", derr
			}
			return "", fmt.Errorf("attachment %d: %w", i, err)
		}
		tmpl.Attachments = append(tmpl.Attachments, att)
	}
	if invite != nil {
		tmpl.Attachments = append(tmpl.Attachments, wecom.Attachment{MsgType: "link", Link: invite})
	}
	msgID, failed, err := s.messenger.AddMsgTemplate(ctx, r.CorpID, tmpl)
	var apiErr *wecom.APIError
	switch {
	case errors.As(err, &apiErr):
		// WeCom answered with a refusal: nothing was queued, so the step
		// may try again (the engine backs off, then gives up).
		if derr := deleteMessage(ctx, s.db, r.ID, r.Step); derr != nil {
			return "", derr
		}
		return "", err
	case err != nil:
		if uerr := setMessage(ctx, s.db, r.ID, r.Step, "", MsgUnknown, qsql.Millis(s.now())); uerr != nil {
			return "", uerr
		}
		return "unknown: " + err.Error(), nil
	case contains(failed, p.ExternalUserID):
		return "unreachable", setMessage(ctx, s.db, r.ID, r.Step, msgID, MsgUnreachable, qsql.Millis(s.now()))
	}
	return "queued " + msgID, setMessage(ctx, s.db, r.ID, r.Step, msgID, MsgQueued, qsql.Millis(s.now()))
}

// quietUntil reports whether t (in the corp's zone) is in quiet hours, and
// when they end.
func quietUntil(set MessageSettings, t time.Time) (time.Time, bool) {
	if set.QuietStart == "" || set.QuietStart == set.QuietEnd {
		return t, false
	}
	at := func(hm string, day time.Time) time.Time {
		h, _ := strconv.Atoi(hm[:2])
		m, _ := strconv.Atoi(hm[3:])
		return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, t.Location())
	}
	start, end := at(set.QuietStart, t), at(set.QuietEnd, t)
	if !start.After(end) { // within one day: [start, end)
		return end, !t.Before(start) && t.Before(end)
	}
	// Wraps midnight: [start, 24:00) ∪ [00:00, end).
	if t.Before(end) {
		return end, true
	}
	if !t.Before(start) {
		return end.AddDate(0, 0, 1), true
	}
	return t, false
}

// capUntil reports whether a message now would exceed a cap, and when the
// oldest message counting against it leaves its window. sent are the
// times (Unix ms, oldest first) of the person's messages of the last week.
func capUntil(set MessageSettings, sent []int64, now time.Time) (time.Time, bool) {
	check := func(window time.Duration, limit int) (time.Time, bool) {
		since := qsql.Millis(now.Add(-window))
		var in []int64
		for _, at := range sent {
			if at > since {
				in = append(in, at)
			}
		}
		if len(in) < limit {
			return now, false
		}
		// Fits again when enough of them have left the window.
		return time.UnixMilli(in[len(in)-limit]).Add(window), true
	}
	day, capped1 := check(24*time.Hour, set.CapDay)
	week, capped2 := check(7*24*time.Hour, set.CapWeek)
	switch {
	case capped1 && capped2:
		if week.After(day) {
			return week, true
		}
		return day, true
	case capped1:
		return day, true
	case capped2:
		return week, true
	}
	return now, false
}

// TrackMessages reads WeCom's results of the queued messages of the last
// week: sent (recorded as the person's wecom.message_received activity),
// failed because the customer left the staff member or reached WeCom's
// receiving limit, or still waiting for the staff member. It returns how
// many it settled. Run by cron on one instance at a time.
func (s *Service) TrackMessages(ctx context.Context) (int, error) {
	if s.messenger == nil {
		return 0, nil
	}
	now := s.now()
	queued, err := queuedMessages(ctx, s.db, qsql.Millis(now.Add(-7*24*time.Hour)))
	if err != nil || len(queued) == 0 {
		return 0, err
	}
	type key struct{ corp, msgid, sender string }
	byMsg := map[key][]messageRow{}
	var order []key
	for _, m := range queued {
		k := key{m.Corp, m.MsgID, m.Sender}
		if byMsg[k] == nil {
			order = append(order, k)
		}
		byMsg[k] = append(byMsg[k], m)
	}
	settled := 0
	for _, k := range order {
		status := map[string]int{}
		cursor := ""
		for {
			page, next, err := s.messenger.GroupMsgSendResult(ctx, k.corp, k.msgid, k.sender, cursor)
			if err != nil {
				return settled, err
			}
			for _, p := range page {
				status[p.ExternalUserID] = p.Status
			}
			if next == "" {
				break
			}
			cursor = next
		}
		for _, m := range byMsg[k] {
			var to string
			switch status[m.External] {
			case 1:
				to = MsgSent
			case 2:
				to = MsgNotFriend
			case 3:
				to = MsgLimit
			default:
				continue
			}
			if to == MsgSent {
				if _, err := s.leads.RecordActivities(ctx, m.Corp, []leads.ActivityIn{{PersonID: m.Person, Type: "wecom.message_received", At: now,
					Key: "journey-msg:" + m.MsgID + ":" + m.External}}); err != nil {
					return settled, err
				}
			}
			if err := settleMessage(ctx, s.db, m.Run, m.Step, to, qsql.Millis(now)); err != nil {
				return settled, err
			}
			settled++
		}
	}
	return settled, nil
}

// Media gives a stored file's WeCom media id (uploaded, or refreshed
// when its three days ran out).
type Media interface {
	MediaID(ctx context.Context, corp string, id int64) (string, error)
}

// attachment is one of a message's attachments as WeCom takes it, its
// stored file uploaded (or its upload reused) for a media id.
func (s *Service) attachment(ctx context.Context, corp string, x Attachment) (wecom.Attachment, error) {
	var mediaID string
	if x.Media > 0 {
		if s.media == nil {
			return wecom.Attachment{}, fmt.Errorf("%w: no media store for the message's files", errPermanent)
		}
		id, err := s.media.MediaID(ctx, corp, x.Media)
		if err != nil {
			return wecom.Attachment{}, err
		}
		mediaID = id
	}
	switch x.Kind {
	case "link":
		return wecom.Attachment{MsgType: "link", Link: &wecom.Link{Title: x.Title, URL: x.URL, Desc: x.Desc, PicURL: x.PicURL}}, nil
	case "miniprogram":
		return wecom.Attachment{MsgType: "miniprogram", MiniProgram: &wecom.MiniProgram{Title: x.Title, AppID: x.AppID, Page: x.Page, PicMediaID: mediaID}}, nil
	case "video":
		return wecom.Attachment{MsgType: "video", Video: &wecom.Media{MediaID: mediaID}}, nil
	case "file":
		return wecom.Attachment{MsgType: "file", File: &wecom.Media{MediaID: mediaID}}, nil
	}
	return wecom.Attachment{}, fmt.Errorf("%w: an attachment of kind %q", errPermanent, x.Kind)
}

// SetMedia gives the service the media store (images in messages).
func (s *Service) SetMedia(m Media) { s.media = m }

// Codes is what journeys use of live codes: a group code to invite to.
type Codes interface {
	Get(ctx context.Context, corp string, id int64) (*livecode.Code, error)
}

// SetCodes gives the service the live codes.
func (s *Service) SetCodes(c Codes) { s.codes = c }

// inviteLink is the card of a group code's landing page, which shows the
// customer the group's QR (switching groups as they fill).
func (s *Service) inviteLink(ctx context.Context, corp string, id int64) (*wecom.Link, error) {
	if s.codes == nil {
		return nil, fmt.Errorf("%w: no live codes to invite with", errPermanent)
	}
	c, err := s.codes.Get(ctx, corp, id)
	if err != nil {
		return nil, fmt.Errorf("%w: group code %d: %v", errPermanent, id, err)
	}
	if c.Kind != livecode.KindGroup || c.Status != livecode.StatusActive {
		return nil, fmt.Errorf("%w: code %d is not an active group code", errPermanent, id)
	}
	return &wecom.Link{Title: truncate(c.Name, 128), URL: c.LandingURL, Desc: "扫码加入群聊 · Scan to join the group"}, nil
}
