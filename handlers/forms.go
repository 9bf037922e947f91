package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
)

var formTmpl = template.Must(template.ParseFS(pages, "pages/form.html"))

const (
	formWindow = 10 * time.Minute
	formsPerIP = 20 // fills one address may send a window, across instances
)

func (s *Server) listForms(c *gin.Context) {
	list, err := s.d.Leads.Forms(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"forms": list})
}

// formInput is a form's definition: {"slug","title","intro","fields":[{"name",
// "label","type","required","options","maps_to"}],"consent_text",
// "consent_required","thanks","channel","active"}.
type formInput struct {
	Slug            string            `json:"slug"`
	Title           string            `json:"title"`
	Intro           string            `json:"intro"`
	Fields          []leads.FormField `json:"fields"`
	ConsentText     string            `json:"consent_text"`
	ConsentRequired bool              `json:"consent_required"`
	Thanks          string            `json:"thanks"`
	Channel         string            `json:"channel"`
	Active          *bool             `json:"active"`
}

func (in formInput) form(corp string) leads.Form {
	f := leads.Form{CorpID: corp, Slug: in.Slug, Title: in.Title, Intro: in.Intro, Fields: in.Fields, ConsentText: in.ConsentText,
		ConsentRequired: in.ConsentRequired, Thanks: in.Thanks, Channel: in.Channel, Active: in.Active == nil || *in.Active}
	return f
}

func (s *Server) createForm(c *gin.Context) {
	var in formInput
	if !bind(c, &in) {
		return
	}
	f, err := s.d.Leads.CreateForm(c.Request.Context(), in.form(principal(c).CorpID))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"form": f, "url": s.publicURL("/f/" + f.Slug)})
}

func (s *Server) updateForm(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in formInput
	if !bind(c, &in) {
		return
	}
	f := in.form(principal(c).CorpID)
	f.ID = id
	out, err := s.d.Leads.UpdateForm(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"form": out, "url": s.publicURL("/f/" + out.Slug)})
}

// formPage serves /f/:slug, the hosted form (mobile first; plain HTML, so
// it works in WeChat's browser). ?code= and ?channel= carry the live code
// and channel the visit came from into the fill.
func (s *Server) formPage(c *gin.Context) {
	if !s.pageLimiter.allow(c.ClientIP()) {
		c.String(http.StatusTooManyRequests, "too many requests")
		return
	}
	f, err := s.d.Leads.FormBySlug(c.Request.Context(), c.Param("slug"))
	if err != nil {
		s.formGone(c, err)
		return
	}
	code, _ := strconv.ParseInt(c.Query("code"), 10, 64)
	s.renderForm(c, http.StatusOK, gin.H{"Form": f, "Values": map[string]string{}, "Errors": map[string]string{},
		"Nonce": newNonce(), "CodeID": max(code, 0), "Channel": c.Query("channel")})
}

// submitFormPage takes the hosted form's post: the page again with the
// problems by field (422), or the thank-you.
func (s *Server) submitFormPage(c *gin.Context) {
	f, err := s.d.Leads.FormBySlug(c.Request.Context(), c.Param("slug"))
	if err != nil {
		s.formGone(c, err)
		return
	}
	if wait, limited := s.overLimit(c, formWindow, limit{s.kvKey("form", "ip", c.ClientIP()), formsPerIP}); limited {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.String(http.StatusTooManyRequests, "too many submissions from your address; try again later")
		return
	}
	if err := c.Request.ParseForm(); err != nil {
		c.String(http.StatusBadRequest, "unreadable form")
		return
	}
	values := map[string]string{}
	for _, fd := range f.Fields {
		values[fd.Name] = c.Request.PostForm.Get(fd.Name)
	}
	code, _ := strconv.ParseInt(c.Request.PostForm.Get("code_id"), 10, 64)
	fill := leads.Fill{Values: values, Consent: c.Request.PostForm.Get("consent") != "", CodeID: max(code, 0),
		Channel: c.Request.PostForm.Get("channel"), Nonce: c.Request.PostForm.Get("nonce"), Honeypot: c.Request.PostForm.Get("website")}
	_, err = s.d.Leads.Submit(c.Request.Context(), f.Slug, fill)
	if ae, ok := apperr.As(err); ok && ae.Kind == apperr.KindInvalid {
		s.renderForm(c, http.StatusUnprocessableEntity, gin.H{"Form": f, "Values": values, "Errors": ae.Fields, "Nonce": fill.Nonce,
			"CodeID": fill.CodeID, "Channel": fill.Channel, "Consent": fill.Consent})
		return
	}
	if err != nil {
		s.formGone(c, err)
		return
	}
	s.renderForm(c, http.StatusOK, gin.H{"Form": f, "Done": true})
}

// submitFormJSON takes a fill posted by a site: {"values":{...},"consent",
// "code_id","channel","nonce"}; 422 names each field, 201 when stored.
// Any origin may post (no credentials are involved).
func (s *Server) submitFormJSON(c *gin.Context) {
	c.Header("Access-Control-Allow-Origin", "*")
	if wait, limited := s.overLimit(c, formWindow, limit{s.kvKey("form", "ip", c.ClientIP()), formsPerIP}); limited {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		fail(c, http.StatusTooManyRequests, "rate_limited", "too many submissions from this address", nil)
		return
	}
	var in leads.Fill
	if !bind(c, &in) {
		return
	}
	res, err := s.d.Leads.Submit(c.Request.Context(), c.Param("slug"), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"ok": true, "bot": res.Bot})
}

// formPreflight answers browsers asking whether a site may post JSON.
func (s *Server) formPreflight(c *gin.Context) {
	c.Header("Access-Control-Allow-Origin", "*")
	c.Header("Access-Control-Allow-Methods", "POST")
	c.Header("Access-Control-Allow-Headers", "Content-Type")
	c.Header("Access-Control-Max-Age", "86400")
	c.Status(http.StatusNoContent)
}

func (s *Server) renderForm(c *gin.Context, status int, data gin.H) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	if err := formTmpl.Execute(c.Writer, data); err != nil {
		s.logger(c).Error("form page", "err", err)
	}
}

func (s *Server) formGone(c *gin.Context, err error) {
	if errors.Is(err, leads.ErrFormNotFound) {
		c.Status(http.StatusNotFound)
		landingTmpl.Execute(c.Writer, gin.H{"Title": "表单不存在 Not found", "Closed": "这个表单不存在或已停用。This form does not exist or is closed."})
		return
	}
	s.failErr(c, err)
}

func newNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publicURL is an absolute link to a path of this server.
func (s *Server) publicURL(path string) string {
	return strings.TrimSuffix(s.d.PublicURL, "/") + path
}
