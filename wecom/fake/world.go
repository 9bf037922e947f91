// Package fake is a fake WeCom: it serves the API endpoints Qiflow's client
// uses with WeCom's validation and error codes, keeps a small world (staff,
// customers, contact ways, join ways, groups, tags, messages), plays customers
// (scan, add, delete, join, leave) by posting correctly encrypted callbacks,
// and injects faults on demand. Tests, the sandbox and benchmarks use it.
package fake

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/qiflow/qiflow/wecom"
)

// World is everything the fake knows; it is saved as JSON so the sandbox
// survives a restart.
type World struct {
	Seq   int64            `json:"seq"`
	Corps map[string]*Corp `json:"corps"`
}

// Corp is one fake corp with its app.
type Corp struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Secret      string `json:"secret"`
	AgentID     int    `json:"agent_id"`
	Token       string `json:"token"`
	AESKey      string `json:"aes_key"`
	CallbackURL string `json:"callback_url"`

	// NoCustomerContact lists staff without the customer-contact permission
	// (客户联系): WeCom refuses them on contact ways and links (41054).
	NoCustomerContact []string `json:"no_customer_contact,omitempty"`

	Departments []wecom.Department         `json:"departments"`
	Staff       map[string]*wecom.Staff    `json:"staff"`
	Customers   map[string]*CustomerRecord `json:"customers"`
	TagGroups   []*wecom.TagGroup          `json:"tag_groups"`
	// StrategyTagGroups are the rule groups' tags (get_strategy_tag_list).
	StrategyTagGroups []*wecom.TagGroup            `json:"strategy_tag_groups,omitempty"`
	ContactWays       map[string]*wecom.ContactWay `json:"contact_ways"`
	// WayCreated is when each contact way was made (unix); a way without
	// one counts as made long ago (listed only with an early start_time).
	WayCreated map[string]int64          `json:"way_created,omitempty"`
	JoinWays   map[string]*wecom.JoinWay `json:"join_ways"`
	Groups     map[string]*Group         `json:"groups"`
	Welcome    map[string]*WelcomeCode   `json:"welcome_codes"`
	Messages   []Message                 `json:"messages"`
	Media      map[string]int64          `json:"media"` // media id → uploaded at (unix)
	Links      map[string]*Link          `json:"acquisition_links"`
	// Transfers records resigned-staff handovers; RefuseTransfer lists
	// customers who will refuse one (their transfer_fail comes later).
	Transfers []Transfer `json:"transfers,omitempty"`
	// GroupWelcome holds group welcome templates by id.
	GroupWelcome map[string]string `json:"group_welcome,omitempty"`
	// GroupsTaken counts the groups of one owner handed to a new owner per
	// China day ("old>new>2026-11-24"): WeCom allows 300.
	GroupsTaken    map[string]int  `json:"groups_taken,omitempty"`
	RefuseTransfer map[string]bool `json:"refuse_transfer,omitempty"`
	// GroupMsgs are the mass messages (add_msg_template) by msgid;
	// Received is when each customer received one (the receiving limit's
	// count); GroupMsgRule is the corp's limit (GroupMsgRuleMonth if "").
	GroupMsgs    map[string]*GroupMsg `json:"group_msgs,omitempty"`
	Received     map[string][]int64   `json:"group_msgs_received,omitempty"`
	GroupMsgRule string               `json:"group_msg_rule,omitempty"`
}

// Transfer is one customer handed from a staff member who left to a successor.
type Transfer struct {
	ExternalUserID string `json:"external_userid"`
	From           string `json:"from"`
	To             string `json:"to"`
	// Status as resigned/transfer_result reports it: 1 taken over,
	// 2 waiting, 3 refused by the customer, 4 the successor is full.
	Status       int   `json:"status"`
	TakeoverTime int64 `json:"takeover_time,omitempty"`
}

// Link is a customer-acquisition link.
type Link struct {
	ID         string   `json:"link_id"`
	Name       string   `json:"link_name"`
	URL        string   `json:"url"`
	Users      []string `json:"users"`
	SkipVerify bool     `json:"skip_verify"`
}

// CustomerRecord is an external contact and the staff members who follow it.
type CustomerRecord struct {
	Contact wecom.ExternalContact        `json:"contact"`
	Follows map[string]*wecom.FollowUser `json:"follows"` // by staff userid; deleted ones removed
}

// Group is a customer group chat.
type Group struct {
	Chat    wecom.GroupChat `json:"chat"`
	Version int             `json:"version"`
}

// WelcomeCode is issued with an add and is valid 20 s, once.
type WelcomeCode struct {
	UserID         string `json:"userid"`
	ExternalUserID string `json:"external_userid"`
	IssuedAt       int64  `json:"issued_at_ms"`
	Used           bool   `json:"used"`
}

// Message is something the corp sent: a welcome message or an app message.
type Message struct {
	Kind           string             `json:"kind"` // welcome | app | dropped (an app message over WeCom's per-person limits) | groupmsg (a mass message a customer received)
	UserID         string             `json:"userid"`
	ExternalUserID string             `json:"external_userid,omitempty"`
	Text           string             `json:"text"`
	Attachments    []wecom.Attachment `json:"attachments,omitempty"`
	SentAt         int64              `json:"sent_at_ms"`
}

func newCorp(id, name, secret string, agentID int, token, aesKey string) *Corp {
	return &Corp{
		ID: id, Name: name, Secret: secret, AgentID: agentID, Token: token, AESKey: aesKey,
		Staff: map[string]*wecom.Staff{}, Customers: map[string]*CustomerRecord{},
		ContactWays: map[string]*wecom.ContactWay{}, JoinWays: map[string]*wecom.JoinWay{},
		Groups: map[string]*Group{}, Welcome: map[string]*WelcomeCode{}, Media: map[string]int64{}, Links: map[string]*Link{},
	}
}

// CorpSpec describes a corp to add to the world.
type CorpSpec struct {
	ID, Name, Secret, Token, AESKey string
	AgentID                         int
	CallbackURL                     string
}

// SandboxCorpID is the demo corp's id.
const SandboxCorpID = "wwqiflowsandbox01"

// SandboxCorp is the demo corp of the sandbox and the embedded default.
var SandboxCorp = CorpSpec{
	ID:      SandboxCorpID,
	Name:    "Qiflow Sandbox Co.",
	Secret:  "sandbox-secret-not-for-production",
	Token:   "sandboxtoken",
	AESKey:  "cWlmbG93LXNhbmRib3gtYWVzLWtleS0zMi1ieXRlcyE",
	AgentID: 1000002,
}

// seedDemo fills a corp with departments, staff, tags and a few customers
// who already follow staff, so an import has something to import.
func seedDemo(c *Corp, next func(prefix string) string) {
	c.Departments = []wecom.Department{
		{ID: 1, Name: "总部 Headquarters", ParentID: 0, Order: 1},
		{ID: 2, Name: "销售部 Sales", ParentID: 1, Order: 2},
		{ID: 3, Name: "客服部 Customer Service", ParentID: 1, Order: 3},
		{ID: 4, Name: "门店 Stores", ParentID: 1, Order: 4},
	}
	staff := []struct {
		id, name string
		dept     int64
	}{
		{"zhangsan", "张三 Zhang San", 2}, {"lisi", "李四 Li Si", 2}, {"wangwu", "王五 Wang Wu", 3},
		{"zhaoliu", "赵六 Zhao Liu", 3}, {"sunqi", "孙七 Sun Qi", 4}, {"zhouba", "周八 Zhou Ba", 4},
		{"wujiu", "吴九 Wu Jiu", 1}, // staff without the customer-contact permission
	}
	for i, s := range staff {
		c.Staff[s.id] = &wecom.Staff{UserID: s.id, Name: s.name, Status: 1, Department: []int64{s.dept}, MainDepartment: s.dept,
			Mobile: fmt.Sprintf("1380000%04d", i+1), Email: s.id + "@sandbox.example"}
	}
	c.NoCustomerContact = []string{"wujiu"}
	c.TagGroups = []*wecom.TagGroup{
		{GroupID: next("etg"), GroupName: "客户等级 Level", Order: 1, Tags: []wecom.CorpTag{
			{ID: next("et"), Name: "A", Order: 1}, {ID: next("et"), Name: "B", Order: 2}, {ID: next("et"), Name: "C", Order: 3}}},
		{GroupID: next("etg"), GroupName: "来源 Source", Order: 2, Tags: []wecom.CorpTag{
			{ID: next("et"), Name: "海报 Poster", Order: 1}, {ID: next("et"), Name: "门店 Store", Order: 2}}},
	}
	for i, name := range []string{"陈一 Chen Yi", "林二 Lin Er", "黄三 Huang San"} {
		ext := next("wm")
		userid := staff[i].id
		c.Customers[ext] = &CustomerRecord{
			Contact: wecom.ExternalContact{ExternalUserID: ext, Name: name, Type: 1, Gender: 1 + i%2},
			Follows: map[string]*wecom.FollowUser{userid: {UserID: userid, CreateTime: 1767225600 + int64(i)*86400, AddWay: 1}},
		}
	}
}

// canContact says whether a staff member has the customer-contact permission.
func (c *Corp) canContact(userID string) bool { return !slices.Contains(c.NoCustomerContact, userID) }

func (c *Corp) staffIDs() []string {
	ids := make([]string, 0, len(c.Staff))
	for id := range c.Staff {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// findAnyTag finds a corp or rule-group tag (both can be marked on a contact).
func (c *Corp) findAnyTag(id string) (*wecom.TagGroup, int) {
	if g, i := c.findTag(id); g != nil {
		return g, i
	}
	for _, g := range c.StrategyTagGroups {
		for i, t := range g.Tags {
			if t.ID == id {
				return g, i
			}
		}
	}
	return nil, -1
}

// findTag finds a corp tag (the corp-tag APIs know no rule-group tags).
func (c *Corp) findTag(id string) (*wecom.TagGroup, int) {
	for _, g := range c.TagGroups {
		for i, t := range g.Tags {
			if t.ID == id {
				return g, i
			}
		}
	}
	return nil, -1
}

func saveWorld(path string, w *World) error {
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loadWorld(path string) (*World, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w World
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("sandbox world %s: %w", path, err)
	}
	if w.Corps == nil {
		w.Corps = map[string]*Corp{}
	}
	return &w, nil
}
