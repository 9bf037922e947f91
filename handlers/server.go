// Package handlers is Qiflow's HTTP layer: Gin routes, request binding, the
// auth middleware, mapping domain errors to HTTP, the WeCom callback gateway
// and the operations endpoints. Handlers decode, validate, call a service and
// write the answer; they talk neither SQL nor WeCom.
package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/kv"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/directory"
	"github.com/qiflow/qiflow/wecom/media"
)

// Corp is what the gateway needs to accept one corp's callbacks.
type Corp struct {
	ID     string
	Crypto wecom.Crypto
}

// Deps are the services the handlers call.
type Deps struct {
	Log       *slog.Logger
	Corps     []Corp
	Bus       *jobs.Bus
	Runner    *jobs.Runner
	Auth      *auth.Service
	Directory *directory.Directory
	LiveCodes *livecode.Service
	Leads     *leads.Service
	Journeys  *journeys.Service
	Media     *media.Store
	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []string
	// Ready checks the database and Redis.
	Ready func(ctx context.Context) error
	// KV counts login attempts and form fills across instances (nil: no
	// limit, tests).
	KV *kv.Store
	// PublicURL is where Qiflow is reached (links to hosted pages).
	PublicURL string
	// Location is a corp's time zone, for the console's times (nil: Asia/Shanghai).
	Location func(corp string) *time.Location
	// Calendars are the corps' live work calendars (the console shows them
	// and admins change them; the services hold the same ones).
	Calendars map[string]*configs.Calendar
	// Pages, OAuthBase, JSSDK and AgentIDs serve the WeCom chat sidebar:
	// OAuth and JS-SDK signatures, where WeCom's OAuth page is, which
	// JS-SDK the page loads ("wecom" or the sandbox's "sandbox") and each
	// corp's app id.
	Pages     WeComPages
	OAuthBase string
	JSSDK     string
	AgentIDs  map[string]int
}

// Server holds the routes.
type Server struct {
	d           Deps
	corps       map[string]Corp
	pageLimiter *ipLimiter
	pages       consolePages
}

// New builds the Gin engine with every route.
func New(d Deps) (*gin.Engine, *Server) {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{d: d, corps: map[string]Corp{}, pageLimiter: &ipLimiter{}}
	for _, c := range d.Corps {
		s.corps[c.ID] = c
	}
	r := gin.New()
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		d.Log.Error("trusted proxies", "err", err)
	}
	r.Use(requestID(), s.accessLog(), s.recovery())
	r.HandleMethodNotAllowed = true

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.Handler()))

	r.GET("/wecom/callback", s.verifyURL)
	r.POST("/wecom/callback", s.receive)
	r.GET("/wecom/callback/:corp_id", s.verifyURL)
	r.POST("/wecom/callback/:corp_id", s.receive)

	r.GET("/l/:slug", s.landing)
	r.GET("/g/:slug", s.landing)
	r.GET("/g/:slug/manual/:file", s.manualGroupImage)
	r.GET("/s/:slug", s.storesPage)
	r.GET("/s/:slug/nearest", s.nearestStores)
	r.GET("/s/:slug/stores", s.cityStores)
	r.GET("/f/:slug", s.formPage)
	r.POST("/f/:slug", limitBody, s.submitFormPage)
	r.POST("/api/public/forms/:slug", limitBody, s.submitFormJSON)
	r.OPTIONS("/api/public/forms/:slug", s.formPreflight)

	api := r.Group("/api/v1", limitBody)
	api.POST("/auth/login", s.login)
	for _, rt := range s.routes() {
		api.Handle(rt.Method, rt.Path, s.authenticate(rt.Perm), rt.Handler)
	}
	s.mountConsole(r)
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "not_found", "no such route", nil) })
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed", nil)
	})
	return r, s
}

// Route is an authenticated API route and the permission it needs ("" = any signed-in user).
type Route struct {
	Method  string
	Path    string
	Perm    auth.Permission
	Handler gin.HandlerFunc
}

// Routes lists the authenticated API routes (for the role × route test).
func (s *Server) Routes() []Route { return s.routes() }

func (s *Server) routes() []Route {
	return append([]Route{
		{"POST", "/auth/logout", "", s.logout},
		{"GET", "/me", "", s.me},
		{"POST", "/tokens", auth.PermTokensManage, s.createToken},
		{"GET", "/users", auth.PermUsersManage, s.listUsers},
		{"POST", "/users", auth.PermUsersManage, s.createUser},
		{"PUT", "/roles/:role/permissions/:permission", auth.PermUsersManage, s.setPermission},
		{"POST", "/teams", auth.PermUsersManage, s.createTeam},
		{"POST", "/teams/:id/members", auth.PermUsersManage, s.addTeamMember},
		{"GET", "/events", auth.PermEventsRead, s.listEvents},
		{"POST", "/events/:id/replay", auth.PermEventsReplay, s.replayEvent},
		{"POST", "/events/:id/dismiss", auth.PermEventsReplay, s.dismissEvent},
		{"GET", "/jobs", auth.PermJobsRead, s.listJobs},
		{"GET", "/jobs/:id", auth.PermJobsRead, s.getJob},
		{"POST", "/jobs/:id/cancel", auth.PermJobsManage, s.cancelJob},
		{"POST", "/directory/sync", auth.PermDirectorySync, s.startSync},
		{"GET", "/directory/summary", auth.PermDirectoryRead, s.directorySummary},
		{"GET", "/staff", auth.PermDirectoryRead, s.listStaff},
		{"GET", "/tags", auth.PermDirectoryRead, s.listTags},
		{"GET", "/contacts", auth.PermDirectoryRead, s.listContacts},
		{"GET", "/groups", auth.PermDirectoryRead, s.listGroups},
		{"GET", "/contacts/:id", auth.PermDirectoryRead, s.getContact},
	}, slices.Concat(s.codeRoutes(), s.storeRoutes(), s.leadRoutes(), s.journeyRoutes())...)
}

type ctxKey string

const requestIDKey ctxKey = "request_id"

var safeRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes the caller's X-Request-ID when it is safe to log, or makes one.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !safeRequestID.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		c.Set(string(requestIDKey), id)
		c.Header("X-Request-ID", id)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey, id))
		c.Next()
	}
}

// logger is the request's logger, carrying its id.
func (s *Server) logger(c *gin.Context) *slog.Logger {
	return s.d.Log.With("request_id", c.GetString(string(requestIDKey)))
}

// accessLog logs API and page requests. Callbacks log only what goes wrong
// (once, in the gateway): at thousands a second a line each is noise.
func (s *Server) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		path := c.FullPath()
		if path == "/wecom/callback/:corp_id" || path == "/wecom/callback" || path == "/healthz" || path == "/metrics" || path == "/readyz" {
			return
		}
		s.logger(c).Info("http request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
			"duration_ms", time.Since(start).Milliseconds(), "remote", c.ClientIP())
	}
}

func (s *Server) recovery() gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		s.logger(c).Error("handler panicked", "err", err, "path", c.Request.URL.Path)
		fail(c, http.StatusInternalServerError, "internal", "internal error", nil)
	})
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.d.Ready(ctx); err != nil {
		// The cause (addresses, driver messages) is for the log, not for
		// whoever can reach this public endpoint.
		s.logger(c).Warn("not ready", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
