package fake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qiflow/qiflow/wecom"
)

// apiError is a WeCom errcode answer.
type apiError struct {
	code int64
	msg  string
}

func errf(code int64, format string, args ...any) *apiError {
	return &apiError{code, fmt.Sprintf(format, args...)}
}

// Error codes the fake answers with, as WeCom does.
const (
	codeInvalidCorpID    = 40013
	codeInvalidSecret    = 40001
	codeInvalidToken     = 40014
	codeMissingToken     = 41001
	codeExpiredToken     = 42001
	codeInvalidParam     = 40058
	codeUnknownUser      = 60111
	codeUnknownExternal  = 40096
	codeUnknownConfig    = 41044
	codeUnknownChat      = 40050
	codeUnknownTag       = 40068
	codeWelcomeUsed      = 41051 // the welcome code was used already
	codeWelcomeInvalid   = 41050 // the welcome code expired or was never issued
	codeRateLimited      = 45009
	codeTooManyUsers     = 40058 // an invalid parameter: more than 100 users and departments
	codeUnknownDept      = 60123
	tokenLifetime        = 7200 * time.Second
	welcomeCodeLife      = 20 * time.Second
	maxContactWayUsers   = 100
	maxJoinWayChats      = 5
	maxGroupMembers      = 500
	maxQRJoinGroupMember = 200
)

// endpointFunc handles one API call for a corp, under f.mu.
type endpointFunc func(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError)

var endpoints = map[string]endpointFunc{
	"department/list":                                  listDepartments,
	"user/list":                                        listUsers,
	"user/get":                                         getUser,
	"externalcontact/get_corp_tag_list":                getCorpTags,
	"externalcontact/get_strategy_tag_list":            getStrategyTags,
	"externalcontact/add_corp_tag":                     addCorpTag,
	"externalcontact/edit_corp_tag":                    editCorpTag,
	"externalcontact/del_corp_tag":                     delCorpTag,
	"externalcontact/mark_tag":                         markTag,
	"externalcontact/get_follow_user_list":             getFollowUsers,
	"externalcontact/get":                              getExternal,
	"externalcontact/batch/get_by_user":                batchGetByUser,
	"externalcontact/remark":                           remark,
	"externalcontact/add_contact_way":                  addContactWay,
	"externalcontact/get_contact_way":                  getContactWay,
	"externalcontact/update_contact_way":               updateContactWay,
	"externalcontact/del_contact_way":                  delContactWay,
	"externalcontact/list_contact_way":                 listContactWays,
	"externalcontact/send_welcome_msg":                 sendWelcome,
	"externalcontact/add_msg_template":                 addMsgTemplate,
	"externalcontact/get_groupmsg_send_result":         getGroupMsgSendResult,
	"externalcontact/groupchat/list":                   listGroupChats,
	"externalcontact/groupchat/get":                    getGroupChat,
	"externalcontact/groupchat/add_join_way":           addJoinWay,
	"externalcontact/groupchat/get_join_way":           getJoinWay,
	"externalcontact/groupchat/update_join_way":        updateJoinWay,
	"externalcontact/groupchat/del_join_way":           delJoinWay,
	"message/send":                                     sendAppMessage,
	"externalcontact/group_welcome_template/add":       addGroupWelcome,
	"externalcontact/group_welcome_template/edit":      editGroupWelcome,
	"externalcontact/group_welcome_template/del":       delGroupWelcome,
	"externalcontact/resigned/transfer_customer":       transferCustomers,
	"externalcontact/resigned/transfer_result":         transferResult,
	"externalcontact/groupchat/transfer":               transferGroups,
	"externalcontact/customer_acquisition/create_link": createLink,
	"externalcontact/customer_acquisition/get":         getLink,
	"externalcontact/customer_acquisition/update_link": updateLink,
	"externalcontact/customer_acquisition/delete_link": deleteLink,
	"media/upload":                                     uploadMedia,
	"get_jsapi_ticket":                                 getJSAPITicket,
	"ticket/get":                                       getAgentTicket,
	"auth/getuserinfo":                                 getUserInfoByCode,
}

// Handler serves the WeCom API under /cgi-bin/ and the control API under /fake/.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/cgi-bin/gettoken", f.getToken)
	mux.HandleFunc("/cgi-bin/", f.serveAPI)
	mux.HandleFunc("GET /connect/oauth2/authorize", f.authorize)
	f.controlRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	writeJSON(w, map[string]any{"errcode": e.code, "errmsg": e.msg})
}

func (f *Fake) getToken(w http.ResponseWriter, r *http.Request) {
	if f.applyFaults(w, "gettoken") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[r.URL.Query().Get("corpid")]
	if c == nil {
		writeErr(w, errf(codeInvalidCorpID, "invalid corpid"))
		return
	}
	f.faults.count(c.ID, "gettoken")
	if r.URL.Query().Get("corpsecret") != c.Secret {
		writeErr(w, errf(codeInvalidSecret, "invalid credential"))
		return
	}
	tok := f.nextID("tok") + f.nextID("")
	f.tokens[tok] = tokenInfo{corp: c.ID, expires: f.now().Add(tokenLifetime)}
	writeJSON(w, map[string]any{"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": int(tokenLifetime.Seconds())})
}

func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request) {
	endpoint := strings.TrimPrefix(r.URL.Path, "/cgi-bin/")
	fn, ok := endpoints[endpoint]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.applyFaults(w, endpoint) {
		return
	}
	var body []byte
	if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 4<<20))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		writeErr(w, errf(codeMissingToken, "access_token missing"))
		return
	}
	ti, ok := f.tokens[tok]
	if !ok {
		writeErr(w, errf(codeInvalidToken, "invalid access_token"))
		return
	}
	if f.now().After(ti.expires) {
		writeErr(w, errf(codeExpiredToken, "access_token expired"))
		return
	}
	c := f.world.Corps[ti.corp]
	f.faults.count(c.ID, endpoint)
	if f.overRate(c.ID, endpoint) {
		writeErr(w, errf(codeRateLimited, "api freq out of limit"))
		return
	}
	out, aerr := fn(f, c, r, body)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	f.dirty = true
	resp := map[string]any{"errcode": 0, "errmsg": "ok"}
	if out != nil {
		b, _ := json.Marshal(out)
		json.Unmarshal(b, &resp)
	}
	writeJSON(w, resp)
}

// overRate applies WeCom's per-corp per-API calls-per-minute limit.
func (f *Fake) overRate(corp, endpoint string) bool {
	minute := f.now().Unix() / 60
	k := corp + " " + endpoint
	win := f.rates[k]
	if win == nil || win.minute != minute {
		win = &window{minute: minute}
		f.rates[k] = win
	}
	win.n++
	return win.n > f.RateLimit
}

func m(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// --- directory ---

func listDepartments(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	return m("department", c.Departments), nil
}

func listUsers(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	dept, err := strconv.ParseInt(r.URL.Query().Get("department_id"), 10, 64)
	if err != nil {
		return nil, errf(codeInvalidParam, "invalid department_id")
	}
	found := false
	for _, d := range c.Departments {
		found = found || d.ID == dept
	}
	if !found {
		return nil, errf(codeUnknownDept, "department not found")
	}
	var out []wecom.Staff
	for _, id := range c.staffIDs() {
		s := c.Staff[id]
		for _, d := range s.Department {
			if d == dept {
				out = append(out, *s)
				break
			}
		}
	}
	return m("userlist", out), nil
}

func getUser(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	s := c.Staff[r.URL.Query().Get("userid")]
	if s == nil {
		return nil, errf(codeUnknownUser, "userid not found")
	}
	return s, nil
}

// --- tags ---

// corpTagListReq is get_corp_tag_list: optional filters (Qiflow lists everything).
type corpTagListReq struct {
	TagID   []string `json:"tag_id"`
	GroupID []string `json:"group_id"`
}

// strategyTagListReq is get_strategy_tag_list.
type strategyTagListReq struct {
	StrategyID int64    `json:"strategy_id"`
	TagID      []string `json:"tag_id"`
	GroupID    []string `json:"group_id"`
}

func getCorpTags(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req corpTagListReq
	if e := decodeOptional(body, &req); e != nil {
		return nil, e
	}
	return m("tag_group", c.TagGroups), nil
}

// getStrategyTags lists the rule-group tags, which get_corp_tag_list leaves out.
func getStrategyTags(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req strategyTagListReq
	if e := decodeOptional(body, &req); e != nil {
		return nil, e
	}
	groups := c.StrategyTagGroups
	if groups == nil {
		groups = []*wecom.TagGroup{}
	}
	return m("tag_group", groups), nil
}

// codeDuplicateTagName: a tag of that name exists in the group.
const codeDuplicateTagName = 40071

func addCorpTag(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		GroupID   string `json:"group_id"`
		GroupName string `json:"group_name"`
		Order     int64  `json:"order"`
		Tag       []struct {
			Name  string `json:"name"`
			Order int64  `json:"order"`
		} `json:"tag"`
		AgentID int64 `json:"agentid"` // a self-built app names itself
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if len(req.Tag) == 0 {
		return nil, errf(codeInvalidParam, "Warning: wrong json format. missing required field tag")
	}
	var g *wecom.TagGroup
	if req.GroupID != "" {
		for _, x := range c.TagGroups {
			if x.GroupID == req.GroupID {
				g = x
			}
		}
		if g == nil {
			return nil, errf(codeUnknownTag, "invalid tag group id")
		}
	} else {
		if req.GroupName == "" || len([]rune(req.GroupName)) > 30 {
			return nil, errf(codeInvalidParam, "group_name required, at most 30 characters")
		}
		// A group name that exists adds to that group: WeCom never makes a second.
		for _, x := range c.TagGroups {
			if x.GroupName == req.GroupName {
				g = x
			}
		}
	}
	// Every tag is checked before anything changes: a refused request adds nothing.
	names := map[string]bool{}
	if g != nil {
		for _, t := range g.Tags {
			names[t.Name] = true
		}
	}
	for _, t := range req.Tag {
		if t.Name == "" || len([]rune(t.Name)) > 30 {
			return nil, errf(codeInvalidParam, "tag name required, at most 30 characters")
		}
		if names[t.Name] {
			return nil, errf(codeDuplicateTagName, "tag name %s already exists in the group", t.Name)
		}
		names[t.Name] = true
	}
	if g == nil {
		g = &wecom.TagGroup{GroupID: f.nextID("etg"), GroupName: req.GroupName, Order: req.Order, CreateTime: f.now().Unix()}
		c.TagGroups = append(c.TagGroups, g)
	}
	added := &wecom.TagGroup{GroupID: g.GroupID, GroupName: g.GroupName, Order: g.Order, CreateTime: g.CreateTime}
	for _, t := range req.Tag {
		tag := wecom.CorpTag{ID: f.nextID("et"), Name: t.Name, Order: t.Order, CreateTime: f.now().Unix()}
		g.Tags = append(g.Tags, tag)
		added.Tags = append(added.Tags, tag)
	}
	return m("tag_group", added), nil
}

func editCorpTag(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Order   int64  `json:"order"`
		AgentID int64  `json:"agentid"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	for _, g := range c.TagGroups {
		if g.GroupID == req.ID {
			g.GroupName, g.Order = req.Name, req.Order
			return nil, nil
		}
	}
	g, i := c.findTag(req.ID)
	if g == nil {
		return nil, errf(codeUnknownTag, "invalid tag id")
	}
	g.Tags[i].Name, g.Tags[i].Order = req.Name, req.Order
	return nil, nil
}

func delCorpTag(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		TagID   []string `json:"tag_id"`
		GroupID []string `json:"group_id"`
		AgentID int64    `json:"agentid"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	// WeCom wants lists: a null is a malformed request, not "none".
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"tag_id", "group_id"} {
		if string(raw[k]) == "null" {
			return nil, errf(codeInvalidParam, "%s must be a list", k)
		}
	}
	if len(req.TagID) == 0 && len(req.GroupID) == 0 {
		return nil, errf(codeInvalidParam, "tag_id and group_id both empty")
	}
	for _, id := range req.TagID {
		g, i := c.findTag(id)
		if g == nil {
			return nil, errf(codeUnknownTag, "invalid tag id")
		}
		g.Tags = append(g.Tags[:i], g.Tags[i+1:]...)
	}
	for _, id := range req.GroupID {
		for i, g := range c.TagGroups {
			if g.GroupID == id {
				c.TagGroups = append(c.TagGroups[:i], c.TagGroups[i+1:]...)
				break
			}
		}
	}
	return nil, nil
}

func markTag(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		UserID         string   `json:"userid"`
		ExternalUserID string   `json:"external_userid"`
		AddTag         []string `json:"add_tag"`
		RemoveTag      []string `json:"remove_tag"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if len(req.AddTag) == 0 && len(req.RemoveTag) == 0 {
		return nil, errf(codeInvalidParam, "add_tag and remove_tag both empty")
	}
	fu, e := c.follow(req.UserID, req.ExternalUserID)
	if e != nil {
		return nil, e
	}
	for _, id := range append(append([]string{}, req.AddTag...), req.RemoveTag...) {
		if g, _ := c.findAnyTag(id); g == nil {
			return nil, errf(codeUnknownTag, "invalid tag id %s", id)
		}
	}
	keep := fu.Tags[:0]
	for _, t := range fu.Tags {
		if !contains(req.RemoveTag, t.TagID) && !contains(req.AddTag, t.TagID) {
			keep = append(keep, t)
		}
	}
	fu.Tags = keep
	for _, id := range req.AddTag {
		g, i := c.findAnyTag(id)
		typ := 1 // corp tag; 3 a rule-group tag
		if g.StrategyID != 0 {
			typ = 3
		}
		fu.Tags = append(fu.Tags, wecom.FollowTag{GroupName: g.GroupName, TagName: g.Tags[i].Name, TagID: id, Type: typ})
	}
	return nil, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// follow finds a live follow relation.
func (c *Corp) follow(userID, externalUserID string) (*wecom.FollowUser, *apiError) {
	if c.Staff[userID] == nil {
		return nil, errf(codeUnknownUser, "userid not found")
	}
	cu := c.Customers[externalUserID]
	if cu == nil {
		return nil, errf(codeUnknownExternal, "invalid external_userid")
	}
	fu := cu.Follows[userID]
	if fu == nil {
		return nil, errf(84061, "not external contact")
	}
	return fu, nil
}

// --- external contacts ---

// getFollowUsers lists the staff with the customer-contact permission.
func getFollowUsers(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	var ids []string
	for _, id := range c.staffIDs() {
		if c.canContact(id) {
			ids = append(ids, id)
		}
	}
	return m("follow_user", ids), nil
}

// codeNoContactPermission: a contact way or link names staff without the
// customer-contact permission, or not activated.
const codeNoContactPermission = 41054

func getExternal(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	cu := c.Customers[r.URL.Query().Get("external_userid")]
	if cu == nil {
		return nil, errf(codeUnknownExternal, "invalid external_userid")
	}
	ids := make([]string, 0, len(cu.Follows))
	for id := range cu.Follows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	follows := make([]wecom.FollowUser, 0, len(ids))
	for _, id := range ids {
		follows = append(follows, *cu.Follows[id])
	}
	return wecom.ContactDetail{ExternalContact: cu.Contact, FollowUser: follows}, nil
}

func batchGetByUser(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		UserIDList []string `json:"userid_list"`
		Cursor     string   `json:"cursor"`
		Limit      int      `json:"limit"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if len(req.UserIDList) == 0 || len(req.UserIDList) > 100 {
		return nil, errf(codeInvalidParam, "userid_list must hold 1 to 100 users")
	}
	if req.Limit <= 0 || req.Limit > 100 {
		req.Limit = 50
	}
	var all []wecom.ContactFollow
	exts := keys(c.Customers)
	for _, u := range req.UserIDList {
		if c.Staff[u] == nil {
			return nil, errf(codeUnknownUser, "userid not found: %s", u)
		}
		for _, ext := range exts {
			cu := c.Customers[ext]
			if fu := cu.Follows[u]; fu != nil {
				info := *fu
				info.TagIDs = nil
				for _, t := range fu.Tags {
					info.TagIDs = append(info.TagIDs, t.TagID)
				}
				info.Tags = nil
				all = append(all, wecom.ContactFollow{ExternalContact: cu.Contact, FollowInfo: info})
			}
		}
	}
	page, next := pageOf(all, req.Cursor, req.Limit)
	return m("external_contact_list", page, "next_cursor", next), nil
}

func remark(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req remarkRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.UserID == "" || req.ExternalUserID == "" {
		return nil, errf(codeInvalidParam, "userid and external_userid are required")
	}
	fu, e := c.follow(req.UserID, req.ExternalUserID)
	if e != nil {
		return nil, e
	}
	if req.Remark != nil {
		if len([]rune(*req.Remark)) > 20 {
			return nil, errf(codeInvalidParam, "remark exceeds 20 characters")
		}
		fu.Remark = *req.Remark
	}
	if req.Description != nil {
		if len([]rune(*req.Description)) > 150 {
			return nil, errf(codeInvalidParam, "description exceeds 150 characters")
		}
		fu.Description = *req.Description
	}
	if req.RemarkMobiles != nil {
		fu.RemarkMobiles = req.RemarkMobiles
	}
	return nil, nil
}

// --- contact ways ---

func validateWay(c *Corp, w *wecom.ContactWay) *apiError {
	if len(w.State) > 30 {
		return errf(codeInvalidParam, "state exceeds 30 characters")
	}
	if len([]rune(w.Remark)) > 30 {
		return errf(codeInvalidParam, "remark exceeds 30 characters")
	}
	if len(w.User)+len(w.Party) > maxContactWayUsers {
		return errf(codeTooManyUsers, "user and party exceed 100")
	}
	if w.Type == 1 && len(w.User) != 1 {
		return errf(codeInvalidParam, "type 1 needs exactly one user")
	}
	if len(w.User) == 0 && len(w.Party) == 0 {
		return errf(codeInvalidParam, "user and party both empty")
	}
	for _, u := range w.User {
		if c.Staff[u] == nil {
			return errf(codeUnknownUser, "userid not found: %s", u)
		}
		if !c.canContact(u) {
			return errf(codeNoContactPermission, "user %s has no customer contact permission or is not activated", u)
		}
	}
	return nil
}

func addContactWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req contactWayRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	w := req.world()
	if w.Type != 1 && w.Type != 2 {
		return nil, errf(codeInvalidParam, "type must be 1 or 2")
	}
	if w.Scene != 1 && w.Scene != 2 {
		return nil, errf(codeInvalidParam, "scene must be 1 or 2")
	}
	if e := validateWay(c, &w); e != nil {
		return nil, e
	}
	w.ConfigID = f.nextID("cw")
	if w.Scene == 2 {
		w.QRCode = f.URL() + "/fake/qr/" + c.ID + "/" + w.ConfigID
	}
	c.ContactWays[w.ConfigID] = &w
	if c.WayCreated == nil {
		c.WayCreated = map[string]int64{}
	}
	c.WayCreated[w.ConfigID] = f.now().Unix()
	return m("config_id", w.ConfigID, "qr_code", w.QRCode), nil
}

// configIDRequest is get_contact_way, del_contact_way, get_join_way and del_join_way.
type configIDRequest struct {
	ConfigID string `json:"config_id"`
}

// byConfigID finds the way a request names; the caller decodes the whole
// request strictly into its own type.
func byConfigID[T any](ways map[string]*T, body []byte) (*T, *apiError) {
	var req configIDRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errf(codeInvalidParam, "Warning: wrong json format. %v", err)
	}
	w := ways[req.ConfigID]
	if w == nil {
		return nil, errf(codeUnknownConfig, "invalid config_id")
	}
	return w, nil
}

func (c *Corp) way(body []byte) (*wecom.ContactWay, *apiError) {
	return byConfigID(c.ContactWays, body)
}

func getContactWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	if e := decode(body, &configIDRequest{}); e != nil {
		return nil, e
	}
	w, e := c.way(body)
	if e != nil {
		return nil, e
	}
	return m("contact_way", w), nil
}

func updateContactWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	w, e := c.way(body)
	if e != nil {
		return nil, e
	}
	var upd struct {
		ConfigID      string          `json:"config_id"`
		Remark        *string         `json:"remark"`
		SkipVerify    *bool           `json:"skip_verify"`
		State         *string         `json:"state"`
		User          []string        `json:"user"`
		Party         []int64         `json:"party"`
		Style         int             `json:"style"`
		ExpiresIn     int             `json:"expires_in"`
		ChatExpiresIn int             `json:"chat_expires_in"`
		UnionID       string          `json:"unionid"`
		Conclusions   json.RawMessage `json:"conclusions"`
	}
	if e := decode(body, &upd); e != nil {
		return nil, e
	}
	next := *w
	if upd.Remark != nil {
		next.Remark = *upd.Remark
	}
	if upd.SkipVerify != nil {
		next.SkipVerify = upd.SkipVerify
	}
	if upd.State != nil {
		next.State = *upd.State
	}
	if upd.User != nil {
		next.User = upd.User
	}
	if upd.Party != nil {
		next.Party = upd.Party
	}
	if e := validateWay(c, &next); e != nil {
		return nil, e
	}
	*w = next
	return nil, nil
}

func delContactWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	if e := decode(body, &configIDRequest{}); e != nil {
		return nil, e
	}
	w, e := c.way(body)
	if e != nil {
		return nil, e
	}
	delete(c.ContactWays, w.ConfigID)
	return nil, nil
}

func listContactWays(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		StartTime int64  `json:"start_time"`
		EndTime   int64  `json:"end_time"`
		Cursor    string `json:"cursor"`
		Limit     int    `json:"limit"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.Limit <= 0 || req.Limit > 1000 {
		req.Limit = 100
	}
	// Without start_time WeCom lists the last 90 days' ways only.
	now := f.now().Unix()
	if req.StartTime == 0 {
		req.StartTime = now - 90*24*3600
	}
	if req.EndTime == 0 {
		req.EndTime = now
	}
	var ids []string
	for _, id := range keys(c.ContactWays) {
		if at := c.WayCreated[id]; at >= req.StartTime && at <= req.EndTime {
			ids = append(ids, id)
		}
	}
	page, next := pageOf(ids, req.Cursor, req.Limit)
	list := make([]map[string]string, 0, len(page))
	for _, id := range page {
		list = append(list, map[string]string{"config_id": id})
	}
	return m("contact_way", list, "next_cursor", next), nil
}

// --- welcome ---

func sendWelcome(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req welcomeRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.WelcomeCode == "" {
		return nil, errf(codeInvalidParam, "welcome_code is required")
	}
	atts := make([]wecom.Attachment, len(req.Attachments))
	for i, a := range req.Attachments {
		atts[i] = a.world()
	}
	wc := c.Welcome[req.WelcomeCode]
	if wc == nil {
		return nil, errf(codeWelcomeInvalid, "invalid welcome_code")
	}
	if wc.Used {
		return nil, errf(codeWelcomeUsed, "welcome_code already used")
	}
	if f.now().Sub(time.UnixMilli(wc.IssuedAt)) > welcomeCodeLife {
		return nil, errf(codeWelcomeInvalid, "welcome_code expired")
	}
	text := ""
	if req.Text != nil {
		text = req.Text.Content
	}
	if len(text) > 4000 {
		return nil, errf(codeInvalidParam, "text.content exceeds 4000 bytes")
	}
	if text == "" && len(req.Attachments) == 0 {
		return nil, errf(codeInvalidParam, "text and attachments both empty")
	}
	if len(atts) > 9 {
		return nil, errf(codeInvalidParam, "more than 9 attachments")
	}
	for _, a := range atts {
		if e := validateAttachment(c, a); e != nil {
			return nil, e
		}
	}
	wc.Used = true
	c.Messages = append(c.Messages, Message{Kind: "welcome", UserID: wc.UserID, ExternalUserID: wc.ExternalUserID,
		Text: text, Attachments: atts, SentAt: f.now().UnixMilli()})
	return nil, nil
}

func validateAttachment(c *Corp, a wecom.Attachment) *apiError {
	media := func(id string) *apiError {
		if _, ok := c.Media[id]; !ok {
			return errf(40007, "invalid media_id")
		}
		return nil
	}
	switch a.MsgType {
	case "image":
		if a.Image == nil || (a.Image.MediaID == "" && a.Image.PicURL == "") {
			return errf(codeInvalidParam, "image needs media_id or pic_url")
		}
		if a.Image.MediaID != "" {
			return media(a.Image.MediaID)
		}
	case "link":
		if a.Link == nil || a.Link.URL == "" || a.Link.Title == "" || len(a.Link.Title) > 128 || len(a.Link.Desc) > 512 {
			return errf(codeInvalidParam, "link needs title (≤128 bytes) and url; desc ≤512 bytes")
		}
	case "miniprogram":
		if a.MiniProgram == nil || a.MiniProgram.AppID == "" || a.MiniProgram.Page == "" || a.MiniProgram.Title == "" {
			return errf(codeInvalidParam, "miniprogram needs title, appid, page and pic_media_id")
		}
		// WeCom: title at most 64 bytes; page a path ending in .html.
		if len(a.MiniProgram.Title) > 64 || !strings.HasSuffix(strings.SplitN(a.MiniProgram.Page, "?", 2)[0], ".html") {
			return errf(codeInvalidParam, "miniprogram title ≤64 bytes, page must end with .html")
		}
		return media(a.MiniProgram.PicMediaID)
	case "video":
		if a.Video == nil {
			return errf(codeInvalidParam, "video needs media_id")
		}
		return media(a.Video.MediaID)
	case "file":
		if a.File == nil {
			return errf(codeInvalidParam, "file needs media_id")
		}
		return media(a.File.MediaID)
	default:
		return errf(codeInvalidParam, "unknown msgtype %q", a.MsgType)
	}
	return nil
}

// --- groups ---

// Limits of groupchat/list: owners per filter, and the visible staff beyond
// which a list without an owner filter is refused.
const (
	maxGroupOwners          = 100
	maxUnfilteredGroupStaff = 1000
	codeGroupListNeedsOwner = 81017
)

func listGroupChats(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		StatusFilter int    `json:"status_filter"`
		Cursor       string `json:"cursor"`
		Limit        int    `json:"limit"`
		OwnerFilter  *struct {
			UserIDList []string `json:"userid_list"`
		} `json:"owner_filter"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.Limit <= 0 || req.Limit > 1000 {
		return nil, errf(codeInvalidParam, "limit must be 1..1000")
	}
	var owners []string
	if req.OwnerFilter != nil {
		owners = req.OwnerFilter.UserIDList
	}
	if len(owners) > maxGroupOwners {
		return nil, errf(codeInvalidParam, "owner_filter.userid_list holds at most 100 userids")
	}
	if len(owners) == 0 && len(c.Staff) > maxUnfilteredGroupStaff {
		return nil, errf(codeGroupListNeedsOwner, "the app's visible range exceeds 1000 staff: set owner_filter")
	}
	ids := keys(c.Groups)
	if len(owners) > 0 {
		var mine []string
		for _, id := range ids {
			if slices.Contains(owners, c.Groups[id].Chat.Owner) {
				mine = append(mine, id)
			}
		}
		ids = mine
	}
	page, next := pageOf(ids, req.Cursor, req.Limit)
	list := make([]wecom.GroupChatRef, 0, len(page))
	for _, id := range page {
		list = append(list, wecom.GroupChatRef{ChatID: id})
	}
	return m("group_chat_list", list, "next_cursor", next), nil
}

func getGroupChat(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		ChatID   string `json:"chat_id"`
		NeedName int    `json:"need_name"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	g := c.Groups[req.ChatID]
	if g == nil {
		return nil, errf(codeUnknownChat, "invalid chat_id")
	}
	return m("group_chat", g.Chat), nil
}

func validateJoinWay(c *Corp, w *wecom.JoinWay) *apiError {
	if len(w.ChatIDList) == 0 || len(w.ChatIDList) > maxJoinWayChats {
		return errf(codeInvalidParam, "chat_id_list must hold 1 to 5 chats")
	}
	for _, id := range w.ChatIDList {
		if c.Groups[id] == nil {
			return errf(codeUnknownChat, "invalid chat_id %s", id)
		}
	}
	if len(w.State) > 30 {
		return errf(codeInvalidParam, "state exceeds 30 characters")
	}
	if len([]rune(w.RoomBaseName)) > 40 {
		return errf(codeInvalidParam, "room_base_name exceeds 40 characters")
	}
	if w.Scene != 1 && w.Scene != 2 {
		return errf(codeInvalidParam, "scene must be 1 or 2")
	}
	return nil
}

func addJoinWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	req := joinWayRequest{AutoCreateRoom: 1}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	w := req.world()
	if e := validateJoinWay(c, &w); e != nil {
		return nil, e
	}
	w.ConfigID = f.nextID("jw")
	w.QRCode = f.URL() + "/fake/qr/" + c.ID + "/" + w.ConfigID
	c.JoinWays[w.ConfigID] = &w
	return m("config_id", w.ConfigID), nil
}

func (c *Corp) joinWay(body []byte) (*wecom.JoinWay, *apiError) { return byConfigID(c.JoinWays, body) }

func getJoinWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	if e := decode(body, &configIDRequest{}); e != nil {
		return nil, e
	}
	w, e := c.joinWay(body)
	if e != nil {
		return nil, e
	}
	return m("join_way", w), nil
}

func updateJoinWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	w, e := c.joinWay(body)
	if e != nil {
		return nil, e
	}
	req := joinWayRequest{AutoCreateRoom: 1}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	next := req.world()
	if e := validateJoinWay(c, &next); e != nil {
		return nil, e
	}
	next.QRCode = w.QRCode
	*w = next
	return nil, nil
}

func delJoinWay(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	if e := decode(body, &configIDRequest{}); e != nil {
		return nil, e
	}
	w, e := c.joinWay(body)
	if e != nil {
		return nil, e
	}
	delete(c.JoinWays, w.ConfigID)
	return nil, nil
}

// --- messages and media ---

func sendAppMessage(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req appMessageRequest
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.MsgType != "text" {
		return nil, errf(codeInvalidParam, "msgtype must be text (the fake sends text messages only)")
	}
	if req.ToUser == "" && req.ToParty == "" && req.ToTag == "" {
		return nil, errf(codeInvalidParam, "touser, toparty and totag all empty")
	}
	if req.AgentID != c.AgentID {
		return nil, errf(40056, "invalid agentid")
	}
	if req.Text == nil || req.Text.Content == "" {
		return nil, errf(codeInvalidParam, "text.content required")
	}
	// WeCom cuts a text at 2,048 bytes.
	text := req.Text.Content
	if len(text) > maxAppText {
		n := maxAppText
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	var invalid []string
	users := strings.Split(req.ToUser, "|")
	now := f.now().UnixMilli()
	for _, u := range users {
		if c.Staff[u] == nil {
			invalid = append(invalid, u)
			continue
		}
		// One app may send one person 30 messages a minute and 1,000 an
		// hour; WeCom answers ok and drops the rest.
		kind := "app"
		if perMinute, perHour := appMessagesTo(c, u, now); perMinute >= 30 || perHour >= 1000 {
			kind = "dropped"
		}
		c.Messages = append(c.Messages, Message{Kind: kind, UserID: u, Text: text, SentAt: now})
	}
	if len(invalid) == len(users) {
		return nil, errf(81013, "user & party & tag all invalid")
	}
	return m("invaliduser", strings.Join(invalid, "|")), nil
}

// maxAppText is WeCom's limit on an app text message.
const maxAppText = 2048

// appMessagesTo counts the app messages delivered to a person in the minute
// and the hour before now.
func appMessagesTo(c *Corp, user string, now int64) (minute, hour int) {
	for i := len(c.Messages) - 1; i >= 0; i-- {
		msg := c.Messages[i]
		if msg.SentAt <= now-3600_000 {
			break
		}
		if msg.Kind == "app" && msg.UserID == user {
			hour++
			if msg.SentAt > now-60_000 {
				minute++
			}
		}
	}
	return minute, hour
}

func uploadMedia(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	typ := r.URL.Query().Get("type")
	limits := map[string]int64{"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}
	limit, ok := limits[typ]
	if !ok {
		return nil, errf(40004, "invalid media type")
	}
	// The body was not read before taking the lock; read it now (bounded).
	if err := r.ParseMultipartForm(limit + 1<<20); err != nil {
		return nil, errf(codeInvalidParam, "multipart form required: %v", err)
	}
	file, hdr, err := r.FormFile("media")
	if err != nil {
		return nil, errf(codeInvalidParam, "media field required")
	}
	defer file.Close()
	if hdr.Size < 5 || hdr.Size > limit {
		return nil, errf(40006, "invalid media size")
	}
	id := f.nextID("media")
	c.Media[id] = f.now().Unix()
	return m("type", typ, "media_id", id, "created_at", strconv.FormatInt(f.now().Unix(), 10)), nil
}

// --- customer-acquisition links ---

// linkReq is customer_acquisition/create_link, get, update_link and delete_link.
type linkReq struct {
	LinkID     string    `json:"link_id"`
	LinkName   string    `json:"link_name"`
	Range      linkRange `json:"range"`
	SkipVerify *bool     `json:"skip_verify"`
}

type linkRange struct {
	UserList       []string `json:"user_list"`
	DepartmentList []int64  `json:"department_list"`
}

func (c *Corp) checkLink(r linkReq) *apiError {
	if r.LinkName == "" || len([]rune(r.LinkName)) > 30 {
		return errf(codeInvalidParam, "link_name required, at most 30 characters")
	}
	if len(r.Range.UserList) == 0 || len(r.Range.UserList) > maxContactWayUsers {
		return errf(codeInvalidParam, "range.user_list must hold 1 to 100 users")
	}
	for _, u := range r.Range.UserList {
		if c.Staff[u] == nil {
			return errf(codeUnknownUser, "userid not found: %s", u)
		}
		if !c.canContact(u) {
			return errf(codeNoContactPermission, "user %s has no customer contact permission or is not activated", u)
		}
	}
	return nil
}

func createLink(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req linkReq
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if e := c.checkLink(req); e != nil {
		return nil, e
	}
	if c.Links == nil {
		c.Links = map[string]*Link{}
	}
	id := f.nextID("al")
	l := &Link{ID: id, Name: req.LinkName, URL: f.URL() + "/fake/link/" + c.ID + "/" + id, Users: req.Range.UserList, SkipVerify: req.SkipVerify == nil || *req.SkipVerify}
	c.Links[id] = l
	return m("link", map[string]any{"link_id": id, "link_name": l.Name, "url": l.URL, "create_time": f.now().Unix()}), nil
}

func (c *Corp) link(body []byte) (*Link, *apiError) {
	var req linkReq
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	l := c.Links[req.LinkID]
	if l == nil {
		return nil, errf(codeInvalidParam, "invalid link_id")
	}
	return l, nil
}

func getLink(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	l, e := c.link(body)
	if e != nil {
		return nil, e
	}
	return m("link", map[string]any{"link_id": l.ID, "link_name": l.Name, "url": l.URL}, "range", linkRange{UserList: l.Users, DepartmentList: []int64{}}, "skip_verify", l.SkipVerify), nil
}

func updateLink(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	l, e := c.link(body)
	if e != nil {
		return nil, e
	}
	var req linkReq
	_ = decode(body, &req) // decoded once already by c.link
	if req.LinkName == "" {
		req.LinkName = l.Name
	}
	if e := c.checkLink(req); e != nil {
		return nil, e
	}
	l.Name, l.Users = req.LinkName, req.Range.UserList
	if req.SkipVerify != nil {
		l.SkipVerify = *req.SkipVerify
	}
	return nil, nil
}

func deleteLink(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	l, e := c.link(body)
	if e != nil {
		return nil, e
	}
	delete(c.Links, l.ID)
	return nil, nil
}

// --- resigned-staff handover ---

// transferCustomers moves customers of a staff member who left to a
// successor. WeCom completes it within 24 hours; the fake does it at once.
// Customers in RefuseTransfer answer customer_refused through transfer_fail later;
// here they get errcode 0 and stay put, as with WeCom.
func transferCustomers(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		Handover string   `json:"handover_userid"`
		Takeover string   `json:"takeover_userid"`
		External []string `json:"external_userid"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if c.Staff[req.Takeover] == nil {
		return nil, errf(codeUnknownUser, "takeover_userid not found")
	}
	if c.Staff[req.Handover] != nil {
		return nil, errf(codeStaffNotResigned, "handover_userid has not resigned")
	}
	if len(req.External) == 0 || len(req.External) > 100 {
		return nil, errf(codeInvalidParam, "external_userid must hold 1 to 100 customers")
	}
	var out []wecom.TransferResult
	for _, ext := range req.External {
		cu := c.Customers[ext]
		if cu == nil || cu.Follows[req.Handover] == nil {
			out = append(out, wecom.TransferResult{ExternalUserID: ext, ErrCode: 40096})
			continue
		}
		tr := Transfer{ExternalUserID: ext, From: req.Handover, To: req.Takeover, Status: transferRefused}
		if !c.RefuseTransfer[ext] {
			fu := *cu.Follows[req.Handover]
			fu.UserID, fu.AddWay = req.Takeover, 202
			delete(cu.Follows, req.Handover)
			cu.Follows[req.Takeover] = &fu
			tr.Status, tr.TakeoverTime = transferDone, f.now().Unix()
		}
		c.Transfers = append(c.Transfers, tr)
		out = append(out, wecom.TransferResult{ExternalUserID: ext})
	}
	return m("customer", out), nil
}

// transferResult reports the hand-over of a leaver's customers to one
// successor, a page at a time.
func transferResult(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		Handover string `json:"handover_userid"`
		Takeover string `json:"takeover_userid"`
		Cursor   string `json:"cursor"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if req.Handover == "" || req.Takeover == "" {
		return nil, errf(codeInvalidParam, "handover_userid and takeover_userid are required")
	}
	byExt := map[string]Transfer{}
	for _, tr := range c.Transfers {
		if tr.From == req.Handover && tr.To == req.Takeover {
			byExt[tr.ExternalUserID] = tr // the latest attempt wins
		}
	}
	page, next := pageOf(keys(byExt), req.Cursor, 100)
	out := make([]map[string]any, 0, len(page))
	for _, ext := range page {
		tr := byExt[ext]
		out = append(out, map[string]any{"external_userid": ext, "status": tr.Status, "takeover_time": tr.TakeoverTime})
	}
	return m("customer", out, "next_cursor", next), nil
}

// chinaTime is WeCom's day boundary.
var chinaTime = time.FixedZone("CST", 8*3600)

// Statuses of resigned/transfer_result.
const (
	transferDone    = 1
	transferWaiting = 2
	transferRefused = 3
	transferFull    = 4

	codeStaffNotResigned = 40097
	maxGroupTransfer     = 100
	// WeCom documents "at most 300 groups of one person to a new owner a
	// day" without naming the errcode of a group over it; the fake refuses
	// such a group with the frequency-limit code.
	maxGroupsTakenPerDay  = 300
	codeGroupsTakenPerDay = 45009
)

func transferGroups(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		ChatIDs  []string `json:"chat_id_list"`
		NewOwner string   `json:"new_owner"`
	}
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if len(req.ChatIDs) == 0 || len(req.ChatIDs) > maxGroupTransfer {
		return nil, errf(codeInvalidParam, "chat_id_list must hold 1 to 100 groups")
	}
	if c.Staff[req.NewOwner] == nil {
		return nil, errf(codeUnknownUser, "new_owner not found")
	}
	var failed []wecom.TransferResult
	for _, id := range req.ChatIDs {
		g := c.Groups[id]
		if g == nil {
			failed = append(failed, wecom.TransferResult{ChatID: id, ErrCode: codeUnknownChat})
			continue
		}
		key := g.Chat.Owner + ">" + req.NewOwner + ">" + f.now().In(chinaTime).Format("2006-01-02")
		if c.GroupsTaken == nil {
			c.GroupsTaken = map[string]int{}
		}
		if c.GroupsTaken[key] >= maxGroupsTakenPerDay {
			failed = append(failed, wecom.TransferResult{ChatID: id, ErrCode: codeGroupsTakenPerDay})
			continue
		}
		c.GroupsTaken[key]++
		g.Chat.Owner = req.NewOwner
	}
	return m("failed_chat_list", failed), nil
}

// --- group welcome templates ---

// groupWelcomeReq is group_welcome_template/add, edit and del; Qiflow sends
// text only (attachments are documented but unused).
type groupWelcomeReq struct {
	TemplateID string       `json:"template_id"`
	Text       *textRequest `json:"text"`
	AgentID    int64        `json:"agentid"`
	Notify     *int         `json:"notify"`
}

// WeCom's limits on group welcome templates: text bytes, and templates per corp.
const (
	maxGroupWelcomeBytes     = 3000
	maxGroupWelcomeTemplates = 100
	codeTooManyTemplates     = 41055
)

func (r groupWelcomeReq) check() *apiError {
	if r.Text == nil || r.Text.Content == "" || len(r.Text.Content) > maxGroupWelcomeBytes {
		return errf(codeInvalidParam, "text.content required, at most 3000 bytes")
	}
	return nil
}

func addGroupWelcome(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req groupWelcomeReq
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if e := req.check(); e != nil {
		return nil, e
	}
	if c.GroupWelcome == nil {
		c.GroupWelcome = map[string]string{}
	}
	if len(c.GroupWelcome) >= maxGroupWelcomeTemplates {
		return nil, errf(codeTooManyTemplates, "group welcome templates reach the limit of 100")
	}
	id := f.nextID("gwt")
	c.GroupWelcome[id] = req.Text.Content
	return m("template_id", id), nil
}

func editGroupWelcome(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req groupWelcomeReq
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if _, ok := c.GroupWelcome[req.TemplateID]; !ok {
		return nil, errf(codeInvalidParam, "invalid template_id")
	}
	if e := req.check(); e != nil {
		return nil, e
	}
	c.GroupWelcome[req.TemplateID] = req.Text.Content
	return nil, nil
}

func delGroupWelcome(f *Fake, c *Corp, r *http.Request, body []byte) (any, *apiError) {
	var req groupWelcomeReq
	if e := decode(body, &req); e != nil {
		return nil, e
	}
	if _, ok := c.GroupWelcome[req.TemplateID]; !ok {
		return nil, errf(codeInvalidParam, "invalid template_id")
	}
	delete(c.GroupWelcome, req.TemplateID)
	return nil, nil
}

// keys returns a map's keys, sorted: the fake's lists page in a stable order.
func keys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pageOf cuts a page from a sorted list; the cursor is the next offset.
func pageOf[T any](all []T, cursor string, limit int) ([]T, string) {
	start, _ := strconv.Atoi(cursor)
	start = max(0, min(start, len(all)))
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next
}
