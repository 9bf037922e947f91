package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/leads"
)

// formsData is the web forms page: the forms, and the one being made or
// edited with rows for its fields.
type formsData struct {
	Forms   []leads.Form
	Form    leads.Form
	Rows    []leads.FormField
	Editing bool
	Types   []string
	MapsTo  []string
}

// formFieldRows is how many field rows the form editor offers.
const formFieldRows = 8

func (s *Server) formsPage(c *gin.Context) {
	f := leads.Form{ConsentRequired: true}
	if id := c.Query("edit"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			s.failPage(c, leads.ErrFormNotFound)
			return
		}
		forms, err := s.d.Leads.Forms(c.Request.Context(), principal(c).CorpID)
		if err != nil {
			s.failPage(c, err)
			return
		}
		found := false
		for _, x := range forms {
			if x.ID == n {
				f, found = x, true
			}
		}
		if !found {
			s.failPage(c, leads.ErrFormNotFound)
			return
		}
	}
	s.renderForms(c, http.StatusOK, "", f)
}

func (s *Server) renderForms(c *gin.Context, status int, msg string, f leads.Form) {
	forms, err := s.d.Leads.Forms(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := formsData{Forms: forms, Form: f, Rows: f.Fields, Editing: f.ID != 0, Types: leads.FormFieldTypes, MapsTo: leads.FormMappable}
	for len(d.Rows) < formFieldRows {
		d.Rows = append(d.Rows, leads.FormField{Type: "text"})
	}
	s.render(c, status, "forms", "", s.newView(c, "nav.forms", "forms.title", d).WithError(msg))
}

// formFromPage reads the editor: rows without a name are left out.
func formFromPage(c *gin.Context, corp string) leads.Form {
	f := leads.Form{CorpID: corp, Slug: strings.TrimSpace(c.PostForm("slug")), Title: c.PostForm("title"), Intro: c.PostForm("intro"),
		ConsentText: c.PostForm("consent_text"), ConsentRequired: c.PostForm("consent_required") != "", Thanks: c.PostForm("thanks"),
		Channel: strings.TrimSpace(c.PostForm("channel")), Active: c.PostForm("active") != ""}
	for i := range formFieldRows {
		n := strconv.Itoa(i)
		name := strings.TrimSpace(c.PostForm("field" + n + "_name"))
		if name == "" {
			continue
		}
		var options []string
		for _, o := range strings.Split(c.PostForm("field"+n+"_options"), ",") {
			if o = strings.TrimSpace(o); o != "" {
				options = append(options, o)
			}
		}
		f.Fields = append(f.Fields, leads.FormField{Name: name, Label: c.PostForm("field" + n + "_label"), Type: c.PostForm("field" + n + "_type"),
			Required: c.PostForm("field"+n+"_required") != "", Options: options, MapsTo: c.PostForm("field" + n + "_maps_to")})
	}
	return f
}

// saveFormFromPage creates a form, or replaces the one named by ?id, as
// POST and PUT /api/v1/forms do (the same checks).
func (s *Server) saveFormFromPage(c *gin.Context) {
	f := formFromPage(c, principal(c).CorpID)
	var err error
	if id := c.PostForm("id"); id != "" {
		if f.ID, err = strconv.ParseInt(id, 10, 64); err != nil {
			f.ID, err = 0, leads.ErrFormNotFound
		} else {
			_, err = s.d.Leads.UpdateForm(c.Request.Context(), f)
		}
	} else {
		_, err = s.d.Leads.CreateForm(c.Request.Context(), f)
	}
	if err != nil {
		status, msg := s.refusal(c, err)
		s.renderForms(c, status, msg, f)
		return
	}
	redirectPage(c, "/console/settings/forms")
}
