package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/leads"
)

// importsData is the imports page: the upload form's fields and the
// newest imports with their jobs.
type importsData struct {
	Fields  []string
	Imports []importView
}

// importView is an import with its job and, once done, what it did.
type importView struct {
	Import leads.Import
	Job    *jobs.JobRow
	Result *leads.ImportResult
	Active bool
}

const importsShown = 20

// importsPage is the CSV import form (the browser reads the header line to
// offer a field per column) and the newest imports.
func (s *Server) importsPage(c *gin.Context) {
	p := principal(c)
	list, err := s.d.Leads.Imports(c.Request.Context(), p.CorpID, importsShown)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := importsData{Fields: leads.ImportFields}
	for _, im := range list {
		iv, err := s.importView(c, im)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Imports = append(d.Imports, iv)
	}
	s.render(c, http.StatusOK, "imports", "", s.newView(c, "nav.imports", "imports.title", d))
}

func (s *Server) importView(c *gin.Context, im leads.Import) (importView, error) {
	iv := importView{Import: im}
	if im.JobID == 0 {
		return iv, nil
	}
	j, err := s.d.Runner.Get(c.Request.Context(), im.CorpID, im.JobID)
	if err != nil {
		return iv, err
	}
	iv.Job = &j
	iv.Active = j.Status == jobs.JobQueued || j.Status == jobs.JobRunning
	if j.Status == jobs.JobDone && len(j.Result) > 0 {
		var r leads.ImportResult
		if json.Unmarshal(j.Result, &r) == nil {
			iv.Result = &r
		}
	}
	return iv, nil
}

// uploadFromPage takes the import form (sent by htmx, with the CSRF header:
// the file is streamed, never parsed as a whole form) and opens the
// import's page, which follows its progress.
func (s *Server) uploadFromPage(c *gin.Context) {
	im, err := s.receiveImport(c)
	if errors.Is(err, errUploadTooLarge) {
		s.pageError(c, http.StatusRequestEntityTooLarge, translate(s.lang(c, principal(c)), "imports.too_large"))
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/imports/"+strconv.FormatInt(im.ID, 10))
}

// importPage follows one import: a progress bar while its job runs (htmx
// asks again every second), then what it did and its report.
func (s *Server) importPage(c *gin.Context) {
	p := principal(c)
	id, ok := s.pageID(c)
	if !ok {
		return
	}
	im, err := s.d.Leads.ImportOf(c.Request.Context(), p.CorpID, id)
	if err != nil {
		s.failPage(c, err)
		return
	}
	iv, err := s.importView(c, *im)
	if err != nil {
		s.failPage(c, err)
		return
	}
	partial := ""
	if c.GetHeader("HX-Request") != "" {
		partial = "import_status"
	}
	s.render(c, http.StatusOK, "import", partial, s.newView(c, "nav.imports", "imports.title", iv))
}

// exportsPage is the audit of lead exports: who downloaded what filter,
// how many rows, masked or not.
func (s *Server) exportsPage(c *gin.Context) {
	p := principal(c)
	list, err := s.d.Leads.Exports(c.Request.Context(), p.CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, http.StatusOK, "exports", "", s.newView(c, "nav.exports", "exports.title", list))
}
