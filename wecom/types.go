package wecom

// Wire types: the JSON WeCom sends and receives, shared by the Client and the
// fake WeCom so both speak exactly one format.

type Department struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	ParentID int64  `json:"parentid"`
	Order    int64  `json:"order"`
}

type Staff struct {
	UserID         string  `json:"userid"`
	Name           string  `json:"name"`
	Mobile         string  `json:"mobile,omitempty"`
	Email          string  `json:"email,omitempty"`
	Status         int     `json:"status"` // 1 active, 2 disabled, 4 not activated, 5 left
	Department     []int64 `json:"department"`
	MainDepartment int64   `json:"main_department"`
}

type TagGroup struct {
	GroupID   string `json:"group_id"`
	GroupName string `json:"group_name"`
	// StrategyID is the rule group (规则组) of a strategy tag group; 0 for corp tags.
	StrategyID int64     `json:"strategy_id,omitempty"`
	CreateTime int64     `json:"create_time,omitempty"`
	Order      int64     `json:"order"`
	Deleted    bool      `json:"deleted,omitempty"`
	Tags       []CorpTag `json:"tag"`
}

type CorpTag struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	CreateTime int64  `json:"create_time,omitempty"`
	Order      int64  `json:"order"`
	Deleted    bool   `json:"deleted,omitempty"`
}

type ExternalContact struct {
	ExternalUserID string `json:"external_userid"`
	Name           string `json:"name"`
	Avatar         string `json:"avatar,omitempty"`
	Type           int    `json:"type"`
	Gender         int    `json:"gender"`
	UnionID        string `json:"unionid,omitempty"`
	CorpName       string `json:"corp_name,omitempty"`
}

// FollowUser is one staff member's relation to an external contact.
type FollowUser struct {
	UserID        string      `json:"userid"`
	Remark        string      `json:"remark"`
	Description   string      `json:"description"`
	CreateTime    int64       `json:"createtime"`
	Tags          []FollowTag `json:"tags,omitempty"`
	TagIDs        []string    `json:"tag_id,omitempty"` // batch/get_by_user gives ids only
	RemarkMobiles []string    `json:"remark_mobiles,omitempty"`
	AddWay        int         `json:"add_way"`
	State         string      `json:"state,omitempty"`
	OperUserID    string      `json:"oper_userid,omitempty"`
}

type FollowTag struct {
	GroupName string `json:"group_name"`
	TagName   string `json:"tag_name"`
	TagID     string `json:"tag_id"`
	Type      int    `json:"type"`
}

// ContactDetail is externalcontact/get: the contact and every staff member following it.
type ContactDetail struct {
	ExternalContact ExternalContact `json:"external_contact"`
	FollowUser      []FollowUser    `json:"follow_user"`
}

// ContactFollow is one entry of batch/get_by_user: a contact and one follow relation.
type ContactFollow struct {
	ExternalContact ExternalContact `json:"external_contact"`
	FollowInfo      FollowUser      `json:"follow_info"`
}

type Remark struct {
	UserID         string   `json:"userid"`
	ExternalUserID string   `json:"external_userid"`
	Remark         *string  `json:"remark,omitempty"`
	Description    *string  `json:"description,omitempty"`
	RemarkCompany  *string  `json:"remark_company,omitempty"`
	RemarkMobiles  []string `json:"remark_mobiles,omitempty"`
}

// ContactWay is a 「联系我」 configuration.
type ContactWay struct {
	ConfigID   string   `json:"config_id,omitempty"`
	Type       int      `json:"type"`  // 1 single, 2 multi
	Scene      int      `json:"scene"` // 1 mini-program, 2 QR
	Style      int      `json:"style,omitempty"`
	Remark     string   `json:"remark,omitempty"`
	SkipVerify *bool    `json:"skip_verify,omitempty"`
	State      string   `json:"state,omitempty"`
	User       []string `json:"user,omitempty"`
	Party      []int64  `json:"party,omitempty"`
	IsTemp     bool     `json:"is_temp,omitempty"`
	ExpiresIn  int      `json:"expires_in,omitempty"`
	QRCode     string   `json:"qr_code,omitempty"`
}

// WelcomeMsg is send_welcome_msg. Attachments carry only the sub-object of
// their msgtype (silenceper's type sends every empty sub-object).
type WelcomeMsg struct {
	WelcomeCode string       `json:"welcome_code"`
	Text        *Text        `json:"text,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

type Text struct {
	Content string `json:"content"`
}

type Attachment struct {
	MsgType     string       `json:"msgtype"` // image, link, miniprogram, video, file
	Image       *Image       `json:"image,omitempty"`
	Link        *Link        `json:"link,omitempty"`
	MiniProgram *MiniProgram `json:"miniprogram,omitempty"`
	Video       *Media       `json:"video,omitempty"`
	File        *Media       `json:"file,omitempty"`
}

type Image struct {
	MediaID string `json:"media_id,omitempty"`
	PicURL  string `json:"pic_url,omitempty"`
}

type Link struct {
	Title  string `json:"title"`
	PicURL string `json:"picurl,omitempty"`
	Desc   string `json:"desc,omitempty"`
	URL    string `json:"url"`
}

type MiniProgram struct {
	Title      string `json:"title"`
	PicMediaID string `json:"pic_media_id"`
	AppID      string `json:"appid"`
	Page       string `json:"page"`
}

type Media struct {
	MediaID string `json:"media_id"`
}

// GroupChatRef is an entry of groupchat/list.
type GroupChatRef struct {
	ChatID string `json:"chat_id"`
	Status int    `json:"status"`
}

type GroupChat struct {
	ChatID        string        `json:"chat_id"`
	Name          string        `json:"name"`
	Owner         string        `json:"owner"`
	CreateTime    int64         `json:"create_time"`
	Notice        string        `json:"notice,omitempty"`
	MemberList    []GroupMember `json:"member_list"`
	AdminList     []GroupAdmin  `json:"admin_list,omitempty"`
	MemberVersion string        `json:"member_version,omitempty"`
}

type GroupMember struct {
	UserID        string      `json:"userid"`
	Type          int         `json:"type"` // 1 staff, 2 external
	JoinTime      int64       `json:"join_time"`
	JoinScene     int         `json:"join_scene"` // 1 invited, 2 link, 3 QR
	Invitor       *GroupAdmin `json:"invitor,omitempty"`
	GroupNickname string      `json:"group_nickname,omitempty"`
	Name          string      `json:"name,omitempty"`
	UnionID       string      `json:"unionid,omitempty"`
	State         string      `json:"state,omitempty"`
}

type GroupAdmin struct {
	UserID string `json:"userid"`
}

// JoinWay is a customer-group 「加入群聊」 configuration.
type JoinWay struct {
	ConfigID       string   `json:"config_id,omitempty"`
	Scene          int      `json:"scene"`
	Remark         string   `json:"remark,omitempty"`
	AutoCreateRoom int      `json:"auto_create_room"`
	RoomBaseName   string   `json:"room_base_name,omitempty"`
	RoomBaseID     int      `json:"room_base_id,omitempty"`
	ChatIDList     []string `json:"chat_id_list"`
	QRCode         string   `json:"qr_code,omitempty"`
	State          string   `json:"state,omitempty"`
}

// AppMessage is a text message from the corp app to staff members.
type AppMessage struct {
	ToUser  string `json:"touser"` // userids joined by |
	MsgType string `json:"msgtype"`
	AgentID int    `json:"agentid"`
	Text    *Text  `json:"text,omitempty"`
	// EnableDuplicateCheck makes WeCom drop the same message to the same
	// staff within DuplicateCheckInterval seconds (default 1800): a retry
	// whose first attempt did arrive sends nothing twice.
	EnableDuplicateCheck   int `json:"enable_duplicate_check,omitempty"`
	DuplicateCheckInterval int `json:"duplicate_check_interval,omitempty"`
}

// AcquisitionLink is a customer-acquisition link over some staff.
type AcquisitionLink struct {
	LinkID     string   `json:"link_id,omitempty"`
	LinkName   string   `json:"link_name"`
	URL        string   `json:"url,omitempty"`
	Users      []string `json:"-"`
	SkipVerify bool     `json:"-"`
}

// AcquisitionRange is the staff a link hands customers to.
type AcquisitionRange struct {
	UserList       []string `json:"user_list"`
	DepartmentList []int64  `json:"department_list,omitempty"`
}

// TransferResult is one customer's (or group's) outcome of a handover.
type TransferResult struct {
	ExternalUserID string `json:"external_userid,omitempty"`
	ChatID         string `json:"chat_id,omitempty"`
	ErrCode        int64  `json:"errcode"`
	ErrMsg         string `json:"errmsg,omitempty"`
}
