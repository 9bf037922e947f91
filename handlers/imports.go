package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/leads"
)

// createImport takes a CSV file to import, as multipart fields in this
// order: "mapping" (JSON: column header → field), "encoding" (auto, utf-8
// or gbk; optional), then "file". The file is streamed into storage, never
// held whole; its import runs as a background job (202 with the job).
func (s *Server) createImport(c *gin.Context) {
	im, err := s.receiveImport(c)
	if errors.Is(err, errUploadTooLarge) {
		fail(c, http.StatusRequestEntityTooLarge, "body_too_large", err.Error(), nil)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"import": im})
}

var errUploadTooLarge = errors.New("the file is larger than the upload limit: split it")

// receiveImport reads an import's upload (mapping, encoding, then the file,
// streamed into storage) and queues it: the API and the console take the
// same form.
func (s *Server) receiveImport(c *gin.Context) (*leads.Import, error) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, apperr.Field("file", "send a multipart form: mapping, encoding, then file")
	}
	var mapping map[string]string
	encoding := ""
	p := principal(c)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, apperr.Field("file", "is required (after mapping and encoding)")
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errUploadTooLarge
		}
		if err != nil {
			return nil, apperr.Field("file", "the multipart form could not be read")
		}
		switch part.FormName() {
		case "mapping":
			if err := json.NewDecoder(io.LimitReader(part, 64<<10)).Decode(&mapping); err != nil {
				return nil, apperr.Field("mapping", "is a JSON object of column header → field")
			}
		case "encoding":
			b, _ := io.ReadAll(io.LimitReader(part, 16))
			encoding = string(b)
		case "file":
			im, err := s.d.Leads.CreateImport(c.Request.Context(), p.CorpID, p.UserID, part.FileName(), part, mapping, encoding)
			if errors.As(err, &tooLarge) {
				return nil, errUploadTooLarge
			}
			return im, err
		}
	}
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
