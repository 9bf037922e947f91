package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/wecom"
)

// Graph is a journey version: its nodes, its goal and its settings. It is
// documented as a JSON Schema (journey.schema.json, served at
// /api/v1/journeys/schema) and checked by Validate when saved.
type Graph struct {
	Nodes    []Node   `json:"nodes"`
	Goal     *Filter  `json:"goal,omitempty"`
	Settings Settings `json:"settings"`
}

// Settings of a journey.
type Settings struct {
	// Reentry: never (default), after_exit (once the last run ended), or
	// after_days (ReentryDays after the last run began).
	Reentry     string `json:"reentry,omitempty"`
	ReentryDays int    `json:"reentry_days,omitempty"`
	// ExitOnSegmentLeave ends a run when its lead leaves the entry segment.
	ExitOnSegmentLeave bool `json:"exit_on_segment_leave,omitempty"`
}

// Node types.
const (
	NodeEntry     = "entry"
	NodeWait      = "wait"
	NodeCondition = "condition"
	NodeSplit     = "split"
	NodeAction    = "action"
	NodeJump      = "jump"
	NodeExit      = "exit"
)

// Node is one step. Exits name the node each of its exits leads to: "next"
// for entries, waits on time and actions; "happened" and "timeout" for a
// wait on an event; "yes" and "no" for a condition; each branch's name for a
// split. A jump's target is To.
type Node struct {
	ID    string            `json:"id"`
	Type  string            `json:"type"`
	Exits map[string]string `json:"exits,omitempty"`
	// Position on the designer's canvas.
	X float64 `json:"x,omitempty"`
	Y float64 `json:"y,omitempty"`

	Entry     *Entry  `json:"entry,omitempty"`
	Wait      *Wait   `json:"wait,omitempty"`
	Condition *Filter `json:"condition,omitempty"`
	// Cases make a condition multi-way: the first case that holds names
	// the exit, else "else".
	Cases    []Case    `json:"cases,omitempty"`
	Branches []Branch  `json:"branches,omitempty"`
	Action   *Action   `json:"action,omitempty"`
	To       string    `json:"to,omitempty"`
	cond     *compiled // Condition compiled
}

// Entry says who enters: on an activity (a WeCom add is "wecom.added",
// with code_id and channel properties), on a change of the lead (stage to
// a value), on entering a segment, or by hand and the API (manual).
type Entry struct {
	On       string `json:"on"` // activity | lead_change | segment | manual
	Activity string `json:"activity,omitempty"`
	// Properties the activity must have (code_id, channel…), compared as text.
	Properties map[string]string `json:"properties,omitempty"`
	Change     string            `json:"change,omitempty"` // a lead change kind: stage, status, fit…
	To         string            `json:"to,omitempty"`     // its new value ("" any)
	Segment    int64             `json:"segment,omitempty"`
	Tag        string            `json:"tag,omitempty"` // on tag: the tag's name
	// Above: on score, enters when the engagement score reaches it.
	Above float64 `json:"above,omitempty"`
	// On date: the corp's date field (its key) whose day, moved by
	// OffsetDays (-30: thirty days before a renewal date), is the day a
	// lead enters, at At (HH:MM in the corp's zone; 09:00 when empty).
	Field      string `json:"field,omitempty"`
	OffsetDays int    `json:"offset_days,omitempty"`
	At         string `json:"at,omitempty"`
}

// Wait holds a run: for a duration, until a time, until the next working
// window of the corp's calendar at a time of day, or for an activity with a
// timeout.
type Wait struct {
	For     string `json:"for"` // duration | until | workday | activity
	Minutes int    `json:"minutes,omitempty"`
	Until   string `json:"until,omitempty"` // RFC 3339
	At      string `json:"at,omitempty"`    // HH:MM in the corp's zone, for workday
	// Activity waited for, and how long before the timeout exit (minutes).
	Activity       string `json:"activity,omitempty"`
	TimeoutMinutes int    `json:"timeout_minutes,omitempty"`
}

// Case is one way of a multi-way condition.
type Case struct {
	Name      string `json:"name"`
	Condition Filter `json:"condition"`

	cond *compiled
}

// Branch is one way of a split, taken by Percent of people.
type Branch struct {
	Name    string `json:"name"`
	Percent int    `json:"percent"`
}

// Action kinds.
const (
	ActionStage         = "stage"
	ActionStatus        = "status"
	ActionActivity      = "activity"
	ActionSegmentAdd    = "segment_add"
	ActionSegmentRemove = "segment_remove"
	ActionWebhook       = "webhook"
	ActionScore         = "score"   // adjust the lead's engagement score by Points
	ActionInvite        = "invite"  // a message with the card of a group code's page (group QR), like message
	ActionNotify        = "notify"  // a WeCom app message to the lead's owner (or the staff member who added them)
	ActionPool          = "pool"    // move the lead to another pool
	ActionAssign        = "assign"  // give an unowned lead to a user (or by the corp's assignment rules)
	ActionTask          = "task"    // a follow-up task for the lead's owner (Text, due in DueHours)
	ActionTag           = "tag"     // add and remove the contact's WeCom tags (ids), as their staff member
	ActionMessage       = "message" // to the customer, through their staff member (WeCom's mass message, which they confirm)
)

// Action is what an action node does.
type Action struct {
	Kind     string  `json:"kind"`
	Stage    string  `json:"stage,omitempty"`
	Status   string  `json:"status,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Activity string  `json:"activity,omitempty"` // recorded for the person; scoring rules give its points
	Segment  int64   `json:"segment,omitempty"`
	URL      string  `json:"url,omitempty"`
	Secret   string  `json:"secret,omitempty"`    // HMAC-SHA256 key of the webhook's signature
	Text     string  `json:"text,omitempty"`      // a message's text; {{name}} is the person's name
	Pool     int64   `json:"pool,omitempty"`      // pool: the pool's id
	Owner    int64   `json:"owner,omitempty"`     // assign: the user (0: the corp's assignment rules)
	DueHours int     `json:"due_hours,omitempty"` // task: due this many hours after the step (24 when 0)
	Code     int64   `json:"code,omitempty"`      // invite: the group code's id
	Points   float64 `json:"points,omitempty"`    // score: points to add (negative: take)
	// Images are stored image files (console uploads) sent with a message.
	Images []int64 `json:"images,omitempty"`
	// Attachments are a message's links, mini programs, videos and files.
	Attachments []Attachment `json:"attachments,omitempty"`
	// TagsAdd and TagsRemove are WeCom tag ids.
	TagsAdd    []string `json:"tags_add,omitempty"`
	TagsRemove []string `json:"tags_remove,omitempty"`
}

// Attachment is one of a customer message's attachments beside its text
// and images: a link card, a mini program card (its cover a stored image),
// or a stored video or file.
type Attachment struct {
	Kind   string `json:"kind"`            // link | miniprogram | video | file
	Media  int64  `json:"media,omitempty"` // the stored video or file, or the mini program's cover image
	Title  string `json:"title,omitempty"`
	URL    string `json:"url,omitempty"`     // link
	Desc   string `json:"desc,omitempty"`    // link
	PicURL string `json:"pic_url,omitempty"` // link: its picture
	AppID  string `json:"appid,omitempty"`   // miniprogram
	Page   string `json:"page,omitempty"`    // miniprogram: a page path ending in .html, as WeCom requires
}

// checkAttachments checks a message's attachments against WeCom's limits
// for add_msg_template (at most 9 with the images and a group's card).
func checkAttachments(f apperr.Fields, at string, a *Action, card int) {
	if n := len(a.Images) + len(a.Attachments) + card; n > 9 {
		f.Add(at+".action.attachments", "with the images (and a group's card) are at most 9")
	}
	for i, x := range a.Attachments {
		p := fmt.Sprintf("%s.action.attachments[%d]", at, i)
		switch x.Kind {
		case "link":
			if x.Title == "" || len(x.Title) > 128 {
				f.Add(p+".title", "is required, at most 128 bytes")
			}
			if u, err := url.Parse(x.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(x.URL) > 2048 {
				f.Add(p+".url", "is an http(s) address, at most 2048 bytes")
			}
			if len(x.Desc) > 512 {
				f.Add(p+".desc", "is at most 512 bytes")
			}
		case "miniprogram":
			if x.Title == "" || len(x.Title) > 64 {
				f.Add(p+".title", "is required, at most 64 bytes")
			}
			if x.AppID == "" {
				f.Add(p+".appid", "is required")
			}
			if !strings.HasSuffix(strings.SplitN(x.Page, "?", 2)[0], ".html") {
				f.Add(p+".page", "is the mini program's page path, ending in .html (WeCom requires it)")
			}
			if x.Media <= 0 {
				f.Add(p+".media", "is the stored image shown as its cover")
			}
		case "video", "file":
			if x.Media <= 0 {
				f.Add(p+".media", "is a stored "+x.Kind)
			}
		default:
			f.Add(p+".kind", "is link, miniprogram, video or file")
		}
	}
}

var nodeID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// exitsOf names the exits a node must connect.
func (n *Node) exitsOf() []string {
	switch n.Type {
	case NodeEntry, NodeAction:
		return []string{"next"}
	case NodeWait:
		if n.Wait != nil && n.Wait.For == "activity" {
			return []string{"happened", "timeout"}
		}
		return []string{"next"}
	case NodeCondition:
		if len(n.Cases) > 0 {
			out := make([]string, 0, len(n.Cases)+1)
			for _, c := range n.Cases {
				out = append(out, c.Name)
			}
			return append(out, "else")
		}
		return []string{"yes", "no"}
	case NodeSplit:
		out := make([]string, len(n.Branches))
		for i, b := range n.Branches {
			out[i] = b.Name
		}
		return out
	}
	return nil
}

// Validate checks a graph: every node well-formed, every exit connected to
// a node that exists, every node reachable from an entry, and every loop
// through a wait. Mistakes come back as one 422 naming each node.
func (g *Graph) Validate() error {
	f := apperr.Fields{}
	byID := map[string]*Node{}
	var entries []string
	for i := range g.Nodes {
		n := &g.Nodes[i]
		at := fmt.Sprintf("nodes[%d]", i)
		if !nodeID.MatchString(n.ID) {
			f.Add(at+".id", "is a letter then letters, digits, _ or -, at most 64")
			continue
		}
		if byID[n.ID] != nil {
			f.Add(at+".id", fmt.Sprintf("%q is used twice", n.ID))
			continue
		}
		byID[n.ID] = n
		at = "nodes." + n.ID
		switch n.Type {
		case NodeEntry:
			entries = append(entries, n.ID)
			checkEntry(f, at, n.Entry)
		case NodeWait:
			checkWait(f, at, n.Wait)
		case NodeCondition:
			switch {
			case n.Condition == nil && len(n.Cases) == 0:
				f.Add(at+".condition", "is required (or cases, for more than two ways)")
			case n.Condition != nil && len(n.Cases) > 0:
				f.Add(at+".cases", "go without condition: a node is two-way or multi-way")
			case n.Condition != nil:
				if c, err := compileFilter(at+".condition", *n.Condition); err != nil {
					addErr(f, at+".condition", err)
				} else {
					n.cond = c
				}
			default:
				names := map[string]bool{"else": true}
				for j := range n.Cases {
					c := &n.Cases[j]
					cat := fmt.Sprintf("%s.cases[%d]", at, j)
					if !nodeID.MatchString(c.Name) || names[c.Name] {
						f.Add(cat+".name", "is a unique name of letters, digits, _ or - (not else)")
					}
					names[c.Name] = true
					if cc, err := compileFilter(cat+".condition", c.Condition); err != nil {
						addErr(f, cat+".condition", err)
					} else {
						c.cond = cc
					}
				}
			}
		case NodeSplit:
			total := 0
			names := map[string]bool{}
			for j, b := range n.Branches {
				if !nodeID.MatchString(b.Name) || names[b.Name] {
					f.Add(fmt.Sprintf("%s.branches[%d].name", at, j), "is a unique name of letters, digits, _ or -")
				}
				names[b.Name] = true
				if b.Percent < 1 {
					f.Add(fmt.Sprintf("%s.branches[%d].percent", at, j), "is at least 1")
				}
				total += b.Percent
			}
			if len(n.Branches) < 2 || total != 100 {
				f.Add(at+".branches", "are at least two, their percents adding up to 100")
			}
		case NodeAction:
			checkAction(f, at, n.Action)
		case NodeJump:
		case NodeExit:
		default:
			f.Add(at+".type", "is entry, wait, condition, split, action, jump or exit")
		}
	}
	if len(entries) == 0 {
		f.Add("nodes", "need at least one entry")
	}
	// Exits connected, to nodes that exist (never to an entry).
	next := map[string][]string{}
	for _, n := range byID {
		at := "nodes." + n.ID
		if n.Type == NodeJump {
			if t := byID[n.To]; t == nil || t.Type == NodeEntry {
				f.Add(at+".to", "names a node (not an entry) to jump back to")
			} else {
				next[n.ID] = append(next[n.ID], n.To)
			}
			continue
		}
		want := n.exitsOf()
		for _, e := range want {
			to := n.Exits[e]
			if to == "" {
				f.Add(at+".exits."+e, "is not connected")
				continue
			}
			if t := byID[to]; t == nil || t.Type == NodeEntry {
				f.Add(at+".exits."+e, fmt.Sprintf("leads to %q, which is not a node (or is an entry)", to))
				continue
			}
			next[n.ID] = append(next[n.ID], to)
		}
		for e := range n.Exits {
			if !contains(want, e) {
				f.Add(at+".exits."+e, "is not an exit of this node")
			}
		}
	}
	if len(f) > 0 {
		return f.Err()
	}
	// Reachable from an entry.
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, t := range next[id] {
			visit(t)
		}
	}
	for _, e := range entries {
		visit(e)
	}
	for id := range byID {
		if !seen[id] {
			f.Add("nodes."+id, "cannot be reached from an entry")
		}
	}
	// A loop must pass a wait: without one a run would spin. Walking only
	// through nodes that are not waits must find no cycle.
	state := map[string]int{} // 1 on the path, 2 done
	var cyc func(id string) bool
	cyc = func(id string) bool {
		if byID[id].Type == NodeWait {
			return false
		}
		switch state[id] {
		case 1:
			return true
		case 2:
			return false
		}
		state[id] = 1
		for _, t := range next[id] {
			if cyc(t) {
				return true
			}
		}
		state[id] = 2
		return false
	}
	for id := range byID {
		if cyc(id) {
			f.Add("nodes."+id, "is on a loop without a wait")
			break
		}
	}
	if g.Goal != nil {
		if _, err := compileFilter("goal", *g.Goal); err != nil {
			addErr(f, "goal", err)
		}
	}
	switch g.Settings.Reentry {
	case "", "never", "after_exit":
	case "after_days":
		if g.Settings.ReentryDays < 1 {
			f.Add("settings.reentry_days", "is at least 1")
		}
	default:
		f.Add("settings.reentry", "is never, after_exit or after_days")
	}
	if len(f) > 0 {
		return f.Err()
	}
	return nil
}

func addErr(f apperr.Fields, at string, err error) {
	if ae, ok := apperr.As(err); ok && len(ae.Fields) > 0 {
		for k, v := range ae.Fields {
			f.Add(k, v)
		}
		return
	}
	f.Add(at, err.Error())
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func checkEntry(f apperr.Fields, at string, e *Entry) {
	if e == nil {
		f.Add(at+".entry", "is required")
		return
	}
	switch e.On {
	case "activity":
		if e.Activity == "" {
			f.Add(at+".entry.activity", "is required")
		}
	case "lead_change":
		if e.Change == "" {
			f.Add(at+".entry.change", "is required")
		}
	case "segment":
		if e.Segment <= 0 {
			f.Add(at+".entry.segment", "is required")
		}
	case "tag":
		if e.Tag == "" {
			f.Add(at+".entry.tag", "is required")
		}
	case "score":
		if e.Above <= 0 {
			f.Add(at+".entry.above", "is a score above 0")
		}
	case "date":
		if !ownKey.MatchString(e.Field) {
			f.Add(at+".entry.field", "is the key of a date field of the corp")
		}
		if e.OffsetDays < -366 || e.OffsetDays > 366 {
			f.Add(at+".entry.offset_days", "is between -366 and 366 days")
		}
		if e.At != "" && !hhmm.MatchString(e.At) {
			f.Add(at+".entry.at", "is a time of day as 09:00")
		}
	case "manual":
	default:
		f.Add(at+".entry.on", "is activity, lead_change, score, segment, tag, date or manual")
	}
}

func checkWait(f apperr.Fields, at string, w *Wait) {
	if w == nil {
		f.Add(at+".wait", "is required")
		return
	}
	switch w.For {
	case "duration":
		if w.Minutes < 1 || w.Minutes > 366*24*60 {
			f.Add(at+".wait.minutes", "is between 1 and a year")
		}
	case "until":
		if _, err := time.Parse(time.RFC3339, w.Until); err != nil {
			f.Add(at+".wait.until", "is a time as 2026-12-07T10:00:00+08:00")
		}
	case "workday":
		if !hhmm.MatchString(w.At) {
			f.Add(at+".wait.at", "is a time of day as 10:00")
		}
	case "activity":
		if w.Activity == "" {
			f.Add(at+".wait.activity", "is required")
		}
		if w.TimeoutMinutes < 1 {
			f.Add(at+".wait.timeout_minutes", "is at least 1")
		}
	default:
		f.Add(at+".wait.for", "is duration, until, workday or activity")
	}
}

func checkAction(f apperr.Fields, at string, a *Action) {
	if a == nil {
		f.Add(at+".action", "is required")
		return
	}
	switch a.Kind {
	case ActionStage:
		if a.Stage == "" {
			f.Add(at+".action.stage", "is required")
		}
	case ActionStatus:
		if a.Status == "" {
			f.Add(at+".action.status", "is required")
		}
	case ActionActivity:
		if a.Activity == "" {
			f.Add(at+".action.activity", "is required")
		}
	case ActionSegmentAdd, ActionSegmentRemove:
		if a.Segment <= 0 {
			f.Add(at+".action.segment", "is required")
		}
	case ActionWebhook:
		if !validWebhookURL(a.URL) {
			f.Add(at+".action.url", "is an http or https URL")
		}
		if len(a.Secret) < 16 {
			f.Add(at+".action.secret", "is at least 16 characters")
		}
	case ActionScore:
		if a.Points == 0 || a.Points > 1000 || a.Points < -1000 {
			f.Add(at+".action.points", "is between -1000 and 1000, not 0")
		}
	case ActionInvite:
		if a.Code <= 0 {
			f.Add(at+".action.code", "is a group code's id")
		}
		checkAttachments(f, at, a, 1)
		if len(a.Text) > wecom.MaxMsgText {
			f.Add(at+".action.text", fmt.Sprintf("is at most %d bytes", wecom.MaxMsgText))
		}
	case ActionNotify:
		if strings.TrimSpace(a.Text) == "" || len(a.Text) > 2048 {
			f.Add(at+".action.text", "is required, at most 2048 bytes")
		}
	case ActionPool:
		if a.Pool <= 0 {
			f.Add(at+".action.pool", "is required")
		}
	case ActionTask:
		if strings.TrimSpace(a.Text) == "" || len([]rune(a.Text)) > 255 {
			f.Add(at+".action.text", "is the task, at most 255 characters")
		}
		if a.DueHours < 0 || a.DueHours > 24*366 {
			f.Add(at+".action.due_hours", "is between 0 (a day) and a year of hours")
		}
	case ActionAssign:
		if a.Owner < 0 {
			f.Add(at+".action.owner", "is a user's id, or 0 for the corp's assignment rules")
		}
	case ActionTag:
		if len(a.TagsAdd)+len(a.TagsRemove) == 0 {
			f.Add(at+".action.tags_add", "or tags_remove names at least one tag")
		}
	case ActionMessage:
		if strings.TrimSpace(a.Text) == "" && len(a.Images)+len(a.Attachments) == 0 || len(a.Text) > wecom.MaxMsgText {
			f.Add(at+".action.text", fmt.Sprintf("is required (or attachments), at most %d bytes", wecom.MaxMsgText))
		}
		checkAttachments(f, at, a, 0)
	default:
		f.Add(at+".action.kind", "is message, invite, notify, task, tag, stage, status, score, activity, pool, assign, segment_add, segment_remove or webhook")
	}
}

// compiledGraph is a published version ready to run.
type compiledGraph struct {
	Graph
	byID map[string]*Node
	goal *compiled
}

func compileGraph(raw string) (*compiledGraph, error) {
	var g Graph
	if err := json.Unmarshal([]byte(raw), &g); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	cg := &compiledGraph{Graph: g, byID: map[string]*Node{}}
	for i := range cg.Nodes {
		cg.byID[cg.Nodes[i].ID] = &cg.Nodes[i]
	}
	if g.Goal != nil {
		c, err := compileFilter("goal", *g.Goal)
		if err != nil {
			return nil, err
		}
		cg.goal = c
	}
	return cg, nil
}

// graphCache holds compiled published versions: they never change.
type graphCache struct{ m sync.Map }

type graphKey struct{ journey, version int64 }

// way is the exit a condition node sends a person to now, and why.
func (s *Service) way(ctx context.Context, n *Node, corp string, p *leads.Profile) (string, string) {
	if n.cond != nil {
		ok := s.holds(ctx, n.cond, corp, p)
		return map[bool]string{true: "yes", false: "no"}[ok], fmt.Sprintf("%s is %v", n.cond.source, ok)
	}
	for _, c := range n.Cases {
		if s.holds(ctx, c.cond, corp, p) {
			return c.Name, c.cond.source + " holds"
		}
	}
	return "else", "no case holds"
}
