package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/directory"
)

// The WeCom chat sidebar (聊天工具栏): a page WeCom opens beside a chat
// with a customer. WeCom's OAuth says which staff member is looking (their
// user is signed in without a password), WeCom's JS-SDK (ww.register with
// the signatures Qiflow computes, then getCurExternalContact) says which
// customer, and the page shows that customer's person, tags, lead and what
// the staff member may do. In the sandbox a stand-in for the JS-SDK picks
// one of the staff member's customers.

// WeComPages is what the sidebar asks of WeCom: who an OAuth code names,
// and JS-SDK signatures for a page (wecom.API).
type WeComPages interface {
	UserIDByCode(ctx context.Context, corpID, code string) (string, error)
	SignJS(ctx context.Context, corpID, pageURL string, agent bool) (wecom.JSSignature, error)
}

const oauthStateCookie = "qiflow_oauth_state"

// sidebarRoutes are the sidebar's signed-in routes with their permissions.
func (s *Server) sidebarRoutes() []Route {
	return []Route{
		{"GET", "/sidebar/signature", "", s.sidebarSignature},
		{"GET", "/sidebar/customers", auth.PermDirectoryRead, s.sidebarCustomers},
		{"GET", "/sidebar/contact", auth.PermDirectoryRead, s.sidebarContact},
		{"POST", "/sidebar/contact/tags", auth.PermContactsTag, s.sidebarTag},
		{"POST", "/sidebar/contact/note", auth.PermLeadsClaim, s.sidebarNote},
		{"POST", "/sidebar/contact/claim", auth.PermLeadsClaim, s.sidebarClaim},
	}
}

// sidebarCorp is the corp a sidebar page is for: ?corp= (each corp's app
// links its own), else the only one configured.
func (s *Server) sidebarCorp(c *gin.Context) (string, bool) {
	if corp := c.Query("corp"); corp != "" {
		_, ok := s.corps[corp]
		return corp, ok
	}
	if len(s.d.Corps) == 1 {
		return s.d.Corps[0].ID, true
	}
	return "", false
}

type sidebarData struct {
	CorpID  string
	AgentID int
	SDK     string // the JS-SDK's path
}

// sidebarPage is the page WeCom opens. Without a session it sends the
// browser through WeCom's OAuth (back here with ?code=&state=), signs the
// staff member's user in, and shows the page.
func (s *Server) sidebarPage(c *gin.Context) {
	corp, ok := s.sidebarCorp(c)
	if !ok || s.d.Pages == nil {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("no such corp: open the sidebar as /sidebar?corp=<corp id>"))
		return
	}
	token, _ := c.Cookie(sessionCookie)
	p, err := s.d.Auth.Authenticate(c.Request.Context(), token, corp)
	switch {
	case err == nil:
		c.Set(principalKey, p)
		c.Set(csrfKey, csrfOf(token))
		d := sidebarData{CorpID: corp, AgentID: s.d.AgentIDs[corp], SDK: "/static/vendor/wecom-jssdk-2.4.4/wecom.global.prod.js"}
		if s.d.JSSDK == "sandbox" {
			d.SDK = "/static/sandbox/wecom-jssdk.js"
		}
		s.render(c, http.StatusOK, "sidebar", "sidebar_page", s.newView(c, "", "sidebar.title", d))
		return
	case !errors.Is(err, auth.ErrUnauthenticated) && !errors.Is(err, auth.ErrNotMember):
		s.logger(c).Error("sidebar session", "err", err)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	if code := c.Query("code"); code != "" {
		s.sidebarSignIn(c, corp, code)
		return
	}
	state := randomToken()
	s.setCookie(c, oauthStateCookie, state, time.Now().Add(10*time.Minute))
	q := url.Values{"appid": {corp}, "redirect_uri": {strings.TrimSuffix(s.d.PublicURL, "/") + sidebarReturn(c)}, "response_type": {"code"}, "scope": {"snsapi_base"},
		"state": {state}, "agentid": {strconv.Itoa(s.d.AgentIDs[corp])}}
	c.Redirect(http.StatusFound, strings.TrimSuffix(s.d.OAuthBase, "/")+"/connect/oauth2/authorize?"+q.Encode()+"#wechat_redirect")
}

// sidebarReturn is the sidebar page as it was asked for (its ?corp= and
// anything the JS-SDK's page needs) without OAuth's code and state: where
// OAuth returns and where the signed-in browser goes.
func sidebarReturn(c *gin.Context) string {
	q := c.Request.URL.Query()
	q.Del("code")
	q.Del("state")
	if len(q) == 0 {
		return "/sidebar"
	}
	return "/sidebar?" + q.Encode()
}

// sidebarSignIn takes WeCom's OAuth answer: the state must be the one this
// browser was given (no sign-in another site started), the code names a
// staff member, whose user is signed in.
func (s *Server) sidebarSignIn(c *gin.Context, corp, code string) {
	lang := acceptLang(c.GetHeader("Accept-Language"))
	want, _ := c.Cookie(oauthStateCookie)
	if want == "" || c.Query("state") != want {
		s.logger(c).Warn("sidebar sign-in with a wrong state", "remote", c.ClientIP())
		s.pageError(c, http.StatusForbidden, translate(lang, "err.csrf"))
		return
	}
	s.setCookie(c, oauthStateCookie, "", time.Time{})
	staff, err := s.d.Pages.UserIDByCode(c.Request.Context(), corp, code)
	if err != nil {
		s.logger(c).Warn("sidebar sign-in: WeCom refused the code", "err", err)
		s.pageError(c, http.StatusUnauthorized, translate(lang, "sidebar.bad_code"))
		return
	}
	token, exp, err := s.d.Auth.SignInStaff(c.Request.Context(), corp, staff)
	if errors.Is(err, auth.ErrNotMember) {
		s.logger(c).Warn("sidebar sign-in: no user for the staff member", "corp", corp, "staff", staff)
		s.pageError(c, http.StatusForbidden, translate(lang, "sidebar.no_user", staff))
		return
	}
	if err != nil {
		s.logger(c).Error("sidebar sign-in", "err", err)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	s.setCookie(c, sessionCookie, token, exp)
	s.setCookie(c, corpCookie, corp, exp)
	c.Redirect(http.StatusFound, sidebarReturn(c))
}

// sidebarSignature answers ww.register's signature callbacks for a page of
// this site (?url=, ?agent=1 for the app's agentConfig).
func (s *Server) sidebarSignature(c *gin.Context) {
	p := principal(c)
	page, err := url.Parse(c.Query("url"))
	public, _ := url.Parse(s.d.PublicURL)
	if err != nil || public == nil || page.Host != public.Host || page.Scheme != public.Scheme {
		fail(c, http.StatusUnprocessableEntity, "validation_failed", "url must be a page of "+s.d.PublicURL, map[string]string{"url": "is not a page of this site"})
		return
	}
	sig, err := s.d.Pages.SignJS(c.Request.Context(), p.CorpID, c.Query("url"), c.Query("agent") == "1")
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, sig)
}

// sidebarCustomers lists the customers the signed-in staff member follows
// (the sandbox's stand-in JS-SDK picks one).
func (s *Server) sidebarCustomers(c *gin.Context) {
	p := principal(c)
	ids, err := s.d.Directory.FollowersOf(c.Request.Context(), p.CorpID, p.StaffUserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"customers": ids})
}

// sidebarContactData is the sidebar's card of one customer.
type sidebarContactData struct {
	Contact  directory.Contact
	Remark   string
	Tags     []directory.Tag // on the staff member's follow relation
	AllTags  []directory.Tag // the corp's, to add
	Lead     *leads.Lead
	Reasons  []leads.TimelineEntry // score and fit changes, newest first
	Recent   []leads.TimelineEntry // the newest things that happened
	Mine     bool
	Follower bool // the signed-in staff member follows the customer
}

func (s *Server) sidebarContact(c *gin.Context) { s.renderSidebarContact(c, http.StatusOK, "") }

func (s *Server) renderSidebarContact(c *gin.Context, status int, msg string) {
	p := principal(c)
	ext := c.Query("external_userid")
	if ext == "" {
		ext = c.PostForm("external_userid")
	}
	ctx := c.Request.Context()
	contact, err := s.d.Directory.GetContact(ctx, p.CorpID, ext)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := sidebarContactData{Contact: contact}
	if d.AllTags, err = s.d.Directory.ListTags(ctx, p.CorpID); err != nil {
		s.failPage(c, err)
		return
	}
	for _, f := range contact.Follows {
		if f.UserID != p.StaffUserID || f.DeletedAt != nil {
			continue
		}
		d.Follower, d.Remark = true, f.Remark
		var ids []string
		_ = json.Unmarshal(f.TagIDs, &ids)
		for _, t := range d.AllTags {
			if slices.Contains(ids, t.ID) {
				d.Tags = append(d.Tags, t)
			}
		}
	}
	if p.Can(auth.PermLeadsRead) {
		v, err := s.viewerOf(ctx, p)
		if err != nil {
			s.failPage(c, err)
			return
		}
		l, err := s.d.Leads.LeadOfContact(ctx, p.CorpID, ext, v)
		switch {
		case err == nil:
			d.Lead, d.Mine = l, l.OwnerUserID == p.UserID
			tl, err := s.d.Leads.Timeline(ctx, p.CorpID, l.ID, v, 50)
			if err != nil {
				s.failPage(c, err)
				return
			}
			for _, e := range tl {
				if e.Kind == "lead" && (e.Type == leads.HistoryScore || e.Type == leads.HistoryFit) && len(d.Reasons) < 5 {
					d.Reasons = append(d.Reasons, e)
				}
			}
			d.Recent = tl[:min(len(tl), 5)]
		case !errors.Is(err, leads.ErrNotFound):
			s.failPage(c, err)
			return
		}
	}
	s.render(c, status, "sidebar", "sidebar_contact", s.newView(c, "", "sidebar.title", d).WithError(msg))
}

// sidebarTag adds (?add=) or removes (?remove=) a corp tag on the customer
// as the signed-in staff member follows them; WeCom (mark_tag) is told, and
// the card shows the contact as WeCom now has it.
func (s *Server) sidebarTag(c *gin.Context) {
	p := principal(c)
	var err error
	switch {
	case p.StaffUserID == "":
		err = apperr.Field("staff_userid", "your user is not linked to a WeCom staff member")
	case c.PostForm("add") == "" && c.PostForm("remove") == "":
		err = apperr.Field("add", "name a tag to add or remove")
	default:
		var add, remove []string
		if t := c.PostForm("add"); t != "" {
			add = []string{t}
		}
		if t := c.PostForm("remove"); t != "" {
			remove = []string{t}
		}
		err = s.d.Directory.TagContact(c.Request.Context(), p.CorpID, p.StaffUserID, c.PostForm("external_userid"), add, remove)
	}
	s.afterSidebarChange(c, err)
}

// sidebarNote logs a note on the customer's lead, which must be the
// staff member's.
func (s *Server) sidebarNote(c *gin.Context) {
	p := principal(c)
	l, err := s.sidebarLead(c)
	if err == nil {
		_, err = s.d.Leads.Touch(c.Request.Context(), p.CorpID, l.ID, p.UserID, "note", c.PostForm("text"))
	}
	s.afterSidebarChange(c, err)
}

// sidebarClaim claims the customer's lead from its pool.
func (s *Server) sidebarClaim(c *gin.Context) {
	p := principal(c)
	l, err := s.sidebarLead(c)
	if err == nil {
		_, err = s.d.Leads.Claim(c.Request.Context(), p.CorpID, l.ID, p.UserID)
	}
	s.afterSidebarChange(c, err)
}

func (s *Server) sidebarLead(c *gin.Context) (*leads.Lead, error) {
	p := principal(c)
	v, err := s.viewerOf(c.Request.Context(), p)
	if err != nil {
		return nil, err
	}
	return s.d.Leads.LeadOfContact(c.Request.Context(), p.CorpID, c.PostForm("external_userid"), v)
}

// afterSidebarChange shows the customer's card again, with the refusal if
// the change was refused.
func (s *Server) afterSidebarChange(c *gin.Context, err error) {
	if err != nil {
		var apiErr *wecom.APIError
		if errors.As(err, &apiErr) {
			s.logger(c).Warn("WeCom refused a sidebar change", "err", err)
			s.renderSidebarContact(c, http.StatusBadGateway, translate(s.lang(c, principal(c)), "sidebar.wecom_refused", apiErr.Code))
			return
		}
		status, msg := s.refusal(c, err)
		s.renderSidebarContact(c, status, msg)
		return
	}
	s.renderSidebarContact(c, http.StatusOK, "")
}
