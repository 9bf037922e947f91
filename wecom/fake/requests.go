package fake

import (
	"bytes"
	"encoding/json"

	"github.com/qiflow/qiflow/wecom"
)

// The fake decodes the requests Qiflow sends most into its own types, written
// from WeCom's documentation and not shared with Qiflow's client: a field
// Qiflow misspells is an unknown field here, and a required one it leaves
// out is missing, refused as WeCom refuses a malformed request (40058, with
// WeCom's "wrong json format" warning), so a test fails where production would.

// decode decodes body into v, refusing unknown fields.
func decode(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(codeInvalidParam, "Warning: wrong json format. %v", err)
	}
	return nil
}

// decodeOptional is decode for requests whose body may be empty.
func decodeOptional(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decode(body, v)
}

type textRequest struct {
	Content string `json:"content"`
}

type mediaRequest struct {
	MediaID string `json:"media_id"`
}

// attachmentRequest is one attachment of send_welcome_msg.
type attachmentRequest struct {
	MsgType string `json:"msgtype"`
	Image   *struct {
		MediaID string `json:"media_id"`
		PicURL  string `json:"pic_url"`
	} `json:"image"`
	Link *struct {
		Title  string `json:"title"`
		PicURL string `json:"picurl"`
		Desc   string `json:"desc"`
		URL    string `json:"url"`
	} `json:"link"`
	MiniProgram *struct {
		Title      string `json:"title"`
		PicMediaID string `json:"pic_media_id"`
		AppID      string `json:"appid"`
		Page       string `json:"page"`
	} `json:"miniprogram"`
	Video *mediaRequest `json:"video"`
	File  *mediaRequest `json:"file"`
}

// world is the attachment as the fake's world keeps it.
func (a attachmentRequest) world() wecom.Attachment {
	out := wecom.Attachment{MsgType: a.MsgType}
	if a.Image != nil {
		out.Image = &wecom.Image{MediaID: a.Image.MediaID, PicURL: a.Image.PicURL}
	}
	if a.Link != nil {
		out.Link = &wecom.Link{Title: a.Link.Title, PicURL: a.Link.PicURL, Desc: a.Link.Desc, URL: a.Link.URL}
	}
	if a.MiniProgram != nil {
		out.MiniProgram = &wecom.MiniProgram{Title: a.MiniProgram.Title, PicMediaID: a.MiniProgram.PicMediaID, AppID: a.MiniProgram.AppID, Page: a.MiniProgram.Page}
	}
	if a.Video != nil {
		out.Video = &wecom.Media{MediaID: a.Video.MediaID}
	}
	if a.File != nil {
		out.File = &wecom.Media{MediaID: a.File.MediaID}
	}
	return out
}

// welcomeRequest is externalcontact/send_welcome_msg.
type welcomeRequest struct {
	WelcomeCode string              `json:"welcome_code"`
	Text        *textRequest        `json:"text"`
	Attachments []attachmentRequest `json:"attachments"`
}

// appMessageRequest is message/send (text messages).
type appMessageRequest struct {
	ToUser                 string       `json:"touser"`
	ToParty                string       `json:"toparty"`
	ToTag                  string       `json:"totag"`
	MsgType                string       `json:"msgtype"`
	AgentID                int          `json:"agentid"`
	Text                   *textRequest `json:"text"`
	Safe                   int          `json:"safe"`
	EnableIDTrans          int          `json:"enable_id_trans"`
	EnableDuplicateCheck   int          `json:"enable_duplicate_check"`
	DuplicateCheckInterval int          `json:"duplicate_check_interval"`
}

// remarkRequest is externalcontact/remark.
type remarkRequest struct {
	UserID           string   `json:"userid"`
	ExternalUserID   string   `json:"external_userid"`
	Remark           *string  `json:"remark"`
	Description      *string  `json:"description"`
	RemarkCompany    *string  `json:"remark_company"`
	RemarkMobiles    []string `json:"remark_mobiles"`
	RemarkPicMediaID string   `json:"remark_pic_mediaid"`
}

// contactWayRequest is externalcontact/add_contact_way.
type contactWayRequest struct {
	Type          int             `json:"type"`
	Scene         int             `json:"scene"`
	Style         int             `json:"style"`
	Remark        string          `json:"remark"`
	SkipVerify    *bool           `json:"skip_verify"`
	State         string          `json:"state"`
	User          []string        `json:"user"`
	Party         []int64         `json:"party"`
	IsTemp        bool            `json:"is_temp"`
	ExpiresIn     int             `json:"expires_in"`
	ChatExpiresIn int             `json:"chat_expires_in"`
	UnionID       string          `json:"unionid"`
	IsExclusive   bool            `json:"is_exclusive"`
	Conclusions   json.RawMessage `json:"conclusions"`
}

func (r contactWayRequest) world() wecom.ContactWay {
	return wecom.ContactWay{Type: r.Type, Scene: r.Scene, Style: r.Style, Remark: r.Remark, SkipVerify: r.SkipVerify, State: r.State,
		User: r.User, Party: r.Party, IsTemp: r.IsTemp, ExpiresIn: r.ExpiresIn}
}

// joinWayRequest is externalcontact/groupchat/add_join_way and update_join_way.
type joinWayRequest struct {
	ConfigID       string   `json:"config_id"`
	Scene          int      `json:"scene"`
	Remark         string   `json:"remark"`
	AutoCreateRoom int      `json:"auto_create_room"`
	RoomBaseName   string   `json:"room_base_name"`
	RoomBaseID     int      `json:"room_base_id"`
	ChatIDList     []string `json:"chat_id_list"`
	State          string   `json:"state"`
}

func (r joinWayRequest) world() wecom.JoinWay {
	return wecom.JoinWay{ConfigID: r.ConfigID, Scene: r.Scene, Remark: r.Remark, AutoCreateRoom: r.AutoCreateRoom, RoomBaseName: r.RoomBaseName,
		RoomBaseID: r.RoomBaseID, ChatIDList: r.ChatIDList, State: r.State}
}
