package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/silenceper/wechat/v2/util"
	"golang.org/x/sync/singleflight"

	"github.com/qiflow/qiflow/kv"
)

var (
	callsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "qiflow_wecom_calls_total",
		Help: "Calls to WeCom by endpoint and errcode (or transport, http_NNN).",
	}, []string{"endpoint", "errcode"})
	callSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "qiflow_wecom_call_seconds",
		Help:    "WeCom call latency by endpoint.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"endpoint"})
)

// redisFallbacks counts calls served without Redis: the token from this
// process's cache, the rate limit enforced per process.
var redisFallbacks = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "qiflow_wecom_redis_fallback_total",
	Help: "WeCom calls that went ahead while Redis was unreachable, by what was served locally (token, rate_limit).",
}, []string{"what"})

func observe(endpoint, code string, start time.Time) {
	callsTotal.WithLabelValues(endpoint, code).Inc()
	callSeconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}

// API implements Client over WeCom's HTTP API.
//
// It builds on silenceper/wechat/v2 for the callback crypto, the error type
// (util.CommonError) and the token handle interface, but sends requests
// itself: the SDK's methods take no context, its base URL is a constant, and
// several calls are defective (batch/get_by_user's external_profile typing,
// agent_id vs agentid on tag edits, empty welcome sub-objects).
type API struct {
	base    string
	http    *http.Client
	kv      *kv.Store
	limiter *Limiter
	timeout time.Duration

	mu     sync.RWMutex
	corps  map[string]CorpApp
	tokens map[string]*TokenSource
	// tickets shares one jsapi_ticket fetch among concurrent misses.
	tickets singleflight.Group
}

// NewAPI returns a client for the corps' apps at base (https://qyapi.weixin.qq.com
// in production, the fake WeCom in tests and the sandbox). timeout bounds every call.
func NewAPI(base string, store *kv.Store, timeout time.Duration, corps ...CorpApp) *API {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	a := &API{
		base:    strings.TrimRight(base, "/"),
		http:    &http.Client{Timeout: timeout, Transport: tr},
		kv:      store,
		limiter: NewLimiter(store),
		timeout: timeout,
		corps:   map[string]CorpApp{},
		tokens:  map[string]*TokenSource{},
	}
	for _, c := range corps {
		a.AddCorp(c)
	}
	return a
}

// AddCorp registers (or replaces) a corp's app.
func (a *API) AddCorp(c CorpApp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.corps[c.CorpID] = c
	a.tokens[c.CorpID] = NewTokenSource(a.kv, a.http, a.base, c)
}

// ErrUnknownCorp is returned for a corp the client has no app for.
var ErrUnknownCorp = errors.New("wecom: no app configured for this corp")

func (a *API) corp(id string) (CorpApp, *TokenSource, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	c, ok := a.corps[id]
	if !ok {
		return CorpApp{}, nil, fmt.Errorf("%w: %s", ErrUnknownCorp, id)
	}
	return c, a.tokens[id], nil
}

type priorityKey struct{}

// WithPriority marks calls made with ctx as time-critical: they go first in the rate limiter.
func WithPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, priorityKey{}, true)
}

func isPriority(ctx context.Context) bool { v, _ := ctx.Value(priorityKey{}).(bool); return v }

// request describes one call.
type request struct {
	endpoint string     // e.g. "externalcontact/get": the metric label and rate-limit key
	query    url.Values // GET parameters (access_token is added)
	body     any        // JSON body → POST
	upload   *upload    // multipart body → POST
	extraKey string     // a second rate-limit key (app messages per staff member)
}

type upload struct {
	field, filename string
	data            []byte
}

// call sends req for corpID and decodes a successful answer into out (which
// embeds util.CommonError or is nil).
func (a *API) call(ctx context.Context, corpID string, req request, out any) error {
	_, ts, err := a.corp(corpID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	prio := isPriority(ctx)
	tokenRetried := false
	for attempt := 0; ; attempt++ {
		if err := a.limiter.Wait(ctx, corpID+":"+req.endpoint, APILimit, prio); err != nil {
			callsTotal.WithLabelValues(req.endpoint, "rate_limited").Inc()
			return err
		}
		if req.extraKey != "" {
			if err := a.limiter.Wait(ctx, corpID+":"+req.extraKey, MessagePerStaffLimit, prio); err != nil {
				callsTotal.WithLabelValues(req.endpoint, "rate_limited").Inc()
				return err
			}
		}
		tok, err := ts.GetAccessTokenContext(ctx)
		if err != nil {
			return err
		}
		body, err := a.send(ctx, tok, req)
		if err != nil {
			if attempt < 2 && ctx.Err() == nil && retriableTransport(err) && (req.readOnly() || neverArrived(err)) {
				if sleep(ctx, backoff(attempt, 200*time.Millisecond)) == nil {
					continue
				}
			}
			return err
		}
		var ce util.CommonError
		if err := json.Unmarshal(body, &ce); err != nil {
			return fmt.Errorf("wecom %s: bad JSON answer: %w", req.endpoint, err)
		}
		observeCode(req.endpoint, ce.ErrCode)
		switch ce.ErrCode {
		case 0:
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("wecom %s: decode answer: %w", req.endpoint, err)
			}
			return nil
		case CodeInvalidSecret, CodeInvalidToken, CodeExpiredToken, CodeMissingToken:
			if !tokenRetried {
				// The token was revoked or expired early: drop it and retry once.
				tokenRetried = true
				ts.Invalidate(ctx, tok)
				continue
			}
		case CodeRateLimited, CodeConcurrencyLimit:
			if attempt < 3 && sleep(ctx, backoff(attempt, time.Second)) == nil {
				continue
			}
		case CodeBusy:
			if attempt < 3 && sleep(ctx, backoff(attempt, 200*time.Millisecond)) == nil {
				continue
			}
		}
		return &APIError{Endpoint: req.endpoint, Code: ce.ErrCode, Msg: ce.ErrMsg}
	}
}

func observeCode(endpoint string, code int64) {
	callsTotal.WithLabelValues(endpoint, strconv.FormatInt(code, 10)).Inc()
}

func (a *API) send(ctx context.Context, tok string, req request) ([]byte, error) {
	start := time.Now()
	q := url.Values{}
	for k, v := range req.query {
		q[k] = v
	}
	q.Set("access_token", tok)
	u := a.base + "/cgi-bin/" + req.endpoint + "?" + q.Encode()
	method, contentType := http.MethodGet, ""
	var rd io.Reader
	switch {
	case req.upload != nil:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, err := mw.CreateFormFile(req.upload.field, req.upload.filename)
		if err != nil {
			return nil, err
		}
		fw.Write(req.upload.data)
		mw.Close()
		method, contentType, rd = http.MethodPost, mw.FormDataContentType(), &buf
	case req.body != nil:
		b, err := json.Marshal(req.body)
		if err != nil {
			return nil, err
		}
		method, contentType, rd = http.MethodPost, "application/json; charset=utf-8", bytes.NewReader(b)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, scrubbedError{err}
	}
	if contentType != "" {
		hreq.Header.Set("Content-Type", contentType)
	}
	resp, err := a.http.Do(hreq)
	if err != nil {
		callsTotal.WithLabelValues(req.endpoint, "transport").Inc()
		callSeconds.WithLabelValues(req.endpoint).Observe(time.Since(start).Seconds())
		return nil, scrubbedError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	callSeconds.WithLabelValues(req.endpoint).Observe(time.Since(start).Seconds())
	if err != nil {
		callsTotal.WithLabelValues(req.endpoint, "transport").Inc()
		return nil, scrubbedError{err}
	}
	if resp.StatusCode != http.StatusOK {
		callsTotal.WithLabelValues(req.endpoint, "http_"+strconv.Itoa(resp.StatusCode)).Inc()
		return nil, &httpStatusError{endpoint: req.endpoint, status: resp.StatusCode}
	}
	return b, nil
}

type httpStatusError struct {
	endpoint string
	status   int
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("wecom %s: HTTP %d", e.endpoint, e.status)
}

// readOnly says whether the call only reads, so sending it twice is
// harmless: GETs, and WeCom's POSTs named get…, list… or transfer_result.
func (r request) readOnly() bool {
	if r.body == nil && r.upload == nil {
		return true
	}
	last := r.endpoint[strings.LastIndex(r.endpoint, "/")+1:]
	return strings.HasPrefix(last, "get") || strings.HasPrefix(last, "list") || last == "transfer_result"
}

// neverArrived says whether a failed call cannot have reached WeCom (the
// connection was never made), so even a call that changes something may be
// sent again: add_contact_way, add_join_way and messages are not repeated
// after a timeout or a 5xx, when WeCom may have acted.
func neverArrived(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func retriableTransport(err error) bool {
	var hs *httpStatusError
	if errors.As(err, &hs) {
		return hs.status >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func backoff(attempt int, base time.Duration) time.Duration {
	d := base << attempt
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type base struct {
	util.CommonError
}

// --- directory ---

func (a *API) ListDepartments(ctx context.Context, corpID string) ([]Department, error) {
	var out struct {
		base
		Department []Department `json:"department"`
	}
	err := a.call(ctx, corpID, request{endpoint: "department/list"}, &out)
	return out.Department, err
}

func (a *API) ListStaff(ctx context.Context, corpID string, departmentID int64) ([]Staff, error) {
	var out struct {
		base
		UserList []Staff `json:"userlist"`
	}
	err := a.call(ctx, corpID, request{endpoint: "user/list", query: url.Values{"department_id": {strconv.FormatInt(departmentID, 10)}}}, &out)
	return out.UserList, err
}

func (a *API) GetStaff(ctx context.Context, corpID, userID string) (Staff, error) {
	var out struct {
		base
		Staff
	}
	err := a.call(ctx, corpID, request{endpoint: "user/get", query: url.Values{"userid": {userID}}}, &out)
	return out.Staff, err
}

// --- corp tags ---

func (a *API) ListCorpTags(ctx context.Context, corpID string) ([]TagGroup, error) {
	var out struct {
		base
		TagGroup []TagGroup `json:"tag_group"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/get_corp_tag_list", body: map[string]any{}}, &out)
	return out.TagGroup, err
}

// ListStrategyTags lists the rule-group (strategy) tags, which
// get_corp_tag_list leaves out.
func (a *API) ListStrategyTags(ctx context.Context, corpID string) ([]TagGroup, error) {
	var out struct {
		base
		TagGroup []TagGroup `json:"tag_group"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/get_strategy_tag_list", body: map[string]any{}}, &out)
	return out.TagGroup, err
}

func (a *API) AddCorpTags(ctx context.Context, corpID string, g TagGroup) (TagGroup, error) {
	app, _, err := a.corp(corpID)
	if err != nil {
		return TagGroup{}, err
	}
	tags := make([]map[string]any, len(g.Tags))
	for i, t := range g.Tags {
		tags[i] = map[string]any{"name": t.Name, "order": t.Order}
	}
	body := map[string]any{"tag": tags, "agentid": app.AgentID}
	if g.GroupID != "" {
		body["group_id"] = g.GroupID
	} else {
		body["group_name"] = g.GroupName
		body["order"] = g.Order
	}
	var out struct {
		base
		TagGroup TagGroup `json:"tag_group"`
	}
	err = a.call(ctx, corpID, request{endpoint: "externalcontact/add_corp_tag", body: body}, &out)
	return out.TagGroup, err
}

func (a *API) EditCorpTag(ctx context.Context, corpID, id, name string, order int64) error {
	app, _, err := a.corp(corpID)
	if err != nil {
		return err
	}
	return a.call(ctx, corpID, request{endpoint: "externalcontact/edit_corp_tag",
		body: map[string]any{"id": id, "name": name, "order": order, "agentid": app.AgentID}}, nil)
}

func (a *API) DeleteCorpTags(ctx context.Context, corpID string, tagIDs, groupIDs []string) error {
	app, _, err := a.corp(corpID)
	if err != nil {
		return err
	}
	return a.call(ctx, corpID, request{endpoint: "externalcontact/del_corp_tag",
		body: map[string]any{"tag_id": nonNil(tagIDs), "group_id": nonNil(groupIDs), "agentid": app.AgentID}}, nil)
}

func (a *API) MarkTag(ctx context.Context, corpID, userID, externalUserID string, add, remove []string) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/mark_tag", body: map[string]any{
		"userid": userID, "external_userid": externalUserID, "add_tag": nonNil(add), "remove_tag": nonNil(remove)}}, nil)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- external contacts ---

func (a *API) ListFollowUsers(ctx context.Context, corpID string) ([]string, error) {
	var out struct {
		base
		FollowUser []string `json:"follow_user"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/get_follow_user_list"}, &out)
	return out.FollowUser, err
}

// GetExternalContact follows next_cursor until every follower is read (WeCom
// pages follow_user beyond 500).
func (a *API) GetExternalContact(ctx context.Context, corpID, externalUserID string) (ContactDetail, error) {
	var all ContactDetail
	cursor := ""
	for {
		var out struct {
			base
			ContactDetail
			NextCursor string `json:"next_cursor"`
		}
		q := url.Values{"external_userid": {externalUserID}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := a.call(ctx, corpID, request{endpoint: "externalcontact/get", query: q}, &out); err != nil {
			return ContactDetail{}, err
		}
		all.ExternalContact = out.ExternalContact
		all.FollowUser = append(all.FollowUser, out.FollowUser...)
		if out.NextCursor == "" {
			return all, nil
		}
		cursor = out.NextCursor
	}
}

func (a *API) BatchGetExternalContacts(ctx context.Context, corpID string, userIDs []string, cursor string, limit int) ([]ContactFollow, string, error) {
	var out struct {
		base
		List       []ContactFollow `json:"external_contact_list"`
		NextCursor string          `json:"next_cursor"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/batch/get_by_user",
		body: map[string]any{"userid_list": userIDs, "cursor": cursor, "limit": limit}}, &out)
	return out.List, out.NextCursor, err
}

func (a *API) RemarkExternalContact(ctx context.Context, corpID string, r Remark) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/remark", body: r}, nil)
}

// --- contact ways ---

func (a *API) AddContactWay(ctx context.Context, corpID string, w ContactWay) (string, string, error) {
	var out struct {
		base
		ConfigID string `json:"config_id"`
		QRCode   string `json:"qr_code"`
	}
	w.ConfigID, w.QRCode = "", ""
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/add_contact_way", body: w}, &out)
	return out.ConfigID, out.QRCode, err
}

func (a *API) GetContactWay(ctx context.Context, corpID, configID string) (ContactWay, error) {
	var out struct {
		base
		ContactWay ContactWay `json:"contact_way"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/get_contact_way", body: map[string]string{"config_id": configID}}, &out)
	return out.ContactWay, err
}

func (a *API) UpdateContactWay(ctx context.Context, corpID string, w ContactWay) error {
	// update_contact_way takes neither type nor scene.
	body := map[string]any{"config_id": w.ConfigID, "remark": w.Remark, "state": w.State, "user": nonNil(w.User)}
	if w.SkipVerify != nil {
		body["skip_verify"] = *w.SkipVerify
	}
	if w.Style != 0 {
		body["style"] = w.Style
	}
	if len(w.Party) > 0 {
		body["party"] = w.Party
	}
	return a.call(ctx, corpID, request{endpoint: "externalcontact/update_contact_way", body: body}, nil)
}

func (a *API) DeleteContactWay(ctx context.Context, corpID, configID string) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/del_contact_way", body: map[string]string{"config_id": configID}}, nil)
}

// contactWaysSince is the earliest creation time list_contact_way serves.
var contactWaysSince = time.Date(2021, 7, 10, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

func (a *API) ListContactWays(ctx context.Context, corpID, cursor string, limit int) ([]string, string, error) {
	var out struct {
		base
		ContactWay []struct {
			ConfigID string `json:"config_id"`
		} `json:"contact_way"`
		NextCursor string `json:"next_cursor"`
	}
	// Without start_time WeCom lists only the last 90 days' ways; ways exist
	// through this API from 2021-07-10 on.
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/list_contact_way", body: map[string]any{"cursor": cursor, "limit": limit,
		"start_time": contactWaysSince.Unix(), "end_time": time.Now().Unix()}}, &out)
	ids := make([]string, len(out.ContactWay))
	for i, w := range out.ContactWay {
		ids[i] = w.ConfigID
	}
	return ids, out.NextCursor, err
}

// --- welcome ---

func (a *API) SendWelcomeMsg(ctx context.Context, corpID string, m WelcomeMsg) error {
	return a.call(WithPriority(ctx), corpID, request{endpoint: "externalcontact/send_welcome_msg", body: m}, nil)
}

// --- mass messages to customers (企业群发) ---

// MsgTemplate is an add_msg_template request for customers (chat_type
// single): WeCom queues it for the sender, who confirms it in their app.
type MsgTemplate struct {
	ChatType       string       `json:"chat_type,omitempty"`
	ExternalUserID []string     `json:"external_userid,omitempty"`
	Sender         string       `json:"sender,omitempty"`
	Text           *Text        `json:"text,omitempty"`
	Attachments    []Attachment `json:"attachments,omitempty"`
}

// MaxMsgText is the longest text of a mass message, in bytes.
const MaxMsgText = 4000

// AddMsgTemplate queues a mass message; it returns its msgid and the
// customers it cannot reach (fail_list).
func (a *API) AddMsgTemplate(ctx context.Context, corpID string, m MsgTemplate) (string, []string, error) {
	var out struct {
		base
		FailList []string `json:"fail_list"`
		MsgID    string   `json:"msgid"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/add_msg_template", body: m}, &out)
	return out.MsgID, out.FailList, err
}

// GroupMsgSend is one customer's copy of a mass message: Status 0 not sent
// yet, 1 sent, 2 not the staff member's customer, 3 over the customer's
// receiving limit.
type GroupMsgSend struct {
	ExternalUserID string `json:"external_userid"`
	UserID         string `json:"userid"`
	Status         int    `json:"status"`
	SendTime       int64  `json:"send_time"`
}

// GroupMsgSendResult pages through a staff member's copies of a mass message.
func (a *API) GroupMsgSendResult(ctx context.Context, corpID, msgID, userID, cursor string) ([]GroupMsgSend, string, error) {
	var out struct {
		base
		SendList   []GroupMsgSend `json:"send_list"`
		NextCursor string         `json:"next_cursor"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/get_groupmsg_send_result",
		body: map[string]any{"msgid": msgID, "userid": userID, "limit": 1000, "cursor": cursor}}, &out)
	return out.SendList, out.NextCursor, err
}

// --- groups ---

// MaxGroupOwners is how many owners one groupchat/list call may filter by.
const MaxGroupOwners = 100

func (a *API) ListGroupChats(ctx context.Context, corpID string, owners []string, cursor string, limit int) ([]GroupChatRef, string, error) {
	var out struct {
		base
		List       []GroupChatRef `json:"group_chat_list"`
		NextCursor string         `json:"next_cursor"`
	}
	if len(owners) == 0 || len(owners) > MaxGroupOwners {
		return nil, "", fmt.Errorf("wecom groupchat/list: 1 to %d owners per call, got %d", MaxGroupOwners, len(owners))
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/list",
		body: map[string]any{"status_filter": 0, "owner_filter": map[string]any{"userid_list": owners}, "cursor": cursor, "limit": limit}}, &out)
	return out.List, out.NextCursor, err
}

func (a *API) GetGroupChat(ctx context.Context, corpID, chatID string) (GroupChat, error) {
	var out struct {
		base
		GroupChat GroupChat `json:"group_chat"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/get",
		body: map[string]any{"chat_id": chatID, "need_name": 1}}, &out)
	if err == nil && out.GroupChat.ChatID == "" {
		// Never a row without its key: treat it as WeCom not knowing the chat.
		return GroupChat{}, &APIError{Endpoint: "externalcontact/groupchat/get", Code: CodeInvalidChatID, Msg: "answer without a chat_id"}
	}
	return out.GroupChat, err
}

func (a *API) AddJoinWay(ctx context.Context, corpID string, w JoinWay) (string, error) {
	var out struct {
		base
		ConfigID string `json:"config_id"`
	}
	w.ConfigID, w.QRCode = "", ""
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/add_join_way", body: w}, &out)
	return out.ConfigID, err
}

func (a *API) GetJoinWay(ctx context.Context, corpID, configID string) (JoinWay, error) {
	var out struct {
		base
		JoinWay JoinWay `json:"join_way"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/get_join_way", body: map[string]string{"config_id": configID}}, &out)
	return out.JoinWay, err
}

func (a *API) UpdateJoinWay(ctx context.Context, corpID string, w JoinWay) error {
	w.QRCode = ""
	return a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/update_join_way", body: w}, nil)
}

func (a *API) DeleteJoinWay(ctx context.Context, corpID, configID string) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/del_join_way", body: map[string]string{"config_id": configID}}, nil)
}

// --- group welcome templates ---

func (a *API) AddGroupWelcomeTemplate(ctx context.Context, corpID, text string) (string, error) {
	app, _, err := a.corp(corpID)
	if err != nil {
		return "", err
	}
	var out struct {
		base
		TemplateID string `json:"template_id"`
	}
	err = a.call(ctx, corpID, request{endpoint: "externalcontact/group_welcome_template/add",
		// notify: WeCom prompts group owners to apply the welcome to their groups.
		body: map[string]any{"text": Text{Content: text}, "agentid": app.AgentID, "notify": 1}}, &out)
	return out.TemplateID, err
}

func (a *API) EditGroupWelcomeTemplate(ctx context.Context, corpID, templateID, text string) error {
	app, _, err := a.corp(corpID)
	if err != nil {
		return err
	}
	return a.call(ctx, corpID, request{endpoint: "externalcontact/group_welcome_template/edit",
		body: map[string]any{"template_id": templateID, "text": Text{Content: text}, "agentid": app.AgentID}}, nil)
}

func (a *API) DeleteGroupWelcomeTemplate(ctx context.Context, corpID, templateID string) error {
	app, _, err := a.corp(corpID)
	if err != nil {
		return err
	}
	return a.call(ctx, corpID, request{endpoint: "externalcontact/group_welcome_template/del",
		body: map[string]any{"template_id": templateID, "agentid": app.AgentID}}, nil)
}

// --- customer-acquisition links ---

func (a *API) CreateAcquisitionLink(ctx context.Context, corpID string, l AcquisitionLink) (AcquisitionLink, error) {
	var out struct {
		base
		Link AcquisitionLink `json:"link"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/customer_acquisition/create_link", body: map[string]any{
		"link_name": l.LinkName, "range": AcquisitionRange{UserList: nonNil(l.Users)}, "skip_verify": l.SkipVerify}}, &out)
	out.Link.Users = l.Users
	return out.Link, err
}

func (a *API) GetAcquisitionLink(ctx context.Context, corpID, linkID string) (AcquisitionLink, error) {
	var out struct {
		base
		Link  AcquisitionLink  `json:"link"`
		Range AcquisitionRange `json:"range"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/customer_acquisition/get", body: map[string]string{"link_id": linkID}}, &out)
	out.Link.Users = out.Range.UserList
	return out.Link, err
}

func (a *API) UpdateAcquisitionLink(ctx context.Context, corpID string, l AcquisitionLink) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/customer_acquisition/update_link", body: map[string]any{
		"link_id": l.LinkID, "link_name": l.LinkName, "range": AcquisitionRange{UserList: nonNil(l.Users)}, "skip_verify": l.SkipVerify}}, nil)
}

func (a *API) DeleteAcquisitionLink(ctx context.Context, corpID, linkID string) error {
	return a.call(ctx, corpID, request{endpoint: "externalcontact/customer_acquisition/delete_link", body: map[string]string{"link_id": linkID}}, nil)
}

// --- resigned-staff handover ---

func (a *API) TransferResignedCustomers(ctx context.Context, corpID, handover, takeover string, externalUserIDs []string) ([]TransferResult, error) {
	var out struct {
		base
		Customer []TransferResult `json:"customer"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/resigned/transfer_customer", body: map[string]any{
		"handover_userid": handover, "takeover_userid": takeover, "external_userid": externalUserIDs}}, &out)
	return out.Customer, err
}

// TransferStatus is one customer's hand-over as resigned/transfer_result
// reports it: 1 taken over, 2 waiting, 3 refused by the customer, 4 the
// successor has reached their customer limit.
type TransferStatus struct {
	ExternalUserID string `json:"external_userid"`
	Status         int    `json:"status"`
	TakeoverTime   int64  `json:"takeover_time"`
}

// Transfer statuses.
const (
	TransferDone    = 1
	TransferWaiting = 2
	TransferRefused = 3
	TransferFull    = 4
)

func (a *API) ResignedTransferResult(ctx context.Context, corpID, handover, takeover, cursor string) ([]TransferStatus, string, error) {
	var out struct {
		base
		Customer   []TransferStatus `json:"customer"`
		NextCursor string           `json:"next_cursor"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/resigned/transfer_result", body: map[string]any{
		"handover_userid": handover, "takeover_userid": takeover, "cursor": cursor}}, &out)
	return out.Customer, out.NextCursor, err
}

func (a *API) TransferGroupChats(ctx context.Context, corpID string, chatIDs []string, newOwner string) ([]TransferResult, error) {
	var out struct {
		base
		Failed []TransferResult `json:"failed_chat_list"`
	}
	err := a.call(ctx, corpID, request{endpoint: "externalcontact/groupchat/transfer", body: map[string]any{
		"chat_id_list": chatIDs, "new_owner": newOwner}}, &out)
	return out.Failed, err
}

// --- messages and media ---

func (a *API) SendAppMessage(ctx context.Context, corpID, userID, text string) error {
	app, _, err := a.corp(corpID)
	if err != nil {
		return err
	}
	return a.call(ctx, corpID, request{endpoint: "message/send", extraKey: "message/send:" + userID,
		body: AppMessage{ToUser: userID, MsgType: "text", AgentID: app.AgentID, Text: &Text{Content: text}, EnableDuplicateCheck: 1, DuplicateCheckInterval: 1800}}, nil)
}

func (a *API) UploadMedia(ctx context.Context, corpID, mediaType, filename string, r io.Reader) (string, time.Time, error) {
	data, err := io.ReadAll(io.LimitReader(r, 20<<20+1))
	if err != nil {
		return "", time.Time{}, err
	}
	if len(data) > 20<<20 {
		return "", time.Time{}, fmt.Errorf("wecom media/upload: %s is larger than 20 MB", filename)
	}
	var out struct {
		base
		MediaID   string `json:"media_id"`
		CreatedAt string `json:"created_at"`
	}
	err = a.call(ctx, corpID, request{endpoint: "media/upload", query: url.Values{"type": {mediaType}},
		upload: &upload{field: "media", filename: filename, data: data}}, &out)
	if err != nil {
		return "", time.Time{}, err
	}
	secs, _ := strconv.ParseInt(out.CreatedAt, 10, 64)
	return out.MediaID, time.Unix(secs, 0).UTC(), nil
}

var _ Client = (*API)(nil)
