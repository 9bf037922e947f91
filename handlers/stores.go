package handlers

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/livecode"
)

var storesTmpl = template.Must(template.ParseFS(pages, "pages/stores.html"))

func (s *Server) storeRoutes() []Route {
	return []Route{
		{"POST", "/stores", auth.PermCodesManage, s.saveStore},
		{"PUT", "/stores/:id", auth.PermCodesManage, s.saveStore},
		{"DELETE", "/stores/:id", auth.PermCodesManage, s.deleteStore},
		{"GET", "/stores", auth.PermCodesRead, s.listStores},
		{"GET", "/stores/:id", auth.PermCodesRead, s.getStore},
	}
}

func (s *Server) saveStore(c *gin.Context) {
	var st livecode.Store
	if !bind(c, &st) {
		return
	}
	st.ID = 0
	if c.Param("id") != "" {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		st.ID = id
	}
	st.CorpID = principal(c).CorpID
	saved, err := s.d.LiveCodes.SaveStore(c.Request.Context(), st)
	if err != nil {
		s.failErr(c, err)
		return
	}
	status := http.StatusOK
	if st.ID == 0 {
		status = http.StatusCreated
	}
	c.JSON(status, saved)
}

func (s *Server) deleteStore(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if err := s.d.LiveCodes.DeleteStore(c.Request.Context(), principal(c).CorpID, id); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listStores(c *gin.Context) {
	stores, err := s.d.LiveCodes.ListStores(c.Request.Context(), principal(c).CorpID, c.Query("city"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if stores == nil {
		stores = []livecode.Store{}
	}
	c.JSON(http.StatusOK, gin.H{"stores": stores})
}

func (s *Server) getStore(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	st, err := s.d.LiveCodes.GetStore(c.Request.Context(), principal(c).CorpID, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// storeCode loads an open store code for its public pages.
func (s *Server) storeCode(c *gin.Context) (*livecode.Code, bool) {
	if !s.pageLimiter.allow(c.ClientIP()) {
		c.String(http.StatusTooManyRequests, "too many requests")
		return nil, false
	}
	code, err := s.d.LiveCodes.GetBySlug(c.Request.Context(), c.Param("slug"))
	if errors.Is(err, livecode.ErrNotFound) || (err == nil && code.Mode != livecode.ModeStores) {
		c.Status(http.StatusNotFound)
		landingTmpl.Execute(c.Writer, gin.H{"Title": "二维码不存在 Not found", "Closed": "这个二维码不存在。This code does not exist."})
		return nil, false
	}
	if err != nil {
		s.failErr(c, err)
		return nil, false
	}
	if !s.d.LiveCodes.Open(code) {
		c.Header("Content-Type", "text/html; charset=utf-8")
		landingTmpl.Execute(c.Writer, gin.H{"Title": code.Name, "Closed": "活动已结束或暂停。This code is paused or has ended."})
		return nil, false
	}
	return code, true
}

// storesPage serves /s/:slug: it asks the browser for its location (which
// needs HTTPS, or localhost) and shows the nearest store's code, or lets the
// visitor pick a city and a store.
func (s *Server) storesPage(c *gin.Context) {
	code, ok := s.storeCode(c)
	if !ok {
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	storesTmpl.Execute(c.Writer, gin.H{"Title": code.Name, "Note": code.Settings.Note, "Base": "/s/" + code.Slug})
}

func (s *Server) nearestStores(c *gin.Context) {
	code, ok := s.storeCode(c)
	if !ok {
		return
	}
	lat, err1 := strconv.ParseFloat(c.Query("lat"), 64)
	lng, err2 := strconv.ParseFloat(c.Query("lng"), 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		invalid(c, "lat", "lat and lng must be a WGS-84 position")
		return
	}
	hits, err := s.d.LiveCodes.Nearest(c.Request.Context(), code, lat, lng, 5)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if hits == nil {
		hits = []livecode.StoreHit{}
	}
	c.JSON(http.StatusOK, gin.H{"stores": hits})
}

func (s *Server) cityStores(c *gin.Context) {
	code, ok := s.storeCode(c)
	if !ok {
		return
	}
	cities, hits, err := s.d.LiveCodes.StoresIn(c.Request.Context(), code, c.Query("city"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if hits == nil {
		hits = []livecode.StoreHit{}
	}
	c.JSON(http.StatusOK, gin.H{"cities": cities, "stores": hits})
}
