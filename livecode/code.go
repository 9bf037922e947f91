// Package livecode runs live codes (活码): channel codes (one QR over many
// staff, with schedules, daily caps and backup staff, delivered as a WeCom
// multi-person QR kept equal to the eligible staff by a reconciler, as a
// rotating link with smooth weighted round-robin decided atomically in
// Redis, or as an acquisition link), group codes and store codes. When a
// customer adds a staff member, its subscribers record the source, count the
// add and publish ContactAdded (database only), send the welcome within
// WeCom's 20 s (fast lane), and set tags and remark.
//
// Files by concern: code.go (types), validate.go, lifecycle.go (create, edit,
// status), eligibility.go (who is on duty and under cap), reconcile.go (the
// WeCom side kept in line), rotation.go (Redis counters and round-robin),
// visits.go, subscribers.go and sources.go, welcome.go, profile.go
// (onboarding), groups.go, leavers.go, stats.go, stores.go. Every SQL
// statement is in store.go: it owns the live_codes, live_code_staff,
// live_code_groups, live_code_stats, live_code_visitors, contact_sources,
// contact_relations, welcome_sends, livecode_effects, livecode_handovers and
// stores tables.
package livecode

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
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
	// Version increases with every change; an edit names the version it is based on.
	Version   int64 `json:"version"`
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
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
	GroupWelcome         *GroupWelcome `json:"group_welcome,omitempty"`
	GroupWelcomeTemplate string        `json:"group_welcome_template,omitempty"`

	// Store codes: the stores covered (none = every store of the corp) and an
	// optional radius beyond which a store is not offered.
	StoreIDs []int64 `json:"store_ids,omitempty"`
	RadiusKM float64 `json:"radius_km,omitempty"`
}

// GroupWelcome is a group code's welcome, shaped like a channel code's
// welcome ({"text": ...}). WeCom keeps it as a group welcome template.
type GroupWelcome struct {
	Text string `json:"text"`
}

// UnmarshalJSON also reads the plain string earlier versions stored.
func (g *GroupWelcome) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		g.Text = text
		return nil
	}
	type plain GroupWelcome
	return json.Unmarshal(b, (*plain)(g))
}

// text is the welcome's text, "" when there is none.
func (g *GroupWelcome) text() string {
	if g == nil {
		return ""
	}
	return g.Text
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

// TimeSlot is a daily time range on some weekdays, in the corp's zone.
type TimeSlot = configs.TimeSlot

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

// Errors.
var (
	ErrNotFound = apperr.NotFound("live code not found")
	ErrArchived = apperr.Conflict("archived", "live code is archived")
	// ErrVersion: the code changed since the version an edit was based on.
	ErrVersion = apperr.Conflict("version_conflict", "the live code was changed by someone else; reload it and edit again")
)

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
