package wecom

import (
	"context"
	"io"
	"time"
)

// Client is the only door to WeCom. Every method takes the corp it acts for;
// every call is rate limited per corp and API across instances, retried on
// token errors (once), on 45009/45033 (with backoff) and on -1 (busy), and
// recorded in Prometheus by endpoint and errcode.
type Client interface {
	// Directory.
	ListDepartments(ctx context.Context, corpID string) ([]Department, error)
	ListStaff(ctx context.Context, corpID string, departmentID int64) ([]Staff, error)
	GetStaff(ctx context.Context, corpID, userID string) (Staff, error)

	// Corp tags (customer tags).
	ListCorpTags(ctx context.Context, corpID string) ([]TagGroup, error)
	ListStrategyTags(ctx context.Context, corpID string) ([]TagGroup, error)
	AddCorpTags(ctx context.Context, corpID string, g TagGroup) (TagGroup, error)
	EditCorpTag(ctx context.Context, corpID, id, name string, order int64) error
	DeleteCorpTags(ctx context.Context, corpID string, tagIDs, groupIDs []string) error
	MarkTag(ctx context.Context, corpID, userID, externalUserID string, add, remove []string) error

	// External contacts.
	ListFollowUsers(ctx context.Context, corpID string) ([]string, error)
	GetExternalContact(ctx context.Context, corpID, externalUserID string) (ContactDetail, error)
	BatchGetExternalContacts(ctx context.Context, corpID string, userIDs []string, cursor string, limit int) ([]ContactFollow, string, error)
	RemarkExternalContact(ctx context.Context, corpID string, r Remark) error

	// Contact ways (「联系我」).
	AddContactWay(ctx context.Context, corpID string, w ContactWay) (configID, qrCode string, err error)
	GetContactWay(ctx context.Context, corpID, configID string) (ContactWay, error)
	UpdateContactWay(ctx context.Context, corpID string, w ContactWay) error
	DeleteContactWay(ctx context.Context, corpID, configID string) error
	ListContactWays(ctx context.Context, corpID, cursor string, limit int) ([]string, string, error)

	// SendWelcomeMsg is time-critical (the code lives 20 s): it goes ahead of
	// other calls in the rate limiter.
	SendWelcomeMsg(ctx context.Context, corpID string, m WelcomeMsg) error

	// Customer groups and join ways.
	// ListGroupChats lists the groups owned by owners (at most 100: WeCom
	// refuses an unfiltered list once the app sees more than 1,000 staff).
	ListGroupChats(ctx context.Context, corpID string, owners []string, cursor string, limit int) ([]GroupChatRef, string, error)
	GetGroupChat(ctx context.Context, corpID, chatID string) (GroupChat, error)
	AddJoinWay(ctx context.Context, corpID string, w JoinWay) (configID string, err error)
	GetJoinWay(ctx context.Context, corpID, configID string) (JoinWay, error)
	UpdateJoinWay(ctx context.Context, corpID string, w JoinWay) error
	DeleteJoinWay(ctx context.Context, corpID, configID string) error

	// Group welcome templates (入群欢迎语素材), used by group codes.
	AddGroupWelcomeTemplate(ctx context.Context, corpID, text string) (templateID string, err error)
	EditGroupWelcomeTemplate(ctx context.Context, corpID, templateID, text string) error
	DeleteGroupWelcomeTemplate(ctx context.Context, corpID, templateID string) error

	// Customer-acquisition links (获客助手), for ads and SMS outside WeChat.
	CreateAcquisitionLink(ctx context.Context, corpID string, l AcquisitionLink) (AcquisitionLink, error)
	GetAcquisitionLink(ctx context.Context, corpID, linkID string) (AcquisitionLink, error)
	UpdateAcquisitionLink(ctx context.Context, corpID string, l AcquisitionLink) error
	DeleteAcquisitionLink(ctx context.Context, corpID, linkID string) error

	// Resigned-staff handover: customers (≤ 100 a call) and groups to a successor.
	TransferResignedCustomers(ctx context.Context, corpID, handover, takeover string, externalUserIDs []string) ([]TransferResult, error)
	ResignedTransferResult(ctx context.Context, corpID, handover, takeover, cursor string) ([]TransferStatus, string, error)
	TransferGroupChats(ctx context.Context, corpID string, chatIDs []string, newOwner string) ([]TransferResult, error)

	// SendAppMessage sends a text from the corp app to one staff member
	// (WeCom drops more than 30 a minute to one person: the limiter keeps under it).
	SendAppMessage(ctx context.Context, corpID, userID, text string) error

	// UploadMedia uploads temporary media (image, video, file); WeCom keeps it 3 days.
	UploadMedia(ctx context.Context, corpID, mediaType, filename string, r io.Reader) (mediaID string, createdAt time.Time, err error)
}

// CorpApp is the self-built app Qiflow uses in one corp.
type CorpApp struct {
	CorpID  string
	Secret  string
	AgentID int
}

// Per-corp limits WeCom applies.
var (
	// APILimit: about 10,000 calls a minute per API per corp.
	APILimit = Limit{Per: 10000, Window: time.Minute}
	// MessagePerStaffLimit: app messages beyond 30 a minute to one person are dropped.
	MessagePerStaffLimit = Limit{Per: 30, Window: time.Minute}
)
