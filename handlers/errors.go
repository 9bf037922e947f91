package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/wecom"
)

// errorBody is every error's JSON shape:
// {"error": {"code": "validation_failed", "message": "...", "fields": {"state": "..."}}}
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func fail(c *gin.Context, status int, code, msg string, fields map[string]string) {
	c.AbortWithStatusJSON(status, errorBody{errorDetail{Code: code, Message: msg, Fields: fields}})
}

func invalid(c *gin.Context, field, msg string) {
	fail(c, http.StatusUnprocessableEntity, "validation_failed", field+" "+msg, map[string]string{field: msg})
}

// failErr answers a domain error: every package returns apperr errors
// (422 with fields, 404, 409 with its code), WeCom's refusals are a 502 the
// user can read, and anything else is logged once and answered without
// internals.
func (s *Server) failErr(c *gin.Context, err error) {
	var apiErr *wecom.APIError
	if ae, ok := apperr.As(err); ok {
		switch ae.Kind {
		case apperr.KindInvalid:
			fail(c, http.StatusUnprocessableEntity, ae.Code, ae.Error(), ae.Fields)
		case apperr.KindNotFound:
			fail(c, http.StatusNotFound, ae.Code, ae.Msg, nil)
		case apperr.KindConflict:
			fail(c, http.StatusConflict, ae.Code, ae.Msg, nil)
		}
		return
	}
	if errors.As(err, &apiErr) {
		s.logger(c).Warn("WeCom refused a change", "path", c.Request.URL.Path, "err", err)
		fail(c, http.StatusBadGateway, "wecom_error", err.Error(), nil)
		return
	}
	s.logger(c).Error("request failed", "path", c.Request.URL.Path, "err", err)
	fail(c, http.StatusInternalServerError, "internal", "internal error", nil)
}

// pathID reads a numeric path parameter, answering 422 when it is not one.
func pathID(c *gin.Context, name string) (int64, bool) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		invalid(c, name, "must be a positive integer")
		return 0, false
	}
	return id, true
}

// pageParams reads ?limit= (1..200, default 50) and ?cursor=.
func pageParams(c *gin.Context) (limit int, cursor string, ok bool) {
	limit = 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			invalid(c, "limit", "must be between 1 and 200")
			return 0, "", false
		}
		limit = n
	}
	return limit, c.Query("cursor"), true
}

// idPage reads ?limit= and a numeric ?cursor= (an id from a previous page).
func idPage(c *gin.Context) (limit int, cursor int64, ok bool) {
	limit, raw, ok := pageParams(c)
	if !ok {
		return 0, 0, false
	}
	if raw == "" {
		return limit, 0, true
	}
	cursor, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || cursor <= 0 {
		invalid(c, "cursor", "is not a cursor this endpoint returned")
		return 0, 0, false
	}
	return limit, cursor, true
}

// page writes a list under key with the cursor of the next page: the last
// item's id when the page is full.
func page[T any](c *gin.Context, key string, items []T, limit int, id func(T) string) {
	next := ""
	if len(items) == limit && limit > 0 {
		next = id(items[len(items)-1])
	}
	if items == nil {
		items = []T{}
	}
	c.JSON(http.StatusOK, gin.H{key: items, "next_cursor": next})
}

// API bodies are JSON of a few kilobytes; uploads are multipart up to
// WeCom's 20 MB file limit plus the form around it.
const (
	maxJSONBody   = 1 << 20
	maxUploadBody = 21 << 20
)

// limitBody caps every API request body, so a huge body is refused (413)
// instead of read into memory.
func limitBody(c *gin.Context) {
	limit := int64(maxJSONBody)
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		limit = maxUploadBody
	}
	if c.Request.ContentLength > limit {
		fail(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body is larger than %d bytes", limit), nil)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	c.Next()
}

// changeRecord answers a change to the record the path's id names: it
// decodes the JSON body into In, runs change as the signed-in principal and
// answers 200 with what it returns, or the error.
func changeRecord[In, Out any](s *Server, c *gin.Context, change func(ctx context.Context, p auth.Principal, id int64, in In) (Out, error)) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in In
	if !bind(c, &in) {
		return
	}
	out, err := change(c.Request.Context(), principal(c), id, in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// answerByID answers what fn reads of the :id in the principal's corp, or
// the refusal.
func (s *Server) answerByID(c *gin.Context, fn func(ctx context.Context, corp string, id int64) (any, error)) {
	s.answerByIDWith(c, http.StatusOK, fn)
}

// answerByIDWith is answerByID with another success status (202 for work
// queued).
func (s *Server) answerByIDWith(c *gin.Context, status int, fn func(ctx context.Context, corp string, id int64) (any, error)) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	out, err := fn(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(status, out)
}

// bind decodes a JSON body, answering 413 when it is too large and 400 with
// the reason when it is not JSON.
func bind(c *gin.Context, v any) bool {
	body, err := io.ReadAll(c.Request.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		fail(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit), nil)
		return false
	}
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_request", "the body could not be read", nil)
		return false
	}
	fields, err := decodeBody(body, v)
	if len(fields) > 0 {
		fail(c, http.StatusUnprocessableEntity, "validation_failed", "invalid input", fields)
		return false
	}
	if err != nil {
		fail(c, http.StatusBadRequest, "bad_request", "body must be JSON: "+err.Error(), nil)
		return false
	}
	return true
}
