package handlers

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom/media"
)

//go:embed pages/*.html
var pages embed.FS

var landingTmpl = template.Must(template.ParseFS(pages, "pages/landing.html"))

func (s *Server) codeRoutes() []Route {
	return []Route{
		{"POST", "/codes", auth.PermCodesManage, s.createCode},
		{"GET", "/codes", auth.PermCodesRead, s.listCodes},
		{"GET", "/codes/:id", auth.PermCodesRead, s.getCode},
		{"PUT", "/codes/:id", auth.PermCodesManage, s.updateCode},
		{"POST", "/codes/:id/pause", auth.PermCodesManage, s.codeStatus(livecode.StatusPaused)},
		{"POST", "/codes/:id/resume", auth.PermCodesManage, s.codeStatus(livecode.StatusActive)},
		{"POST", "/codes/:id/archive", auth.PermCodesManage, s.codeStatus(livecode.StatusArchived)},
		{"GET", "/codes/:id/qr.png", auth.PermCodesRead, s.codeQRPNG},
		{"GET", "/codes/:id/qr.svg", auth.PermCodesRead, s.codeQRSVG},
		{"GET", "/codes/:id/welcome-preview", auth.PermCodesRead, s.welcomePreview},
		{"GET", "/codes/:id/contacts", auth.PermCodesRead, s.codeContacts},
		{"GET", "/stats/codes", auth.PermCodesRead, s.codeStats},
		{"POST", "/media", auth.PermCodesManage, s.uploadMedia},
		{"GET", "/media/:id", auth.PermCodesRead, s.getMedia},
	}
}

// uploadMedia stores a file (multipart field "file", form field "kind": image,
// video or file) for use in welcome messages.
func (s *Server) uploadMedia(c *gin.Context) {
	fh, err := c.FormFile("file")
	if err != nil {
		invalid(c, "file", "a multipart file field is required")
		return
	}
	if fh.Size > 20<<20 {
		invalid(c, "file", "is larger than 20 MB")
		return
	}
	f, err := fh.Open()
	if err != nil {
		invalid(c, "file", "cannot be read")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 20<<20+1))
	if err != nil {
		invalid(c, "file", "cannot be read")
		return
	}
	p := principal(c)
	saved, err := s.d.Media.Save(c.Request.Context(), p.CorpID, c.PostForm("kind"), fh.Filename, fh.Header.Get("Content-Type"), data, p.UserID)
	if errors.Is(err, media.ErrInvalid) {
		invalid(c, "file", err.Error())
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, saved)
}

func (s *Server) getMedia(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	f, err := s.d.Media.Get(c.Request.Context(), principal(c).CorpID, id)
	if errors.Is(err, media.ErrNotFound) {
		fail(c, http.StatusNotFound, "not_found", err.Error(), nil)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

// codeInput is the JSON a code is created or edited with.
type codeInput struct {
	// OwnerUserID is who the code belongs to (cs users see their own codes); default: the creator.
	OwnerUserID int64  `json:"owner_user_id"`
	Name        string `json:"name"`
	// Mode: wecom_qr or rotating (channel codes), join_way (group codes).
	Channel  string               `json:"channel"`
	Mode     string               `json:"mode"`
	Staff    []livecode.CodeStaff `json:"staff"`
	Settings livecode.Settings    `json:"settings"`
	// Version is the version of the code an edit is based on (or If-Match).
	Version int64 `json:"version"`
}

// ownCode loads a code the principal may see: cs users see only their own.
func (s *Server) ownCode(c *gin.Context) (*livecode.Code, bool) {
	id, ok := pathID(c, "id")
	if !ok {
		return nil, false
	}
	code, err := s.codeOf(c, id)
	if err != nil {
		s.failErr(c, err)
		return nil, false
	}
	return code, true
}

// codeOf reads a code the signed-in user may see: any with codes.manage,
// else their own (another's is not found).
func (s *Server) codeOf(c *gin.Context, id int64) (*livecode.Code, error) {
	p := principal(c)
	code, err := s.d.LiveCodes.Get(c.Request.Context(), p.CorpID, id)
	if err == nil && !p.Can(auth.PermCodesManage) && code.OwnerUserID != p.UserID {
		err = livecode.ErrNotFound
	}
	return code, err
}

func (s *Server) createCode(c *gin.Context) {
	var in codeInput
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	owner := in.OwnerUserID
	if owner == 0 {
		owner = p.UserID
	}
	code, err := s.d.LiveCodes.Create(c.Request.Context(), livecode.Code{CorpID: p.CorpID, Name: in.Name, Channel: in.Channel, Mode: in.Mode,
		Staff: in.Staff, Settings: in.Settings, OwnerUserID: owner})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, code)
}

func (s *Server) updateCode(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in codeInput
	if !bind(c, &in) {
		return
	}
	if in.Version == 0 {
		v, ok := ifMatchVersion(c)
		if !ok {
			return
		}
		in.Version = v
	}
	code, err := s.d.LiveCodes.Update(c.Request.Context(), principal(c).CorpID, id, livecode.Code{Name: in.Name, Channel: in.Channel,
		Staff: in.Staff, Settings: in.Settings, OwnerUserID: in.OwnerUserID, Version: in.Version})
	if err != nil {
		s.failErr(c, err)
		return
	}
	codeETag(c, code)
	c.JSON(http.StatusOK, code)
}

// ifMatchVersion reads the version an edit is based on from If-Match
// ("3", W/"3" or 3); without one the edit is refused with 428, since an
// edit that names no version could silently undo a colleague's.
func ifMatchVersion(c *gin.Context) (int64, bool) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" {
		fail(c, http.StatusPreconditionRequired, "version_required",
			"name the version this edit is based on: \"version\" in the body or an If-Match header (the code's ETag)", map[string]string{"version": "is required"})
		return 0, false
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v <= 0 {
		invalid(c, "If-Match", "must be the code's ETag, such as \"3\"")
		return 0, false
	}
	return v, true
}

// codeETag names the code's version, for If-Match on the next edit.
func codeETag(c *gin.Context, code *livecode.Code) {
	c.Header("ETag", strconv.Quote(strconv.FormatInt(code.Version, 10)))
}

func (s *Server) codeStatus(status string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		code, err := s.d.LiveCodes.SetStatus(c.Request.Context(), principal(c).CorpID, id, status)
		if err != nil {
			s.failErr(c, err)
			return
		}
		c.JSON(http.StatusOK, code)
	}
}

func (s *Server) listCodes(c *gin.Context) {
	limit, after, ok := idPage(c)
	if !ok {
		return
	}
	f, err := codeFilter(principal(c), c.Query)
	if err != nil {
		s.failErr(c, err)
		return
	}
	f.After, f.Limit = after, limit
	codes, err := s.d.LiveCodes.List(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "codes", codes, limit, func(x *livecode.Code) string { return strconv.FormatInt(x.ID, 10) })
}

// codeFilter reads the codes list's filter (?status=, ?channel=, ?mode=);
// without codes.manage a user sees only the codes they own. The API and
// the console read the same.
func codeFilter(p auth.Principal, query func(string) string) (livecode.ListFilter, error) {
	f := livecode.ListFilter{CorpID: p.CorpID, Status: query("status"), Channel: query("channel"), Mode: query("mode")}
	switch f.Status {
	case "", livecode.StatusActive, livecode.StatusPaused, livecode.StatusArchived:
	default:
		return f, apperr.Field("status", "must be active, paused or archived")
	}
	if !p.Can(auth.PermCodesManage) {
		f.Owner = p.UserID
	}
	return f, nil
}

func (s *Server) getCode(c *gin.Context) {
	if code, ok := s.ownCode(c); ok {
		codeETag(c, code)
		c.JSON(http.StatusOK, code)
	}
}

func (s *Server) codeQRPNG(c *gin.Context) {
	code, ok := s.ownCode(c)
	if !ok {
		return
	}
	size := 512
	if v := c.Query("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 128 || n > 2048 {
			invalid(c, "size", "must be between 128 and 2048 pixels")
			return
		}
		size = n
	}
	png, err := livecode.QRPNG(code.LandingURL, size)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="code-`+code.Slug+`.png"`)
	c.Data(http.StatusOK, "image/png", png)
}

func (s *Server) codeQRSVG(c *gin.Context) {
	code, ok := s.ownCode(c)
	if !ok {
		return
	}
	svg, err := livecode.QRSVG(code.LandingURL)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="code-`+code.Slug+`.svg"`)
	c.Data(http.StatusOK, "image/svg+xml", []byte(svg))
}

func (s *Server) welcomePreview(c *gin.Context) {
	code, ok := s.ownCode(c)
	if !ok {
		return
	}
	customer := c.DefaultQuery("customer_name", "张三 Zhang San")
	staff := c.DefaultQuery("staff_name", "客服 Support")
	c.JSON(http.StatusOK, s.d.LiveCodes.PreviewWelcome(code, customer, staff))
}

func (s *Server) codeContacts(c *gin.Context) {
	code, ok := s.ownCode(c)
	if !ok {
		return
	}
	limit, before, ok := idPage(c)
	if !ok {
		return
	}
	list, err := s.d.LiveCodes.CodeContacts(c.Request.Context(), code.CorpID, code.ID, before, limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "contacts", list, limit, func(x livecode.Source) string { return strconv.FormatInt(x.ID, 10) })
}

func (s *Server) codeStats(c *gin.Context) {
	f, err := statsFilter(principal(c), c.Query)
	if err != nil {
		s.failErr(c, err)
		return
	}
	rows, err := s.d.LiveCodes.Stats(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if c.Query("format") == "csv" {
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="code-stats-`+f.From+`-`+f.To+`.csv"`)
		c.Status(http.StatusOK)
		if err := livecode.WriteCSV(c.Writer, f.GroupBy, rows); err != nil {
			s.logger(c).Error("csv export", "err", err)
		}
		return
	}
	if rows == nil {
		rows = []livecode.StatsRow{}
	}
	c.JSON(http.StatusOK, gin.H{"rows": rows, "group_by": f.GroupBy, "from": f.From, "to": f.To})
}

// statsFilter reads the statistics' filter (?from=, ?to=, ?group_by=,
// ?code_id=); without codes.manage only the user's own codes count.
func statsFilter(p auth.Principal, query func(string) string) (livecode.StatsFilter, error) {
	f := livecode.StatsFilter{CorpID: p.CorpID, From: query("from"), To: query("to"), GroupBy: query("group_by")}
	if f.GroupBy == "" {
		f.GroupBy = "code"
	}
	if v := query("code_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return f, apperr.Field("code_id", "must be a number")
		}
		f.CodeID = id
	}
	if !p.Can(auth.PermCodesManage) {
		f.Owner = p.UserID
	}
	return f, nil
}

// ipLimiter rate-limits public pages per client IP. Its state is per
// instance: it protects this process, and losing it loses nothing.
type ipLimiter struct {
	mu    sync.Mutex
	ips   map[string]*rate.Limiter
	reset time.Time
}

func (l *ipLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.reset) > 10*time.Minute {
		l.ips, l.reset = map[string]*rate.Limiter{}, time.Now()
	}
	lim := l.ips[ip]
	if lim == nil {
		lim = rate.NewLimiter(5, 30) // 5 a second, bursts of 30
		l.ips[ip] = lim
	}
	return lim.Allow()
}

// landing serves /l/:slug: the QR to long-press, or a clear page when the
// code is paused, archived or out of its validity period.
func (s *Server) landing(c *gin.Context) {
	if !s.pageLimiter.allow(c.ClientIP()) {
		c.String(http.StatusTooManyRequests, "too many requests")
		return
	}
	code, err := s.d.LiveCodes.GetBySlug(c.Request.Context(), c.Param("slug"))
	if errors.Is(err, livecode.ErrNotFound) {
		c.Status(http.StatusNotFound)
		landingTmpl.Execute(c.Writer, gin.H{"Title": "二维码不存在 Not found", "Closed": "这个二维码不存在。This code does not exist."})
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	data := gin.H{"Title": code.Name, "Note": code.Settings.Note}
	if !s.d.LiveCodes.Open(code) {
		data["Closed"] = "活动已结束或暂停。This code is paused or has ended."
		landingTmpl.Execute(c.Writer, data)
		return
	}
	visitor, err := c.Cookie("qf_v")
	if err != nil || len(visitor) != 32 {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		visitor = hex.EncodeToString(b)
		c.SetCookie("qf_v", visitor, 365*24*3600, "/", "", false, true)
	}
	switch code.Mode {
	case livecode.ModeLink:
		// Acquisition links open WeCom's own page; count the visit and go there.
		s.d.LiveCodes.CountVisit(c.Request.Context(), code, visitor, "")
		c.Redirect(http.StatusFound, code.QRCode)
		return
	case livecode.ModeRotating:
		// The reservation is the visitor's (their cookie): refreshing the
		// page shows the same staff member and takes no second cap slot.
		v, err := s.d.LiveCodes.Visit(c.Request.Context(), code, visitor)
		if err != nil {
			s.failErr(c, err)
			return
		}
		if v.OutOfPeriod && v.UserID == "" {
			data["Closed"] = "活动已结束。This code has ended."
			landingTmpl.Execute(c.Writer, data)
			return
		}
		data["QR"] = v.QRCode
		c.Header("X-Qiflow-Staff", v.UserID)
		s.d.LiveCodes.CountVisit(c.Request.Context(), code, visitor, v.UserID)
	case livecode.ModeJoinWay:
		page, ok := s.d.LiveCodes.GroupLanding(c.Request.Context(), code)
		if !ok {
			data["Closed"] = "群已满，请稍后再来。Every group is full for now."
			landingTmpl.Execute(c.Writer, data)
			return
		}
		data["QR"] = page.QR
		if page.Manual != nil {
			data["Note"] = page.Manual.Name
		}
		s.d.LiveCodes.CountVisit(c.Request.Context(), code, visitor, page.Visitors)
	default:
		data["QR"] = code.QRCode
		s.d.LiveCodes.CountVisit(c.Request.Context(), code, visitor, "")
	}
	landingTmpl.Execute(c.Writer, data)
}

// manualGroupImage serves a manual group's uploaded QR image for /g/{slug}.
func (s *Server) manualGroupImage(c *gin.Context) {
	code, err := s.d.LiveCodes.GetBySlug(c.Request.Context(), c.Param("slug"))
	if err != nil {
		c.Status(http.StatusNotFound)
		return
	}
	id, err := strconv.ParseInt(c.Param("file"), 10, 64)
	if err != nil {
		c.Status(http.StatusNotFound)
		return
	}
	img, err := s.d.LiveCodes.ManualImage(c.Request.Context(), code, id)
	if err != nil {
		c.Status(http.StatusNotFound)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, http.DetectContentType(img), img)
}
