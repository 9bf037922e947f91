package fake

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/qiflow/qiflow/wecom"
)

// GroupMsg is an enterprise mass message (企业群发) made by
// add_msg_template. WeCom only queues it: each staff member confirms it in
// their app (ConfirmGroupMsg), and only then does it reach their customers,
// each within the customer's receiving limit.
type GroupMsg struct {
	ID          string             `json:"msgid"`
	ChatType    string             `json:"chat_type"`
	Text        string             `json:"text"`
	Attachments []wecom.Attachment `json:"attachments,omitempty"`
	CreatedAt   int64              `json:"created_at_ms"`
	Sends       []GroupMsgSend     `json:"sends"`
}

// GroupMsgSend is one customer's copy, as get_groupmsg_send_result reports
// it: Status 0 not sent yet, 1 sent, 2 failed (not the staff member's
// customer any more), 3 failed (the customer reached the receiving limit).
type GroupMsgSend struct {
	UserID         string `json:"userid"`
	ExternalUserID string `json:"external_userid"`
	Status         int    `json:"status"`
	SendTime       int64  `json:"send_time,omitempty"` // unix seconds
}

// Receiving limits of mass messages per customer, as the admin sets them in
// 群发助手 → 设置群发规则: by default as many a month as the month has days;
// or seven a week; or one a day.
const (
	GroupMsgRuleMonth = "month"
	GroupMsgRuleWeek  = "week"
	GroupMsgRuleDay   = "day"
)

// addMsgTemplateRequest is externalcontact/add_msg_template.
type addMsgTemplateRequest struct {
	ChatType       string              `json:"chat_type"`
	ExternalUserID []string            `json:"external_userid"`
	ChatIDList     []string            `json:"chat_id_list"`
	TagFilter      *tagFilterRequest   `json:"tag_filter"`
	Sender         string              `json:"sender"`
	AllowSelect    bool                `json:"allow_select"`
	Text           *textRequest        `json:"text"`
	Attachments    []attachmentRequest `json:"attachments"`
}

type tagFilterRequest struct {
	GroupList []struct {
		TagList []string `json:"tag_list"`
	} `json:"group_list"`
}

// Limits of add_msg_template.
const (
	maxMsgCustomers   = 10000
	maxMsgText        = 4000 // bytes
	maxMsgAttachments = 9
)

func addMsgTemplate(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req addMsgTemplateRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	switch req.ChatType {
	case "", "single":
	case "group":
		return nil, errf(codeInvalidParam, "chat_type group: the fake WeCom only queues messages to customers (single)")
	default:
		return nil, errf(codeInvalidParam, "invalid chat_type")
	}
	if len(req.ExternalUserID) > maxMsgCustomers {
		return nil, errf(codeInvalidParam, "external_userid exceeds %d", maxMsgCustomers)
	}
	if req.TagFilter != nil {
		return nil, errf(codeInvalidParam, "tag_filter: the fake WeCom takes external_userid lists")
	}
	if len(req.ExternalUserID) == 0 && req.Sender == "" {
		return nil, errf(codeInvalidParam, "external_userid or sender is required")
	}
	if req.Sender != "" && c.Staff[req.Sender] == nil {
		return nil, errf(codeUnknownUser, "invalid sender %s", req.Sender)
	}
	text := ""
	if req.Text != nil {
		text = req.Text.Content
	}
	if len(text) > maxMsgText {
		return nil, errf(codeInvalidParam, "text.content exceeds %d bytes", maxMsgText)
	}
	if text == "" && len(req.Attachments) == 0 {
		return nil, errf(codeInvalidParam, "text and attachments both empty")
	}
	if len(req.Attachments) > maxMsgAttachments {
		return nil, errf(codeInvalidParam, "more than %d attachments", maxMsgAttachments)
	}
	atts := make([]wecom.Attachment, len(req.Attachments))
	for i, a := range req.Attachments {
		atts[i] = a.world()
		if e := validateAttachment(c, a.world()); e != nil {
			return nil, e
		}
	}
	// Each customer's copy goes to one staff member who follows them: the
	// sender when given, else the one who last chatted (the fake: the
	// earliest follower). Customers nobody here follows are the fail_list.
	msg := &GroupMsg{ID: f.nextID("msg"), ChatType: "single", Text: text, Attachments: atts, CreatedAt: f.now().UnixMilli()}
	failList := []string{}
	for _, ext := range req.ExternalUserID {
		staff := followerOf(c, ext, req.Sender)
		if staff == "" {
			failList = append(failList, ext)
			continue
		}
		msg.Sends = append(msg.Sends, GroupMsgSend{UserID: staff, ExternalUserID: ext})
	}
	if len(msg.Sends) == 0 {
		return nil, errf(codeInvalidParam, "no customer of the request can receive it")
	}
	if c.GroupMsgs == nil {
		c.GroupMsgs = map[string]*GroupMsg{}
	}
	c.GroupMsgs[msg.ID] = msg
	return map[string]any{"fail_list": failList, "msgid": msg.ID}, nil
}

// followerOf is the staff member a customer's copy goes to ("" none).
func followerOf(c *Corp, ext, sender string) string {
	cr := c.Customers[ext]
	if cr == nil {
		return ""
	}
	if sender != "" {
		if cr.Follows[sender] != nil {
			return sender
		}
		return ""
	}
	var best string
	var at int64
	for uid, fu := range cr.Follows {
		if best == "" || fu.CreateTime < at || fu.CreateTime == at && uid < best {
			best, at = uid, fu.CreateTime
		}
	}
	return best
}

// getGroupMsgSendResultRequest is externalcontact/get_groupmsg_send_result.
type getGroupMsgSendResultRequest struct {
	MsgID  string `json:"msgid"`
	UserID string `json:"userid"`
	Limit  int    `json:"limit"`
	Cursor string `json:"cursor"`
}

func getGroupMsgSendResult(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req getGroupMsgSendResultRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.MsgID == "" || req.UserID == "" {
		return nil, errf(codeInvalidParam, "msgid and userid are required")
	}
	if req.Limit <= 0 || req.Limit > 1000 {
		req.Limit = 500
	}
	m := c.GroupMsgs[req.MsgID]
	if m == nil {
		return nil, errf(codeInvalidParam, "invalid msgid")
	}
	var mine []GroupMsgSend
	for _, s := range m.Sends {
		if s.UserID == req.UserID {
			mine = append(mine, s)
		}
	}
	start := 0
	if req.Cursor != "" {
		if _, err := fmt.Sscan(req.Cursor, &start); err != nil || start < 0 || start > len(mine) {
			return nil, errf(codeInvalidParam, "invalid cursor")
		}
	}
	end := min(start+req.Limit, len(mine))
	next := ""
	if end < len(mine) {
		next = fmt.Sprint(end)
	}
	list := make([]map[string]any, 0, end-start)
	for _, s := range mine[start:end] {
		item := map[string]any{"external_userid": s.ExternalUserID, "userid": s.UserID, "status": s.Status}
		if s.SendTime > 0 {
			item["send_time"] = s.SendTime
		}
		list = append(list, item)
	}
	return map[string]any{"send_list": list, "next_cursor": next}, nil
}

// ConfirmGroupMsg is a staff member confirming a queued mass message in
// their app: each of their customers gets it unless the customer left them
// (status 2) or already received as many as the corp's rule allows in this
// period (status 3). It returns the sends it settled.
func (f *Fake) ConfirmGroupMsg(corpID, msgID, userID string) ([]GroupMsgSend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[corpID]
	if c == nil {
		return nil, fmt.Errorf("unknown corp %s", corpID)
	}
	m := c.GroupMsgs[msgID]
	if m == nil {
		return nil, fmt.Errorf("unknown msgid %s", msgID)
	}
	now := f.now()
	var out []GroupMsgSend
	for i := range m.Sends {
		s := &m.Sends[i]
		if s.UserID != userID || s.Status != 0 {
			continue
		}
		s.SendTime = now.Unix()
		switch cr := c.Customers[s.ExternalUserID]; {
		case cr == nil || cr.Follows[userID] == nil:
			s.Status = 2
		case c.receivedInPeriod(s.ExternalUserID, now) >= c.receiveLimit(now):
			s.Status = 3
		default:
			s.Status = 1
			if c.Received == nil {
				c.Received = map[string][]int64{}
			}
			c.Received[s.ExternalUserID] = append(c.Received[s.ExternalUserID], now.UnixMilli())
			c.Messages = append(c.Messages, Message{Kind: "groupmsg", UserID: userID, ExternalUserID: s.ExternalUserID, Text: m.Text,
				Attachments: m.Attachments, SentAt: now.UnixMilli()})
		}
		out = append(out, *s)
	}
	f.dirty = true
	return out, nil
}

// PendingGroupMsgs lists the mass messages waiting for a staff member's
// confirmation, oldest first.
func (f *Fake) PendingGroupMsgs(corpID, userID string) []GroupMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[corpID]
	if c == nil {
		return nil
	}
	var out []GroupMsg
	for _, m := range c.GroupMsgs {
		for _, s := range m.Sends {
			if s.UserID == userID && s.Status == 0 {
				out = append(out, *m)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt < out[j].CreatedAt || out[i].CreatedAt == out[j].CreatedAt && out[i].ID < out[j].ID
	})
	return out
}

// receiveLimit is how many mass messages a customer may receive in the
// current period under the corp's rule.
func (c *Corp) receiveLimit(now time.Time) int {
	switch c.GroupMsgRule {
	case GroupMsgRuleWeek:
		return 7
	case GroupMsgRuleDay:
		return 1
	}
	cn := now.In(chinaTime)
	return time.Date(cn.Year(), cn.Month()+1, 0, 0, 0, 0, 0, chinaTime).Day()
}

// receivedInPeriod counts the mass messages a customer received in the
// current period (China's calendar month, week from Monday, or day).
func (c *Corp) receivedInPeriod(ext string, now time.Time) int {
	cn := now.In(chinaTime)
	var from time.Time
	switch c.GroupMsgRule {
	case GroupMsgRuleWeek:
		day := time.Date(cn.Year(), cn.Month(), cn.Day(), 0, 0, 0, 0, chinaTime)
		from = day.AddDate(0, 0, -((int(cn.Weekday()) + 6) % 7))
	case GroupMsgRuleDay:
		from = time.Date(cn.Year(), cn.Month(), cn.Day(), 0, 0, 0, 0, chinaTime)
	default:
		from = time.Date(cn.Year(), cn.Month(), 1, 0, 0, 0, 0, chinaTime)
	}
	n := 0
	for _, at := range c.Received[ext] {
		if at >= from.UnixMilli() {
			n++
		}
	}
	return n
}
