package fake

import (
	"net/http"
	"net/url"
	"time"
)

// Web pages WeCom opens (the chat sidebar): OAuth for the staff member's
// identity and the JS-SDK's tickets, with WeCom's limits: a code works
// once and for 5 minutes (40029 otherwise), only for a page on the app's
// trusted domain (50001; the fake trusts Qiflow's callback host), and a corp may fetch its
// jsapi_ticket 400 times an hour, an app its agent ticket 100 times
// (45009 past either).

const (
	codeInvalidOAuthCode = 40029
	oauthCodeLife        = 5 * time.Minute
	ticketLifetime       = 7200 * time.Second
	corpTicketsPerHour   = 400
	agentTicketsPerHour  = 100
)

type oauthCode struct {
	corp, userID string
	host         string // of the page the code was sent back to
	expires      time.Time
}

// codeRedirectMismatch is WeCom's answer to a code whose page is not on the
// app's trusted domain (the fake takes Qiflow's callback host for it).
const codeRedirectMismatch = 50001

// onlyQuery refuses a GET whose query names anything but access_token and
// allowed, or lacks a required one, as WeCom refuses unknown parameters.
func onlyQuery(r *http.Request, required []string, optional ...string) *apiError {
	q := r.URL.Query()
	known := map[string]bool{"access_token": true}
	for _, k := range append(required, optional...) {
		known[k] = true
	}
	for k := range q {
		if !known[k] {
			return errf(codeInvalidParam, "invalid parameter %s", k)
		}
	}
	for _, k := range required {
		if q.Get(k) == "" {
			return errf(codeInvalidParam, "missing parameter %s", k)
		}
	}
	return nil
}

// overHourly counts one fetch of a kind and reports whether it passes limit
// within the current hour.
func (f *Fake) overHourly(key string, limit int) bool {
	hour := f.now().Unix() / 3600
	win := f.hourly[key]
	if win == nil || win.minute != hour {
		win = &window{minute: hour}
		f.hourly[key] = win
	}
	win.n++
	return win.n > limit
}

// getJSAPITicket is get_jsapi_ticket: the corp's ticket for ww.register's config.
func getJSAPITicket(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	if e := onlyQuery(r, nil); e != nil {
		return nil, e
	}
	if f.overHourly(c.ID+" corp ticket", corpTicketsPerHour) {
		return nil, errf(codeRateLimited, "api freq out of limit: jsapi_ticket")
	}
	return m("ticket", f.ticket(c.ID, "corp"), "expires_in", int(ticketLifetime.Seconds())), nil
}

// getAgentTicket is ticket/get?type=agent_config: the app's ticket for its agentConfig.
func getAgentTicket(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	if e := onlyQuery(r, []string{"type"}); e != nil {
		return nil, e
	}
	if r.URL.Query().Get("type") != "agent_config" {
		return nil, errf(codeInvalidParam, "invalid type")
	}
	if f.overHourly(c.ID+" agent ticket", agentTicketsPerHour) || f.overHourly(c.ID+" corp ticket", corpTicketsPerHour) {
		return nil, errf(codeRateLimited, "api freq out of limit: jsapi_ticket")
	}
	return m("ticket", f.ticket(c.ID, "agent"), "expires_in", int(ticketLifetime.Seconds())), nil
}

// ticket is the corp's current ticket of a kind, new after its lifetime.
func (f *Fake) ticket(corp, kind string) string {
	k := corp + " " + kind
	t, ok := f.tickets[k]
	if !ok || f.now().After(t.expires) {
		t = tokenInfo{corp: f.nextID("jsticket") + f.nextID(""), expires: f.now().Add(ticketLifetime)}
		f.tickets[k] = t
	}
	return t.corp
}

// Ticket is a corp's current jsapi_ticket of a kind (corp or agent), for a
// test to check a signature.
func (f *Fake) Ticket(corp, kind string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ticket(corp, kind)
}

// getUserInfoByCode is auth/getuserinfo: the staff member an OAuth code was
// issued to, once.
func getUserInfoByCode(f *Fake, c *Corp, r *http.Request, _ []byte) (any, *apiError) {
	if e := onlyQuery(r, []string{"code"}); e != nil {
		return nil, e
	}
	code := r.URL.Query().Get("code")
	oc, ok := f.oauthCodes[code]
	delete(f.oauthCodes, code)
	if !ok || oc.corp != c.ID || f.now().After(oc.expires) {
		return nil, errf(codeInvalidOAuthCode, "invalid code")
	}
	if trusted, err := url.Parse(c.CallbackURL); err == nil && trusted.Hostname() != "" && trusted.Hostname() != oc.host {
		return nil, errf(codeRedirectMismatch, "redirect_uri domain %s is not the app's trusted domain", oc.host)
	}
	return m("userid", oc.userID), nil
}

// authorize is WeCom's OAuth page (open.weixin.qq.com/connect/oauth2/
// authorize): it sends the browser back to redirect_uri with a code for the
// corp's signed-in staff member (SetOAuthUser; the first one who may
// contact customers unless set) and the state.
func (f *Fake) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[q.Get("appid")]
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case c == nil:
		http.Error(w, "appid: no such corp", http.StatusBadRequest)
		return
	case err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "":
		http.Error(w, "redirect_uri: an absolute http(s) URL is required", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	case q.Get("scope") != "snsapi_base" && q.Get("scope") != "snsapi_privateinfo":
		http.Error(w, "scope must be snsapi_base or snsapi_privateinfo", http.StatusBadRequest)
		return
	}
	user := f.oauthUsers[c.ID]
	if user == "" {
		for _, id := range c.staffIDs() {
			if c.canContact(id) {
				user = id
				break
			}
		}
	}
	code := f.nextID("oauth") + f.nextID("")
	f.oauthCodes[code] = oauthCode{corp: c.ID, userID: user, host: redirect.Hostname(), expires: f.now().Add(oauthCodeLife)}
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// SetOAuthUser makes userid the staff member signed in to WeCom in corp:
// OAuth codes name them.
func (f *Fake) SetOAuthUser(corp, userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.oauthUsers[corp] = userID
}
