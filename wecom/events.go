package wecom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// Event is a decrypted callback, typed where Qiflow knows the kind.
type Event interface {
	// Head is the common header every callback carries.
	Head() Header
	// DedupKey identifies the real-world event: WeCom's retries and replays
	// of it produce the same key, distinct events produce distinct keys.
	DedupKey() string
}

// Header is the part every callback shares.
type Header struct {
	ToUserName   string `xml:"ToUserName" json:"to_user_name"`
	FromUserName string `xml:"FromUserName" json:"from_user_name"`
	CreateTime   int64  `xml:"CreateTime" json:"create_time"`
	MsgType      string `xml:"MsgType" json:"msg_type"`
	Event        string `xml:"Event" json:"event"`
	ChangeType   string `xml:"ChangeType" json:"change_type"`
}

func (h Header) Head() Header { return h }

// Time is CreateTime as a time.
func (h Header) Time() time.Time { return time.Unix(h.CreateTime, 0).UTC() }

// Event names.
const (
	EventExternalContact = "change_external_contact"
	EventExternalChat    = "change_external_chat"
	EventExternalTag     = "change_external_tag"
)

// change_external_contact change types.
const (
	ChangeAddExternalContact     = "add_external_contact"
	ChangeAddHalfExternalContact = "add_half_external_contact"
	ChangeEditExternalContact    = "edit_external_contact"
	ChangeDelExternalContact     = "del_external_contact"
	ChangeDelFollowUser          = "del_follow_user"
	ChangeTransferFail           = "transfer_fail"

	// SourceDeleteByTransfer marks a del_external_contact caused by reassignment.
	SourceDeleteByTransfer = "DELETE_BY_TRANSFER"
)

// ExternalContactEvent is change_external_contact.
type ExternalContactEvent struct {
	Header
	UserID         string `xml:"UserID" json:"user_id"`
	ExternalUserID string `xml:"ExternalUserID" json:"external_user_id"`
	State          string `xml:"State" json:"state,omitempty"`
	WelcomeCode    string `xml:"WelcomeCode" json:"welcome_code,omitempty"`
	Source         string `xml:"Source" json:"source,omitempty"`
	FailReason     string `xml:"FailReason" json:"fail_reason,omitempty"`
}

func (e *ExternalContactEvent) DedupKey() string {
	return key(e.ToUserName, e.Event, e.ChangeType, e.UserID, e.ExternalUserID, e.CreateTime)
}

// ExternalChatEvent is change_external_chat: create, update, dismiss.
type ExternalChatEvent struct {
	Header
	ChatID        string   `xml:"ChatId" json:"chat_id"`
	UpdateDetail  string   `xml:"UpdateDetail" json:"update_detail,omitempty"`
	JoinScene     int      `xml:"JoinScene" json:"join_scene,omitempty"`
	QuitScene     int      `xml:"QuitScene" json:"quit_scene,omitempty"`
	MemChangeCnt  int      `xml:"MemChangeCnt" json:"mem_change_cnt,omitempty"`
	MemChangeList []string `xml:"MemChangeList>Item" json:"mem_change_list,omitempty"`
	LastMemVer    string   `xml:"LastMemVer" json:"last_mem_ver,omitempty"`
	CurMemVer     string   `xml:"CurMemVer" json:"cur_mem_ver,omitempty"`
}

// Chat update details.
const (
	ChatAddMember    = "add_member"
	ChatDelMember    = "del_member"
	ChatChangeOwner  = "change_owner"
	ChatChangeName   = "change_name"
	ChatChangeNotice = "change_notice"
)

func (e *ExternalChatEvent) DedupKey() string {
	// Two joins in one second differ only in their member versions and members.
	return key(e.ToUserName, e.Event, e.ChangeType, e.ChatID, e.UpdateDetail, e.LastMemVer, e.CurMemVer,
		strings.Join(e.MemChangeList, ","), e.CreateTime)
}

// ExternalTagEvent is change_external_tag: create, update, delete, shuffle.
type ExternalTagEvent struct {
	Header
	ID         string `xml:"Id" json:"id"`
	TagType    string `xml:"TagType" json:"tag_type"` // tag | tag_group
	StrategyID string `xml:"StrategyId" json:"strategy_id,omitempty"`
}

func (e *ExternalTagEvent) DedupKey() string {
	return key(e.ToUserName, e.Event, e.ChangeType, e.TagType, e.ID, e.StrategyID, e.CreateTime)
}

// RawEvent is any other callback, kept as its XML.
type RawEvent struct {
	Header
	XML []byte `json:"-"`
}

// Raw is the callback as received (the events API shows it as is).
func (e *RawEvent) Raw() []byte { return e.XML }

func (e *RawEvent) DedupKey() string {
	sum := sha256.Sum256(e.XML)
	return key(e.ToUserName, "raw", hex.EncodeToString(sum[:]))
}

func key(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%v\x00", p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ParseEvent reads a decrypted callback into its typed event.
func ParseEvent(plain []byte) (Event, error) {
	// Parsing is most of the CPU a callback costs here, and it is parsed
	// again wherever it is handled: read it as the most common kind, a
	// contact's change, and a second time only when it is another.
	contact := &ExternalContactEvent{}
	if err := xml.Unmarshal(plain, contact); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var ev Event = contact
	switch contact.Event {
	case EventExternalContact:
	case EventExternalChat:
		ev = &ExternalChatEvent{}
	case EventExternalTag:
		ev = &ExternalTagEvent{}
	default:
		return &RawEvent{Header: contact.Header, XML: bytes.Clone(plain)}, nil
	}
	if ev != Event(contact) {
		if err := xml.Unmarshal(plain, ev); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := validate(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// validate rejects typed events missing what identifies them.
func validate(ev Event) error {
	bad := func(field string) error { return fmt.Errorf("%w: %s is missing", ErrMalformed, field) }
	h := ev.Head()
	if h.ToUserName == "" {
		return bad("ToUserName")
	}
	if h.ChangeType == "" {
		return bad("ChangeType")
	}
	switch e := ev.(type) {
	case *ExternalContactEvent:
		if e.ExternalUserID == "" {
			return bad("ExternalUserID")
		}
		if e.UserID == "" {
			return bad("UserID")
		}
	case *ExternalChatEvent:
		if e.ChatID == "" {
			return bad("ChatId")
		}
	case *ExternalTagEvent:
		if e.ID == "" && e.ChangeType != "shuffle" {
			return bad("Id")
		}
	}
	return nil
}

// Type is the event's type on the bus: "event/change_type"
// ("change_external_contact/add_external_contact"), or the event (or message
// type) alone when there is no change type.
func Type(ev Event) string {
	h := ev.Head()
	name := h.Event
	if name == "" {
		name = h.MsgType
	}
	if h.ChangeType == "" {
		return name
	}
	return name + "/" + h.ChangeType
}

// Subjects name what an event is about. Events about one contact are handled
// one at a time, oldest first, by each subscriber, whatever their source.
func ContactSubject(externalUserID string) string { return "ext:" + externalUserID }

// ChatSubject is the subject of a customer group's events.
func ChatSubject(chatID string) string { return "chat:" + chatID }

// Subject is the event's subject: the contact, the group, or the corp's
// tags (a tag event resyncs every tag, so they queue behind each other).
func Subject(ev Event) string {
	switch e := ev.(type) {
	case *ExternalContactEvent:
		return ContactSubject(e.ExternalUserID)
	case *ExternalChatEvent:
		return ChatSubject(e.ChatID)
	case *ExternalTagEvent:
		return "tags"
	}
	return ""
}

// Decode turns a stored callback back into its typed event (the bus's
// decoder for WeCom's source). A callback stored once parsed the same way.
func Decode(_ string, payload []byte) (any, error) { return ParseEvent(payload) }
