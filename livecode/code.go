// Package livecode runs live codes (活码), starting with channel codes: one QR
// over many staff, with schedules, daily caps and backup staff, delivered as a
// WeCom multi-person QR (kept equal to the eligible staff by a reconciler) or
// as a rotating link (smooth weighted round-robin decided atomically in
// Redis). When a customer adds a staff member through a code, it onboards
// them: welcome message within WeCom's 20 s, tags, remark, source record,
// counting, and a durable ContactAdded event. It owns the live_codes,
// live_code_staff, contact_sources, welcome_sends, live_code_stats and
// domain_events tables.
package livecode

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/wecom"
)

// Code kinds, delivery modes and statuses.
const (
	KindChannel = "channel"
	KindGroup   = "group"

	ModeWeComQR  = "wecom_qr"         // one multi-person contact way; WeCom picks among its users
	ModeRotating = "rotating"         // a stable landing page; Qiflow picks the staff member per visit
	ModeJoinWay  = "join_way"         // group code: one WeCom join way over the first groups not yet full
	ModeLink     = "acquisition_link" // a WeCom customer-acquisition link over the eligible staff, for ads and SMS

	StatusActive   = "active"
	StatusPaused   = "paused"
	StatusArchived = "archived"
)

// Code is a live code.
type Code struct {
	ID          int64       `json:"id"`
	CorpID      string      `json:"corp_id"`
	Kind        string      `json:"kind"`
	Slug        string      `json:"slug"`
	Name        string      `json:"name"`
	Channel     string      `json:"channel"`
	Mode        string      `json:"mode"`
	Status      string      `json:"status"`
	Settings    Settings    `json:"settings"`
	Staff       []CodeStaff `json:"staff"`
	ConfigID    string      `json:"config_id,omitempty"`
	QRCode      string      `json:"wecom_qr_code,omitempty"`
	WeComUsers  []string    `json:"wecom_users,omitempty"` // the multi-person way's users as last set
	OwnerUserID int64       `json:"owner_user_id"`
	LandingURL  string      `json:"landing_url,omitempty"`
	CreatedAt   int64       `json:"created_at"`
	UpdatedAt   int64       `json:"updated_at"`
}

// CodeStaff is a staff member on a code.
type CodeStaff struct {
	UserID   string `json:"userid"`
	Weight   int    `json:"weight"`    // rotating links only; default 1
	DailyCap int    `json:"daily_cap"` // adds a day through this code; 0 = no cap
	Backup   bool   `json:"backup"`    // used only when nobody else is eligible
	State    string `json:"state,omitempty"`
	ConfigID string `json:"config_id,omitempty"` // single-person way (rotating)
	QRCode   string `json:"qr_code,omitempty"`
}

// Settings are a code's behaviour, stored as JSON.
type Settings struct {
	Tags                []string       `json:"tags,omitempty"` // corp tag ids to mark
	RemarkTemplate      string         `json:"remark_template,omitempty"`
	DescriptionTemplate string         `json:"description_template,omitempty"`
	Welcome             Welcome        `json:"welcome"`
	Schedule            Schedule       `json:"schedule,omitempty"`
	SkipVerify          string         `json:"skip_verify,omitempty"` // always (default) | never | window
	SkipVerifyWindow    *TimeSlot      `json:"skip_verify_window,omitempty"`
	ValidFrom           *time.Time     `json:"valid_from,omitempty"`
	ValidUntil          *time.Time     `json:"valid_until,omitempty"`
	StaffDailyCaps      map[string]int `json:"staff_daily_caps,omitempty"` // caps on adds through any code, by userid
	// Successor takes over the customers and groups of the code's staff who leave the company.
	Successor   string `json:"successor,omitempty"`
	Description string `json:"description,omitempty"`
	Note        string `json:"note,omitempty"` // shown on the landing page

	// Group codes: the groups in order, each until it reaches its threshold.
	Groups         []GroupEntry `json:"groups,omitempty"`
	AutoCreateRoom bool         `json:"auto_create_room,omitempty"` // WeCom opens new rooms when all are full
	RoomBaseName   string       `json:"room_base_name,omitempty"`
	RoomBaseID     int          `json:"room_base_id,omitempty"`
	// ManualGroups are groups Qiflow cannot manage through the API: an
	// uploaded group QR image with its own cap (visitors shown it) and expiry
	// (WeChat group QRs last 7 days). They are shown, in order, when no
	// managed group is open.
	ManualGroups []ManualGroup `json:"manual_groups,omitempty"`
	// GroupWelcome is the group code's welcome (a WeCom group welcome template);
	// GroupWelcomeTemplate is the template id Qiflow keeps for it.
	GroupWelcome         string `json:"group_welcome,omitempty"`
	GroupWelcomeTemplate string `json:"group_welcome_template,omitempty"`

	// Store codes: the stores covered (none = every store of the corp) and an
	// optional radius beyond which a store is not offered.
	StoreIDs []int64 `json:"store_ids,omitempty"`
	RadiusKM float64 `json:"radius_km,omitempty"`
}

// GroupEntry is a customer group of a group code.
type GroupEntry struct {
	ChatID    string `json:"chat_id"`
	Threshold int    `json:"threshold,omitempty"` // members at which the next group takes over; default 200
}

// ManualGroup is an uploaded group QR.
type ManualGroup struct {
	Name      string    `json:"name"`
	FileID    int64     `json:"file_id"` // a stored image (POST /api/v1/media, kind image)
	Cap       int       `json:"cap,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// maxQRJoin is WeCom's limit: joining by QR stops at 200 members.
const maxQRJoin = 200

// Welcome is the welcome message: a default and variants by time slot.
type Welcome struct {
	Text        string           `json:"text,omitempty"`
	Attachments []Attachment     `json:"attachments,omitempty"`
	Variants    []WelcomeVariant `json:"variants,omitempty"`
	// InviteGroupCode adds a link card inviting to one of our group codes.
	InviteGroupCode int64 `json:"invite_group_code,omitempty"`
}

// WelcomeVariant replaces the default inside its slot.
type WelcomeVariant struct {
	Slot        TimeSlot     `json:"slot"`
	Text        string       `json:"text,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a WeCom attachment, or one made from a file Qiflow keeps
// (file_id): its media id is filled in at send time, uploading the file again
// when WeCom's copy (3 days) is too old. For a mini-program, file_id is the cover.
type Attachment struct {
	wecom.Attachment
	FileID int64 `json:"file_id,omitempty"`
}

// TimeSlot is a daily time range on some weekdays ("mon".."sun"; empty = every day).
type TimeSlot struct {
	Days  []string `json:"days,omitempty"`
	Start string   `json:"start"` // HH:MM
	End   string   `json:"end"`   // HH:MM, exclusive
}

// Schedule says who is on duty when: slots per weekday, each with its staff
// (empty = every non-backup staff member). An empty schedule means always.
// With UseCalendar, holidays have no slots and make-up workdays use Monday's.
type Schedule struct {
	Slots       []ScheduleSlot `json:"slots,omitempty"`
	UseCalendar bool           `json:"use_calendar,omitempty"`
}

type ScheduleSlot struct {
	TimeSlot
	Staff []string `json:"staff,omitempty"`
}

// ValidationError lists the fields that are wrong.
type ValidationError struct{ Fields map[string]string }

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for k, v := range e.Fields {
		parts = append(parts, k+": "+v)
	}
	return "invalid live code: " + strings.Join(parts, "; ")
}

// Errors.
var (
	ErrNotFound = errors.New("live code not found")
	ErrArchived = errors.New("live code is archived")
)

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// placeholders a template may use.
var placeholderRe = regexp.MustCompile(`\{[^{}]*\}`)

var knownPlaceholders = map[string]bool{"{customer_name}": true, "{staff_name}": true, "{channel}": true, "{code_name}": true, "{date}": true}

// Render fills a template's placeholders.
func Render(tpl string, v TemplateVars) string {
	return strings.NewReplacer("{customer_name}", v.CustomerName, "{staff_name}", v.StaffName, "{channel}", v.Channel,
		"{code_name}", v.CodeName, "{date}", v.Date).Replace(tpl)
}

// TemplateVars are the values templates can use.
type TemplateVars struct {
	CustomerName, StaffName, Channel, CodeName, Date string
}

func checkTemplate(field, tpl string, maxRunes int, errs map[string]string) {
	for _, p := range placeholderRe.FindAllString(tpl, -1) {
		if !knownPlaceholders[p] {
			errs[field] = fmt.Sprintf("unknown placeholder %s (use {customer_name}, {staff_name}, {channel}, {code_name}, {date})", p)
			return
		}
	}
	if maxRunes > 0 {
		// A long customer name is cut at send time; the fixed text alone must fit.
		fixed := Render(tpl, TemplateVars{})
		if utf8.RuneCountInString(fixed) > maxRunes {
			errs[field] = fmt.Sprintf("renders to more than %d characters", maxRunes)
		}
	}
}

func parseSlot(s TimeSlot) (start, end int, days map[time.Weekday]bool, err error) {
	spans, err := configs.ParseSpans([]string{s.Start + "-" + s.End})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%s-%s is not a valid HH:MM time range", s.Start, s.End)
	}
	days = map[time.Weekday]bool{}
	for _, d := range s.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return 0, 0, nil, fmt.Errorf("unknown weekday %q (use mon..sun)", d)
		}
		days[wd] = true
	}
	return spans[0].Start, spans[0].End, days, nil
}

// inSlot reports whether local time t falls in the slot; weekday overrides the
// day of the week (make-up workdays count as Monday).
func inSlot(s TimeSlot, t time.Time, weekday time.Weekday) bool {
	start, end, days, err := parseSlot(s)
	if err != nil {
		return false
	}
	if len(days) > 0 && !days[weekday] {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= start && m < end
}

func validateAttachments(field string, atts []Attachment, errs map[string]string) {
	if len(atts) > 9 {
		errs[field] = "at most 9 attachments"
		return
	}
	for i, a := range atts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if a.FileID > 0 {
			// Filled in at send time; the sub-object only needs to exist.
			switch a.MsgType {
			case "image", "video", "file", "miniprogram":
				continue
			}
		}
		switch a.MsgType {
		case "image":
			if a.Image == nil || (a.Image.MediaID == "" && a.Image.PicURL == "") {
				errs[f] = "image needs media_id or pic_url"
			}
		case "link":
			if a.Link == nil || a.Link.Title == "" || a.Link.URL == "" {
				errs[f] = "link needs title and url"
			} else if len(a.Link.Title) > 128 || len(a.Link.Desc) > 512 {
				errs[f] = "link title is at most 128 bytes and desc 512"
			}
		case "miniprogram":
			if a.MiniProgram == nil || a.MiniProgram.Title == "" || a.MiniProgram.AppID == "" || a.MiniProgram.Page == "" || a.MiniProgram.PicMediaID == "" {
				errs[f] = "miniprogram needs title, appid, page and pic_media_id"
			}
		case "video", "file":
			m := a.Video
			if a.MsgType == "file" {
				m = a.File
			}
			if m == nil || m.MediaID == "" {
				errs[f] = a.MsgType + " needs media_id"
			}
		default:
			errs[f] = "msgtype must be image, link, miniprogram, video or file"
		}
	}
}

// validate checks a code's own fields (staff and tags are checked against the
// directory by the service).
func (c *Code) validate() map[string]string {
	errs := map[string]string{}
	if strings.TrimSpace(c.Name) == "" {
		errs["name"] = "is required"
	} else if utf8.RuneCountInString(c.Name) > 100 {
		errs["name"] = "is at most 100 characters"
	}
	if utf8.RuneCountInString(c.Channel) > 64 {
		errs["channel"] = "is at most 64 characters"
	}
	switch c.Mode {
	case ModeWeComQR, ModeRotating, ModeLink:
	case ModeJoinWay:
		c.validateGroups(errs)
		return errs
	case ModeStores:
		if strings.TrimSpace(c.Name) == "" {
			errs["name"] = "is required"
		}
		if c.Settings.RadiusKM < 0 {
			errs["settings.radius_km"] = "must not be negative"
		}
		if len(c.Staff) > 0 {
			errs["staff"] = "store codes list stores, not staff"
		}
		return errs
	default:
		errs["mode"] = "must be wecom_qr, rotating, acquisition_link, join_way or stores"
	}
	if len(c.Staff) == 0 {
		errs["staff"] = "needs at least one staff member"
	}
	if len(c.Staff) > 100 {
		errs["staff"] = "at most 100 staff members (WeCom's limit for a contact way)"
	}
	seen := map[string]bool{}
	nonBackup := 0
	for i, s := range c.Staff {
		f := fmt.Sprintf("staff[%d]", i)
		switch {
		case s.UserID == "":
			errs[f+".userid"] = "is required"
		case seen[s.UserID]:
			errs[f+".userid"] = "is listed twice"
		case s.Weight < 0:
			errs[f+".weight"] = "must not be negative"
		case s.DailyCap < 0:
			errs[f+".daily_cap"] = "must not be negative"
		}
		seen[s.UserID] = true
		if !s.Backup {
			nonBackup++
		}
	}
	if len(c.Staff) > 0 && nonBackup == 0 {
		errs["staff"] = "needs at least one staff member who is not a backup"
	}
	for u, cap := range c.Settings.StaffDailyCaps {
		if cap < 0 {
			errs["settings.staff_daily_caps."+u] = "must not be negative"
		}
	}
	st := c.Settings
	checkTemplate("settings.remark_template", st.RemarkTemplate, 20, errs)
	checkTemplate("settings.description_template", st.DescriptionTemplate, 150, errs)
	checkTemplate("settings.welcome.text", st.Welcome.Text, 0, errs)
	if len(st.Welcome.Text) > 4000 {
		errs["settings.welcome.text"] = "is at most 4000 bytes"
	}
	validateAttachments("settings.welcome.attachments", st.Welcome.Attachments, errs)
	for i, v := range st.Welcome.Variants {
		f := fmt.Sprintf("settings.welcome.variants[%d]", i)
		if _, _, _, err := parseSlot(v.Slot); err != nil {
			errs[f+".slot"] = err.Error()
		}
		checkTemplate(f+".text", v.Text, 0, errs)
		if v.Text == "" && len(v.Attachments) == 0 {
			errs[f] = "needs text or attachments"
		}
		validateAttachments(f+".attachments", v.Attachments, errs)
	}
	type span struct {
		start, end int
		days       map[time.Weekday]bool
	}
	var spans []span
	for i, s := range st.Schedule.Slots {
		f := fmt.Sprintf("settings.schedule.slots[%d]", i)
		start, end, days, err := parseSlot(s.TimeSlot)
		if err != nil {
			errs[f] = err.Error()
			continue
		}
		for _, u := range s.Staff {
			if !seen[u] {
				errs[f+".staff"] = u + " is not one of the code's staff"
			}
		}
		// Slots that share a day must not overlap.
		for j, o := range spans {
			shareDay := len(days) == 0 || len(o.days) == 0
			for d := range days {
				shareDay = shareDay || o.days[d]
			}
			if shareDay && start < o.end && o.start < end {
				errs[f] = fmt.Sprintf("overlaps settings.schedule.slots[%d]", j)
			}
		}
		spans = append(spans, span{start, end, days})
	}
	if st.Schedule.UseCalendar && len(st.Schedule.Slots) == 0 {
		errs["settings.schedule.slots"] = "use_calendar needs at least one slot"
	}
	switch st.SkipVerify {
	case "", "always", "never":
	case "window":
		if st.SkipVerifyWindow == nil {
			errs["settings.skip_verify_window"] = "is required with skip_verify window"
		} else if _, _, _, err := parseSlot(*st.SkipVerifyWindow); err != nil {
			errs["settings.skip_verify_window"] = err.Error()
		}
	default:
		errs["settings.skip_verify"] = "must be always, never or window"
	}
	if st.ValidFrom != nil && st.ValidUntil != nil && !st.ValidUntil.After(*st.ValidFrom) {
		errs["settings.valid_until"] = "must be after valid_from"
	}
	return errs
}

func (c *Code) validateGroups(errs map[string]string) {
	if strings.TrimSpace(c.Name) == "" {
		errs["name"] = "is required"
	}
	st := c.Settings
	if len(st.Groups) == 0 && len(st.ManualGroups) == 0 {
		errs["settings.groups"] = "needs at least one group (or manual group)"
	}
	for i, mg := range st.ManualGroups {
		f := fmt.Sprintf("settings.manual_groups[%d]", i)
		switch {
		case mg.FileID == 0:
			errs[f+".file_id"] = "is required: upload the group QR image first"
		case mg.ExpiresAt.IsZero():
			errs[f+".expires_at"] = "is required (WeChat group QRs expire after 7 days)"
		case mg.Cap < 0:
			errs[f+".cap"] = "must not be negative"
		}
	}
	seen := map[string]bool{}
	for i, g := range st.Groups {
		f := fmt.Sprintf("settings.groups[%d]", i)
		switch {
		case g.ChatID == "":
			errs[f+".chat_id"] = "is required"
		case seen[g.ChatID]:
			errs[f+".chat_id"] = "is listed twice"
		case g.Threshold < 0 || g.Threshold > maxQRJoin:
			errs[f+".threshold"] = "must be between 1 and 200 (WeCom stops QR joins at 200)"
		}
		seen[g.ChatID] = true
	}
	if utf8.RuneCountInString(st.RoomBaseName) > 40 {
		errs["settings.room_base_name"] = "is at most 40 characters"
	}
	if len(st.GroupWelcome) > 4000 {
		errs["settings.group_welcome"] = "is at most 4000 bytes"
	}
	if st.AutoCreateRoom && st.RoomBaseName == "" {
		errs["settings.room_base_name"] = "is required with auto_create_room"
	}
	if len(c.Staff) > 0 {
		errs["staff"] = "group codes list groups, not staff"
	}
}
