package handlers

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
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
	"github.com/qiflow/qiflow/livecode"
)

// The console: server-rendered pages (html/template) with htmx for the
// parts of a page that change, signed in with a session cookie. Pages call
// the same services, with the same permission per action, as the JSON API;
// the console's routes are listed with their permission like the API's, so
// one test checks both.

//go:embed console/templates/*.html
var consoleTemplates embed.FS

//go:embed console/static
var consoleStatic embed.FS

const (
	sessionCookie = "qiflow_session"
	corpCookie    = "qiflow_corp"
	// loginCSRFCookie carries the sign-in form's token before a session
	// exists (double submit: the form's field must repeat it).
	loginCSRFCookie = "qiflow_login_csrf"
	csrfHeader      = "X-CSRF-Token"
	csrfField       = "_csrf"
)

// contentSecurityPolicy allows only Qiflow's own scripts and styles: no
// inline script or style anywhere in the console (htmx is told not to add
// its indicator style).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// consolePages are the parsed pages: each is the layout with its own
// content and partials.
type consolePages map[string]*template.Template

func parseConsole() (consolePages, error) {
	pages := consolePages{}
	names, err := fs.Glob(consoleTemplates, "console/templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "console/templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(consoleFuncs).ParseFS(consoleTemplates, "console/templates/layout.html", name)
		if err != nil {
			return nil, err
		}
		pages[base] = t
	}
	return pages, nil
}

var consoleFuncs = template.FuncMap{
	"stages": func() []string { return leads.Stages },
	"codeStatuses": func() []string {
		return []string{livecode.StatusActive, livecode.StatusPaused, livecode.StatusArchived}
	},
	"codeModes": func() []string {
		return []string{livecode.ModeWeComQR, livecode.ModeRotating, livecode.ModeJoinWay, livecode.ModeLink, livecode.ModeStores}
	},
	"cell": func(r auth.Role, p auth.Permission, allowed bool) roleCell {
		return roleCell{Role: r, Perm: p, Allowed: allowed}
	},
	"codeFormModes": func() []string { return formModes },
	"has":           func(list []string, v string) bool { return slices.Contains(list, v) },
	"join":          strings.Join,
	"list":          func(xs ...string) []string { return xs },
	"statsGroups":   func() []string { return []string{"day", "code", "channel", "staff", "store"} },
	"add":           func(a, b int) int { return a + b },
	"pct":           func(share float64) float64 { return share * 100 },
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"percent": func(done, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return min(100, done*100/total)
	},
	"grades": func() []string { return leads.Grades },
	"query": func(kv ...string) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				v.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(v.Encode())
	},
}

// view is what every page's template gets: the signed-in user, their
// language and corps, the CSRF token for forms, and the page's own data.
type view struct {
	P      auth.Principal
	Lang   string
	CSRF   string
	Corps  []auth.Membership
	Nav    []navGroup
	Active string
	Title  string
	Error  string
	Data   any
	// Scripts and Styles are a page's own assets (loaded after the
	// console's), so a heavy library loads only where it is used.
	Scripts, Styles []string
	loc             *time.Location
	// names are the corp's users' names (or emails) by id, for Who.
	names map[int64]string
}

type navItem struct {
	Key, Path string
}

// navGroup is a menu entry: a page, or a dropdown of pages (settings,
// operations) so the menu fits a laptop's width.
type navGroup struct {
	Key   string // the dropdown's label ("" for a page of its own)
	Items []navItem
}

// Holds says whether the group holds the page being shown.
func (g navGroup) Holds(active string) bool {
	for _, it := range g.Items {
		if it.Key == active {
			return true
		}
	}
	return false
}

// T translates key into the view's language; args fill its %s and %d.
func (v view) T(key string, args ...any) string { return translate(v.Lang, key, args...) }

// Time shows a Unix-millisecond moment in the corp's time zone.
func (v view) Time(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).In(v.loc).Format("2006-01-02 15:04")
}

// TimePtr is Time of an optional moment.
func (v view) TimePtr(ms *int64) string {
	if ms == nil {
		return ""
	}
	return v.Time(*ms)
}

// Who names a user of the corp: "—" for none, "mine" for the viewer, their
// name or email, else their id.
func (v view) Who(id int64) string {
	switch {
	case id == 0:
		return "—"
	case id == v.P.UserID:
		return v.T("pool.owner.me")
	case v.names[id] != "":
		return v.names[id]
	}
	return "#" + strconv.FormatInt(id, 10)
}

// Can says whether the user may do what a button would do: a page shows
// no action the API would refuse.
func (v view) Can(perm string) bool { return v.P.Can(auth.Permission(perm)) }

// Until is how long until a moment, as a countdown ("2d 3h"), or
// "overdue" once it has passed.
func (v view) Until(ms int64) string {
	if ms == 0 {
		return ""
	}
	d := time.Until(time.UnixMilli(ms))
	if d <= 0 {
		return v.T("time.overdue")
	}
	days, hours, mins := int(d.Hours())/24, int(d.Hours())%24, int(d.Minutes())%60
	switch {
	case days > 0:
		return v.T("time.dh", days, hours)
	case hours > 0:
		return v.T("time.hm", hours, mins)
	}
	return v.T("time.m", max(mins, 1))
}

// ErrText is an error as the user reads it: a domain refusal in their
// language (by its code), anything else as a plain "something went wrong".
func (v view) ErrText(err error) string { return errText(v.Lang, err) }

func errText(lang string, err error) string {
	ae, ok := apperr.As(err)
	if !ok {
		return translate(lang, "err.internal")
	}
	if msg := translate(lang, "err."+ae.Code); msg != "err."+ae.Code {
		return msg
	}
	return ae.Error()
}

// consoleNav is the menu, each entry shown to those with its permission.
var consoleNav = []struct {
	navItem
	perm  auth.Permission
	group string // the dropdown it is in ("" for the bar itself)
}{
	{navItem{"nav.home", "/console"}, "", ""},
	{navItem{"nav.codes", "/console/codes"}, auth.PermCodesRead, ""},
	{navItem{"nav.results", "/console/results"}, auth.PermCodesRead, ""},
	{navItem{"nav.pool", "/console/pool"}, auth.PermLeadsRead, ""},
	{navItem{"nav.mine", "/console/pool?owner=me"}, auth.PermLeadsClaim, ""},
	{navItem{"nav.people", "/console/people"}, auth.PermLeadsRead, ""},
	{navItem{"nav.inbox", "/console/inbox"}, auth.PermHandoffsAnswer, ""},
	{navItem{"nav.segments", "/console/segments"}, auth.PermLeadsRead, "nav.marketing"},
	{navItem{"nav.journeys", "/console/journeys"}, auth.PermLeadsRead, "nav.marketing"},
	{navItem{"nav.imports", "/console/imports"}, auth.PermLeadsWrite, ""},
	{navItem{"nav.exports", "/console/exports"}, auth.PermPoolsManage, "nav.settings"},
	{navItem{"nav.scoring", "/console/settings/scoring"}, auth.PermLeadsRead, "nav.settings"},
	{navItem{"nav.users", "/console/settings/users"}, auth.PermUsersManage, "nav.settings"},
	{navItem{"nav.forms", "/console/settings/forms"}, auth.PermLeadsRead, "nav.settings"},
	{navItem{"nav.pools", "/console/settings/pools"}, auth.PermPoolsManage, "nav.settings"},
	{navItem{"nav.teams", "/console/settings/teams"}, auth.PermUsersManage, "nav.settings"},
	{navItem{"nav.roles", "/console/settings/roles"}, auth.PermUsersManage, "nav.settings"},
	{navItem{"nav.calendar", "/console/settings/calendar"}, "", "nav.settings"},
	{navItem{"nav.tokens", "/console/settings/tokens"}, auth.PermTokensManage, "nav.settings"},
	{navItem{"nav.events", "/console/events"}, auth.PermEventsRead, "nav.ops"},
	{navItem{"nav.jobs", "/console/jobs"}, auth.PermJobsRead, "nav.ops"},
}

// consoleRoutes are the console's signed-in routes with their permissions
// ("" = any signed-in user), listed for the role × route test.
func (s *Server) consoleRoutes() []Route {
	return append([]Route{
		{"GET", "/console", "", s.homePage},
		{"GET", "/console/pool", auth.PermLeadsRead, s.poolPage},
		{"POST", "/console/leads/:id/claim", auth.PermLeadsClaim, s.claimFromPool},
		{"POST", "/console/leads/claim", auth.PermLeadsClaim, s.bulkClaimFromPage},
		{"POST", "/console/views", auth.PermLeadsRead, s.saveViewFromPage},
		{"POST", "/console/views/:id/delete", auth.PermLeadsRead, s.deleteViewFromPage},
		{"GET", "/console/leads/:id", auth.PermLeadsRead, s.leadPage},
		{"GET", "/console/people", auth.PermLeadsRead, s.peoplePage},
		{"POST", "/console/leads/:id/touch", auth.PermLeadsClaim, s.touchFromPage},
		{"POST", "/console/leads/:id/release", auth.PermLeadsClaim, s.releaseFromPage},
		{"POST", "/console/leads/:id/qualify", auth.PermLeadsClaim, s.qualifyFromPage},
		{"POST", "/console/leads/:id/fields", auth.PermLeadsClaim, s.fieldsFromPage},
		{"POST", "/console/leads/:id/tasks", auth.PermLeadsClaim, s.taskFromPage},
		{"POST", "/console/tasks/:id/done", auth.PermLeadsClaim, s.taskDoneFromPage},
		{"GET", "/console/inbox", auth.PermHandoffsAnswer, s.inboxPage},
		{"POST", "/console/handoffs/:id/accept", auth.PermHandoffsAnswer, s.answerFromInbox(true)},
		{"POST", "/console/handoffs/:id/reject", auth.PermHandoffsAnswer, s.answerFromInbox(false)},
		{"GET", "/console/codes", auth.PermCodesRead, s.codesPage},
		{"GET", "/console/codes/new", auth.PermCodesManage, s.newCodePage},
		{"POST", "/console/codes", auth.PermCodesManage, s.createCodeFromPage},
		{"GET", "/console/codes/new-group", auth.PermCodesManage, s.newGroupCodePage},
		{"POST", "/console/codes/groups", auth.PermCodesManage, s.createGroupCodeFromPage},
		{"GET", "/console/codes/:id/edit", auth.PermCodesManage, s.editCodePage},
		{"POST", "/console/codes/:id", auth.PermCodesManage, s.updateCodeFromPage},
		{"GET", "/console/media/:id", auth.PermCodesRead, s.mediaPreview},
		{"GET", "/console/codes/:id/qr.png", auth.PermCodesRead, s.codeQRPNG},
		{"GET", "/console/codes/:id/qr.svg", auth.PermCodesRead, s.codeQRSVG},
		{"POST", "/console/codes/:id/pause", auth.PermCodesManage, s.codeStatusFromPage(livecode.StatusPaused)},
		{"POST", "/console/codes/:id/resume", auth.PermCodesManage, s.codeStatusFromPage(livecode.StatusActive)},
		{"POST", "/console/codes/:id/archive", auth.PermCodesManage, s.codeStatusFromPage(livecode.StatusArchived)},
		{"GET", "/console/stores", auth.PermCodesRead, s.consoleStoresPage},
		{"POST", "/console/stores/import", auth.PermCodesManage, s.importStoresFromPage},
		{"GET", "/console/results", auth.PermCodesRead, s.resultsPage},
		{"GET", "/console/results/export", auth.PermCodesRead, s.codeStats},
		{"GET", "/console/imports", auth.PermLeadsWrite, s.importsPage},
		{"GET", "/console/exports", auth.PermPoolsManage, s.exportsPage},
		{"GET", "/console/exports/leads", auth.PermLeadsExport, s.exportLeads},
		{"POST", "/console/imports", auth.PermLeadsWrite, s.uploadFromPage},
		{"GET", "/console/imports/:id", auth.PermLeadsWrite, s.importPage},
		{"GET", "/console/imports/:id/report", auth.PermLeadsWrite, s.importReport},
		{"GET", "/console/settings/scoring", auth.PermLeadsRead, s.scoringPage},
		{"POST", "/console/settings/scoring/rules", auth.PermScoringManage, s.createRuleFromPage},
		{"POST", "/console/settings/scoring/preview", auth.PermScoringManage, s.previewRuleFromPage},
		{"POST", "/console/settings/scoring/rules/:id/delete", auth.PermScoringManage, s.deleteRuleFromPage},
		{"POST", "/console/settings/scoring/fit-rules", auth.PermScoringManage, s.createFitRuleFromPage},
		{"POST", "/console/settings/scoring/fit-rules/:id/delete", auth.PermScoringManage, s.deleteFitRuleFromPage},
		{"GET", "/console/settings/users", auth.PermUsersManage, s.usersPage},
		{"POST", "/console/settings/users", auth.PermUsersManage, s.createUserFromPage},
		{"POST", "/console/settings/users/:id/role", auth.PermUsersManage, s.setRoleFromPage},
		{"POST", "/console/settings/users/:id/disabled", auth.PermUsersManage, s.setDisabledFromPage},
		{"GET", "/console/settings/tokens", auth.PermTokensManage, s.tokensPage},
		{"GET", "/console/settings/forms", auth.PermLeadsRead, s.formsPage},
		{"POST", "/console/settings/forms", auth.PermLeadsWrite, s.saveFormFromPage},
		{"GET", "/console/settings/teams", auth.PermUsersManage, s.teamsPage},
		{"POST", "/console/settings/teams", auth.PermUsersManage, s.createTeamFromPage},
		{"POST", "/console/settings/teams/members", auth.PermUsersManage, s.addTeamMemberFromPage},
		{"GET", "/console/settings/calendar", "", s.calendarPage},
		{"POST", "/console/settings/calendar", auth.PermUsersManage, s.saveCalendarFromPage},
		{"GET", "/console/settings/roles", auth.PermUsersManage, s.rolesPage},
		{"POST", "/console/settings/roles/:role/:permission", auth.PermUsersManage, s.setPermissionFromPage},
		{"GET", "/console/settings/pools", auth.PermPoolsManage, s.poolsPage},
		{"POST", "/console/settings/pools/:id", auth.PermPoolsManage, s.updatePoolFromPage},
		{"POST", "/console/settings/sla", auth.PermPoolsManage, s.createSLAFromPage},
		{"POST", "/console/settings/fields", auth.PermPoolsManage, s.defineFieldFromPage},
		{"POST", "/console/settings/fields/:key/delete", auth.PermPoolsManage, s.deleteFieldFromPage},
		{"POST", "/console/settings/assignment", auth.PermPoolsManage, s.createAssignmentRuleFromPage},
		{"POST", "/console/settings/tokens", auth.PermTokensManage, s.createTokenFromPage},
		{"POST", "/console/settings/tokens/:id/revoke", auth.PermTokensManage, s.revokeTokenFromPage},
		{"GET", "/console/events", auth.PermEventsRead, s.eventsPage},
		{"POST", "/console/events/:id/replay", auth.PermEventsReplay, s.settleFromPage(true)},
		{"POST", "/console/events/:id/dismiss", auth.PermEventsReplay, s.settleFromPage(false)},
		{"GET", "/console/jobs", auth.PermJobsRead, s.jobsPage},
		{"POST", "/console/jobs/:id/cancel", auth.PermJobsManage, s.cancelFromPage},
		{"POST", "/console/lang", "", s.setLang},
		{"POST", "/console/corp", "", s.switchCorp},
		{"POST", "/console/logout", "", s.logoutPage},
	}, append(s.journeyConsoleRoutes(), s.sidebarRoutes()...)...)
}

// ConsoleRoutes lists the console's signed-in routes (for the role × route test).
func (s *Server) ConsoleRoutes() []Route { return s.consoleRoutes() }

func (s *Server) mountConsole(r *gin.Engine) {
	pages, err := parseConsole()
	if err != nil {
		panic("console templates: " + err.Error()) // embedded: a broken one fails every test
	}
	s.pages = pages
	static, _ := fs.Sub(consoleStatic, "console/static")
	r.GET("/static/*file", consoleHeaders, func(c *gin.Context) {
		// The vendored files' paths carry their versions: cache them for long.
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
		c.FileFromFS(c.Param("file"), http.FS(static))
	})
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/console") })
	r.GET("/console/login", consoleHeaders, s.loginPage)
	r.GET("/sidebar", consoleHeaders, s.sidebarPage)
	r.POST("/console/login", consoleHeaders, limitBody, s.loginSubmit)
	for _, rt := range s.consoleRoutes() {
		r.Handle(rt.Method, rt.Path, consoleHeaders, limitBody, s.consoleSession(rt.Perm), rt.Handler)
	}
}

// consoleHeaders are the security headers of every console response.
func consoleHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// consoleSession signs the browser in from its session cookie, refuses a
// change (any method but GET) without the session's CSRF token, and checks
// perm. Not signed in: to the sign-in page (htmx follows HX-Redirect).
func (s *Server) consoleSession(perm auth.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, _ := c.Cookie(sessionCookie)
		corp, _ := c.Cookie(corpCookie)
		p, err := s.d.Auth.Authenticate(c.Request.Context(), token, corp)
		if errors.Is(err, auth.ErrNotMember) && corp != "" {
			p, err = s.d.Auth.Authenticate(c.Request.Context(), token, "") // the corp cookie is stale: the default corp
		}
		switch {
		case errors.Is(err, auth.ErrUnauthenticated), errors.Is(err, auth.ErrNotMember):
			to := "/console/login"
			if c.Request.Method == http.MethodGet && c.GetHeader("HX-Request") == "" {
				to += "?next=" + url.QueryEscape(c.Request.URL.RequestURI())
			}
			if c.GetHeader("HX-Request") != "" {
				c.Header("HX-Redirect", to)
				c.AbortWithStatus(http.StatusUnauthorized)
				return
			}
			c.Redirect(http.StatusSeeOther, to)
			c.Abort()
			return
		case err != nil:
			s.logger(c).Error("console session", "err", err)
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.Set(principalKey, p)
		c.Set(csrfKey, csrfOf(token))
		if c.Request.Method != http.MethodGet && !validCSRF(c, csrfOf(token)) {
			s.logger(c).Warn("console change without its CSRF token", "path", c.Request.URL.Path, "user_id", p.UserID)
			s.pageError(c, http.StatusForbidden, translate(s.lang(c, p), "err.csrf"))
			return
		}
		if perm != "" && !p.Can(perm) {
			s.pageError(c, http.StatusForbidden, translate(s.lang(c, p), "err.forbidden", string(p.Role), string(perm)))
			return
		}
		c.Next()
	}
}

const csrfKey = "csrf"

// csrfOf is the CSRF token of a session: derived from the session's secret
// token, which the page's scripts cannot read (HttpOnly), so another site
// cannot know it; nothing to store, and the same on every instance.
func csrfOf(session string) string {
	sum := sha256.Sum256([]byte("qiflow console csrf\x00" + session))
	return hex.EncodeToString(sum[:16])
}

// validCSRF compares the request's token (htmx's header or a form's
// field) with want in constant time. An upload (multipart) must carry the
// header: reading its field would read the whole file first.
func validCSRF(c *gin.Context, want string) bool {
	got := c.GetHeader(csrfHeader)
	if got == "" && !strings.HasPrefix(c.ContentType(), "multipart/") {
		got = c.PostForm(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// lang is the console's language for p: their choice, else the browser's
// preference between those the console has, else Chinese.
func (s *Server) lang(c *gin.Context, p auth.Principal) string {
	if p.Lang != "" {
		return p.Lang
	}
	return acceptLang(c.GetHeader("Accept-Language"))
}

func acceptLang(header string) string {
	for _, part := range strings.Split(header, ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case strings.HasPrefix(tag, "zh"):
			return "zh-CN"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return auth.Langs[0]
}

// newView is the view of a signed-in page.
func (s *Server) newView(c *gin.Context, active, title string, data any) view {
	p := principal(c)
	v := view{P: p, Lang: s.lang(c, p), CSRF: c.GetString(csrfKey), Active: active, Data: data, loc: s.location(p.CorpID)}
	v.Title = v.T(title)
	groups := map[string]int{} // dropdown → its index in Nav
	for _, n := range consoleNav {
		if n.perm != "" && !p.Can(n.perm) {
			continue
		}
		if n.group == "" {
			v.Nav = append(v.Nav, navGroup{Items: []navItem{n.navItem}})
			continue
		}
		i, ok := groups[n.group]
		if !ok {
			i, groups[n.group] = len(v.Nav), len(v.Nav)
			v.Nav = append(v.Nav, navGroup{Key: n.group})
		}
		v.Nav[i].Items = append(v.Nav[i].Items, n.navItem)
	}
	corps, err := s.d.Auth.CorpsOf(c.Request.Context(), p.UserID)
	if err == nil && len(corps) > 1 {
		v.Corps = corps
	}
	// A corp's users are few (its staff), read once a page.
	if users, err := s.d.Auth.ListUsers(c.Request.Context(), p.CorpID); err == nil {
		v.names = make(map[int64]string, len(users))
		for _, u := range users {
			v.names[u.ID] = cmp.Or(u.Name, u.Email)
		}
	}
	return v
}

// location is a corp's time zone (Asia/Shanghai unless configured).
func (s *Server) location(corp string) *time.Location {
	if s.d.Location != nil {
		if loc := s.d.Location(corp); loc != nil {
			return loc
		}
	}
	return shanghai
}

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// render writes a page, or only the named partial when htmx asks for it.
func (s *Server) render(c *gin.Context, status int, page, partial string, v view) {
	t, ok := s.pages[page]
	if !ok {
		s.logger(c).Error("no such console page", "page", page)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	name := "layout.html"
	if partial != "" {
		name = partial
	}
	var buf bytes.Buffer // rendered whole first: a template error never sends half a page
	if err := t.ExecuteTemplate(&buf, name, v); err != nil {
		s.logger(c).Error("console page", "page", page, "err", err)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// pageError answers a refused console request: a message htmx shows in
// the page's message area, or a page of its own.
func (s *Server) pageError(c *gin.Context, status int, msg string) {
	if c.GetHeader("HX-Request") != "" {
		c.Header("HX-Retarget", "#messages")
		c.Header("HX-Reswap", "innerHTML")
		c.Data(status, "text/html; charset=utf-8", []byte(`<p class="error" role="alert">`+template.HTMLEscapeString(msg)+`</p>`))
		c.Abort()
		return
	}
	c.Data(status, "text/html; charset=utf-8", []byte(`<!doctype html><meta charset="utf-8"><title>Qiflow</title><link rel="stylesheet" href="/static/vendor/pico-2.1.1/pico.min.css"><main class="container"><p class="error" role="alert">`+
		template.HTMLEscapeString(msg)+`</p><p><a href="/console">Qiflow</a></p></main>`))
	c.Abort()
}

// failPage answers a domain error on a console request in the user's language.
func (s *Server) failPage(c *gin.Context, err error) {
	status, msg := s.refusal(c, err)
	s.pageError(c, status, msg)
}

// refusal is a domain error's status and message in the user's language;
// an unexpected one is logged (once, here) and shown as "went wrong".
func (s *Server) refusal(c *gin.Context, err error) (int, string) {
	status := http.StatusInternalServerError
	if ae, ok := apperr.As(err); ok {
		switch ae.Kind {
		case apperr.KindInvalid:
			status = http.StatusUnprocessableEntity
		case apperr.KindNotFound:
			status = http.StatusNotFound
		case apperr.KindConflict:
			status = http.StatusConflict
		}
	} else {
		s.logger(c).Error("console request failed", "path", c.Request.URL.Path, "err", err)
	}
	return status, errText(s.lang(c, principal(c)), err)
}

// pageID reads a console route's :id, answering "not found" when it is not
// a positive number.
func (s *Server) pageID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.pageError(c, http.StatusNotFound, translate(s.lang(c, principal(c)), "err.not_found"))
		return 0, false
	}
	return id, true
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WithError is the view with a refusal to show above the page.
func (v view) WithError(msg string) view {
	v.Error = msg
	return v
}

// With is the view with other data: a partial rendered inside a page (a
// row of a table) gets the page's view with its own item.
func (v view) With(data any) view {
	v.Data = data
	return v
}
