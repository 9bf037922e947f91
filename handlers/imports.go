package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/jobs"
)

// createImport takes a CSV file to import, as multipart fields in this
// order: "mapping" (JSON: column header → field), "encoding" (auto, utf-8
// or gbk; optional), then "file". The file is streamed into storage, never
// held whole; its import runs as a background job (202 with the job).
func (s *Server) createImport(c *gin.Context) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		invalid(c, "file", "send a multipart form: mapping, encoding, then file")
		return
	}
	var mapping map[string]string
	encoding := ""
	p := principal(c)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			invalid(c, "file", "is required (after mapping and encoding)")
			return
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(c, http.StatusRequestEntityTooLarge, "body_too_large", "the file is larger than the upload limit: split it", nil)
			return
		}
		if err != nil {
			invalid(c, "file", "the multipart form could not be read")
			return
		}
		switch part.FormName() {
		case "mapping":
			if err := json.NewDecoder(io.LimitReader(part, 64<<10)).Decode(&mapping); err != nil {
				invalid(c, "mapping", "is a JSON object of column header → field")
				return
			}
		case "encoding":
			b, _ := io.ReadAll(io.LimitReader(part, 16))
			encoding = string(b)
		case "file":
			s.storeImport(c, p.CorpID, p.UserID, part, mapping, encoding)
			return
		}
	}
}

func (s *Server) storeImport(c *gin.Context, corp string, user int64, part *multipart.Part, mapping map[string]string, encoding string) {
	im, err := s.d.Leads.CreateImport(c.Request.Context(), corp, user, part.FileName(), part, mapping, encoding)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		fail(c, http.StatusRequestEntityTooLarge, "body_too_large", "the file is larger than the upload limit: split it", nil)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"import": im})
}

// getImport is an import with its job: status, progress (lines done of
// about how many) and, once done, the counts.
func (s *Server) getImport(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	im, err := s.d.Leads.ImportOf(c.Request.Context(), p.CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	var job *jobs.JobRow
	if im.JobID > 0 {
		j, err := s.d.Runner.Get(c.Request.Context(), p.CorpID, im.JobID)
		if err != nil {
			s.failErr(c, err)
			return
		}
		job = &j
	}
	c.JSON(http.StatusOK, gin.H{"import": im, "job": job})
}

// importReport is the CSV of every rejected, merged and flagged line.
func (s *Server) importReport(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	if _, err := s.d.Leads.ImportOf(c.Request.Context(), p.CorpID, id); err != nil {
		s.failErr(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="import-`+c.Param("id")+`-report.csv"`)
	if err := s.d.Leads.WriteImportReport(c.Request.Context(), p.CorpID, id, c.Writer); err != nil {
		s.logger(c).Error("import report cut short", "import", id, "err", err)
	}
}
