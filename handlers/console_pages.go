package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
)

// setCookie writes one of the console's cookies: HttpOnly, SameSite=Lax,
// Secure when Qiflow is served over HTTPS; expires zero ends it.
func (s *Server) setCookie(c *gin.Context, name, value string, expires time.Time) {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(s.d.PublicURL, "https://")}
	if expires.IsZero() {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	http.SetCookie(c.Writer, ck)
}

type loginData struct {
	Email string
	Next  string
}

// loginPage is the sign-in form; its CSRF token is a fresh cookie the form
// repeats.
func (s *Server) loginPage(c *gin.Context) {
	token := randomToken()
	s.setCookie(c, loginCSRFCookie, token, time.Now().Add(2*time.Hour))
	v := view{Lang: acceptLang(c.GetHeader("Accept-Language")), CSRF: token, loc: shanghai, Data: loginData{Next: safeNext(c.Query("next"))}}
	v.Title = v.T("login.title")
	s.render(c, http.StatusOK, "login", "", v)
}

// safeNext keeps a sign-in's return path only when it is a console page of
// this site (never another host).
func safeNext(next string) string {
	if strings.HasPrefix(next, "/console") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/console"
}

func (s *Server) loginSubmit(c *gin.Context) {
	email, password := strings.TrimSpace(c.PostForm("email")), c.PostForm("password")
	v := view{Lang: acceptLang(c.GetHeader("Accept-Language")), loc: shanghai, Data: loginData{Email: email, Next: safeNext(c.PostForm("next"))}}
	v.Title = v.T("login.title")
	again := func(status int, key string) {
		v.CSRF = randomToken()
		s.setCookie(c, loginCSRFCookie, v.CSRF, time.Now().Add(2*time.Hour))
		v.Error = v.T(key)
		s.render(c, status, "login", "", v)
	}
	want, _ := c.Cookie(loginCSRFCookie)
	if want == "" || !validCSRF(c, want) {
		s.logger(c).Warn("console sign-in without its CSRF token", "remote", c.ClientIP())
		again(http.StatusForbidden, "err.csrf")
		return
	}
	if email == "" || password == "" {
		again(http.StatusUnprocessableEntity, "login.missing")
		return
	}
	if wait, limited := s.loginLimited(c, auth.NormalizeEmail(email)); limited {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())))
		again(http.StatusTooManyRequests, "login.limited")
		return
	}
	token, exp, err := s.d.Auth.Login(c.Request.Context(), email, password)
	if errors.Is(err, auth.ErrBadCredentials) {
		s.logger(c).Warn("login failed", "email", auth.NormalizeEmail(email), "remote", c.ClientIP())
		again(http.StatusUnauthorized, "login.bad")
		return
	}
	if err != nil {
		s.logger(c).Error("console sign-in", "err", err)
		again(http.StatusInternalServerError, "err.internal")
		return
	}
	s.setCookie(c, loginCSRFCookie, "", time.Time{})
	s.setCookie(c, sessionCookie, token, exp)
	c.Redirect(http.StatusSeeOther, v.Data.(loginData).Next)
}

func (s *Server) logoutPage(c *gin.Context) {
	token, _ := c.Cookie(sessionCookie)
	if err := s.d.Auth.Revoke(c.Request.Context(), token); err != nil {
		s.failPage(c, err)
		return
	}
	s.setCookie(c, sessionCookie, "", time.Time{})
	s.setCookie(c, corpCookie, "", time.Time{})
	redirectPage(c, "/console/login")
}

// redirectPage sends the browser on after a change: htmx by HX-Redirect,
// a plain form by 303.
func redirectPage(c *gin.Context, to string) {
	if c.GetHeader("HX-Request") != "" {
		c.Header("HX-Redirect", to)
		c.Status(http.StatusNoContent)
		return
	}
	c.Redirect(http.StatusSeeOther, to)
}

// setLang records the language the user chose and shows the page again.
func (s *Server) setLang(c *gin.Context) {
	if err := s.d.Auth.SetLang(c.Request.Context(), principal(c).UserID, c.PostForm("lang")); err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, backTo(c))
}

// switchCorp acts in another of the user's corps from now on.
func (s *Server) switchCorp(c *gin.Context) {
	corp := c.PostForm("corp")
	corps, err := s.d.Auth.CorpsOf(c.Request.Context(), principal(c).UserID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	for _, m := range corps {
		if m.CorpID == corp {
			s.setCookie(c, corpCookie, corp, time.Now().AddDate(1, 0, 0))
			redirectPage(c, "/console")
			return
		}
	}
	s.pageError(c, http.StatusUnprocessableEntity, translate(s.lang(c, principal(c)), "err.not_member"))
}

// backTo is the console page a change came from, or the home page.
func backTo(c *gin.Context) string {
	ref, err := urlPath(c.GetHeader("Referer"))
	if err != nil {
		return "/console"
	}
	return safeNext(ref)
}

// homeData is what the home page lists.
type homeData struct {
	// Today is the day's figures by code (those who read live codes).
	Today     []livecode.StatsRow
	ShowToday bool
	Agenda    leads.Agenda
	// DeadLetters is how many events a subscriber gave up on (admins).
	DeadLetters int
	ShowAgenda  bool
}

// recycleSoonDays is how far ahead the home page warns of leads going back
// to the pool, in working days.
const recycleSoonDays = 2

// homePage is what needs the user now: their SLA clocks, the handoffs
// waiting for them, their leads about to go back to the pool; dead letters
// for those who run operations.
func (s *Server) homePage(c *gin.Context) {
	p := principal(c)
	var d homeData
	if p.Can(auth.PermLeadsClaim) || p.Can(auth.PermHandoffsAnswer) {
		a, err := s.d.Leads.AgendaOf(c.Request.Context(), p.CorpID, p.UserID, recycleSoonDays)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Agenda, d.ShowAgenda = a, true
	}
	if p.Can(auth.PermCodesRead) {
		f, err := statsFilter(p, func(string) string { return "" })
		if err == nil {
			f.From = time.Now().In(s.location(p.CorpID)).Format(time.DateOnly)
			f.To, f.GroupBy = f.From, "code"
			d.Today, err = s.d.LiveCodes.Stats(c.Request.Context(), f)
		}
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.ShowToday = true
	}
	if p.Can(auth.PermEventsRead) {
		n, err := s.d.Bus.DeadCount(c.Request.Context(), p.CorpID)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.DeadLetters = n
	}
	s.render(c, http.StatusOK, "home", "", s.newView(c, "nav.home", "home.title", d))
}

// poolData is the lead pool page: the filter, a page of leads, the pools
// to choose from and the next page's cursor.
type poolData struct {
	Filter poolQuery
	Query  string // the filter as a query string (to save as a view)
	Views  []leads.View
	Pools  []leads.Pool
	Rows   []poolRow
	Next   int64
	// Deadlines: the user's own leads, with their SLA and recycle countdowns.
	Deadlines bool
}

// poolRow is a lead in the pool's table, with its deadlines on "my leads".
type poolRow struct {
	Lead      leads.Lead
	Deadline  leads.Deadline
	Deadlines bool
	// OOB: the row replaces its old self from another part of a response.
	OOB bool
}

type poolQuery struct {
	Pool, Owner, Stage, Grade, Status, Source, Channel string
}

const poolPageSize = 50

// poolPage is the SDR workspace: the pool's leads under the same filter,
// scope and paging as GET /api/v1/leads; htmx asks for the rows alone when
// the filter changes or the next page is loaded.
func (s *Server) poolPage(c *gin.Context) {
	p := principal(c)
	f, err := s.parseLeadFilter(c.Request.Context(), p, c.Query)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := poolData{Filter: poolQuery{Pool: c.Query("pool"), Owner: c.Query("owner"), Stage: c.Query("stage"), Grade: c.Query("grade"),
		Status: c.Query("status"), Source: c.Query("source"), Channel: c.Query("channel")}}
	list, next, err := pageOf(c, "after", poolPageSize, func(cursor int64, limit int) ([]leads.Lead, error) {
		f.After, f.Limit = cursor, limit
		return s.d.Leads.List(c.Request.Context(), f)
	}, func(l leads.Lead) int64 { return l.ID })
	if err != nil {
		s.failPage(c, err)
		return
	}
	d.Next = next
	var deadlines map[int64]leads.Deadline
	if d.Deadlines = f.Owner == p.UserID && p.Can(auth.PermLeadsClaim); d.Deadlines {
		if deadlines, err = s.d.Leads.DeadlinesOf(c.Request.Context(), p.CorpID, p.UserID); err != nil {
			s.failPage(c, err)
			return
		}
	}
	for _, l := range list {
		d.Rows = append(d.Rows, poolRow{Lead: l, Deadline: deadlines[l.ID], Deadlines: d.Deadlines})
	}
	active, title := "nav.pool", "pool.title"
	if d.Deadlines {
		active, title = "nav.mine", "nav.mine"
	}
	v := s.newView(c, active, title, d)
	switch {
	case c.GetHeader("HX-Request") != "" && f.After > 0:
		s.render(c, http.StatusOK, "pool", "pool_more", v) // the next page's rows
	case c.GetHeader("HX-Request") != "":
		s.render(c, http.StatusOK, "pool", "pool_table", v)
	default:
		if d.Pools, err = s.d.Leads.Pools(c.Request.Context(), p.CorpID); err != nil {
			s.failPage(c, err)
			return
		}
		if d.Views, err = s.d.Leads.Views(c.Request.Context(), p.CorpID, p.UserID); err != nil {
			s.failPage(c, err)
			return
		}
		d.Query = c.Request.URL.RawQuery
		v.Data = d
		s.render(c, http.StatusOK, "pool", "", v)
	}
}

// claimFromPool claims a lead for the signed-in SDR and answers its row;
// a lead a colleague won meanwhile answers a message saying so.
func (s *Server) claimFromPool(c *gin.Context) {
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	p := principal(c)
	l, err := s.d.Leads.Claim(c.Request.Context(), p.CorpID, id, p.UserID)
	if c.GetHeader("HX-Request") == "" {
		s.afterLeadChange(c, err) // the lead page's plain form
		return
	}
	if errors.Is(err, leads.ErrAlreadyClaimed) {
		s.claimLost(c, id)
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	v := s.newView(c, "nav.pool", "pool.title", poolRow{Lead: *l})
	s.render(c, http.StatusOK, "pool", "pool_row", v)
}

// claimLost says a colleague claimed the lead first, in the page's message
// area, and updates its row (out of band) to show them as its owner.
func (s *Server) claimLost(c *gin.Context, id int64) {
	p := principal(c)
	l, err := func() (*leads.Lead, error) {
		v, err := s.viewerOf(c.Request.Context(), p)
		if err != nil {
			return nil, err
		}
		l, _, err := s.d.Leads.Get(c.Request.Context(), p.CorpID, id, v)
		return l, err
	}()
	if err != nil { // out of the user's sight now: the message alone
		s.failPage(c, leads.ErrAlreadyClaimed)
		return
	}
	v := s.newView(c, "nav.pool", "pool.title", poolRow{Lead: *l, OOB: true})
	v.Error = errText(v.Lang, leads.ErrAlreadyClaimed)
	c.Header("HX-Retarget", "#messages")
	c.Header("HX-Reswap", "innerHTML")
	s.render(c, http.StatusConflict, "pool", "claim_lost", v)
}

// inboxPage lists the handoffs waiting for the signed-in sales rep.
func (s *Server) inboxPage(c *gin.Context) {
	p := principal(c)
	list, err := s.d.Leads.Handoffs(c.Request.Context(), leads.HandoffFilter{CorpID: p.CorpID, ToUser: p.UserID, Status: leads.HandoffPending, Limit: 100})
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "inbox", "", s.newView(c, "nav.inbox", "inbox.title", list))
}

// answerFromInbox accepts a handoff, or rejects it with the form's reason,
// and answers the handoff's row as it now is.
func (s *Server) answerFromInbox(accept bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principal(c)
		id, ok := s.pageID(c)
		if !ok {
			return
		}
		var h *leads.Handoff
		var err error
		if accept {
			h, err = s.d.Leads.Accept(c.Request.Context(), p.CorpID, id, p.UserID)
		} else {
			h, err = s.d.Leads.Reject(c.Request.Context(), p.CorpID, id, p.UserID, c.PostForm("reason"))
		}
		if err != nil {
			s.failPage(c, err)
			return
		}
		s.render(c, http.StatusOK, "inbox", "handoff_row", s.newView(c, "nav.inbox", "inbox.title", *h))
	}
}

// saveViewFromPage saves the pool's current filter under a name for the
// user, and shows the pool with it.
func (s *Server) saveViewFromPage(c *gin.Context) {
	p := principal(c)
	v, err := s.d.Leads.SaveView(c.Request.Context(), p.CorpID, p.UserID, c.PostForm("name"), c.PostForm("query"))
	if err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/pool?"+v.Query)
}

func (s *Server) deleteViewFromPage(c *gin.Context) {
	p := principal(c)
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil {
		err = s.d.Leads.DeleteView(c.Request.Context(), p.CorpID, p.UserID, id)
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/pool")
}

// maxBulkClaim bounds one bulk claim: a page of the pool.
const maxBulkClaim = poolPageSize

// bulkClaimFromPage claims the leads ticked on the pool page, one by one
// (each within the pool's caps: past a cap the rest are refused), and
// answers a summary in the message area with each claimed row updated.
func (s *Server) bulkClaimFromPage(c *gin.Context) {
	p := principal(c)
	lang := s.lang(c, p)
	ids := c.PostFormArray("lead")
	if len(ids) == 0 || len(ids) > maxBulkClaim {
		s.pageError(c, http.StatusUnprocessableEntity, translate(lang, "pool.bulk.pick", maxBulkClaim))
		return
	}
	var rows []poolRow
	refused := map[string]int{}
	for _, raw := range ids {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			refused[translate(lang, "err.not_found")]++
			continue
		}
		l, err := s.d.Leads.Claim(c.Request.Context(), p.CorpID, id, p.UserID)
		if _, ok := apperr.As(err); ok {
			refused[errText(lang, err)]++
			continue
		}
		if err != nil {
			s.failPage(c, err)
			return
		}
		rows = append(rows, poolRow{Lead: *l, OOB: true})
	}
	v := s.newView(c, "nav.pool", "pool.title", bulkClaimData{Claimed: len(rows), Refused: refused, Rows: rows})
	c.Header("HX-Retarget", "#messages")
	c.Header("HX-Reswap", "innerHTML")
	s.render(c, http.StatusOK, "pool", "bulk_claimed", v)
}

// bulkClaimData is a bulk claim's outcome: how many were claimed, why the
// others were not (reason → how many), and the claimed rows.
type bulkClaimData struct {
	Claimed int
	Refused map[string]int
	Rows    []poolRow
}
