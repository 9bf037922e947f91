package handlers

import (
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
)

// storesData is the stores page: the corp's stores and, after an import,
// what it did.
type storesData struct {
	Stores   []livecode.Store
	Saved    int
	Rejected []storeLineError
	Imported bool
}

type storeLineError struct {
	Line   int
	Reason string
}

func (s *Server) consoleStoresPage(c *gin.Context) {
	s.renderStores(c, http.StatusOK, "", storesData{})
}

func (s *Server) renderStores(c *gin.Context, status int, msg string, d storesData) {
	list, err := s.d.LiveCodes.ListStores(c.Request.Context(), principal(c).CorpID, c.Query("city"))
	if err != nil {
		s.failPage(c, err)
		return
	}
	d.Stores = list
	s.render(c, status, "stores", "", s.newView(c, "nav.codes", "stores.title", d).WithError(msg))
}

// maxStoresFile bounds a stores CSV: a corp's stores, not its customers.
const maxStoresFile = 2 << 20

// importStoresFromPage saves each line of a stores CSV (headers name, city,
// address, lat, lng, datum, code_id; UTF-8 or GBK) as POST /api/v1/stores
// would, and shows the lines refused with their reasons; the others are
// kept.
func (s *Server) importStoresFromPage(c *gin.Context) {
	fh, err := c.FormFile("file")
	if err != nil {
		s.renderStores(c, http.StatusUnprocessableEntity, "file: "+translate(s.lang(c, principal(c)), "stores.no_file"), storesData{})
		return
	}
	f, err := fh.Open()
	if err != nil {
		s.failPage(c, err)
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStoresFile+1))
	f.Close()
	if err != nil || len(data) > maxStoresFile {
		s.renderStores(c, http.StatusRequestEntityTooLarge, translate(s.lang(c, principal(c)), "imports.too_large"), storesData{})
		return
	}
	r := csv.NewReader(leads.DecodeSmallCSV(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		s.renderStores(c, http.StatusUnprocessableEntity, "file: "+translate(s.lang(c, principal(c)), "stores.bad_csv"), storesData{})
		return
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	d := storesData{Imported: true}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.Rejected = append(d.Rejected, storeLineError{line, err.Error()})
			continue
		}
		st, err := storeFromRecord(principal(c).CorpID, rec, col)
		if err == nil {
			_, err = s.d.LiveCodes.SaveStore(c.Request.Context(), st)
		}
		if ae, ok := apperr.As(err); ok {
			d.Rejected = append(d.Rejected, storeLineError{line, ae.Error()})
			continue
		}
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Saved++
	}
	s.renderStores(c, http.StatusOK, "", d)
}

func storeFromRecord(corp string, rec []string, col map[string]int) (livecode.Store, error) {
	get := func(name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	st := livecode.Store{CorpID: corp, Name: get("name"), City: get("city"), Address: get("address"), Datum: get("datum")}
	var err error
	for _, f := range []struct {
		name string
		to   *float64
	}{{"lat", &st.Lat}, {"lng", &st.Lng}} {
		if *f.to, err = strconv.ParseFloat(get(f.name), 64); err != nil {
			return st, apperr.Field(f.name, "must be a number")
		}
	}
	if v := get("code_id"); v != "" {
		if st.CodeID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return st, apperr.Field("code_id", "must be a live code id")
		}
	}
	return st, nil
}
