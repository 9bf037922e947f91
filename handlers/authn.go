package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
)

const principalKey = "principal"

// CorpHeader names another of the user's corps to act in.
const CorpHeader = "X-Qiflow-Corp"

// authenticate resolves the bearer token and checks perm ("" = any signed-in user).
func (s *Server) authenticate(perm auth.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok || token == "" {
			fail(c, http.StatusUnauthorized, "unauthenticated", "a bearer token is required", nil)
			return
		}
		p, err := s.d.Auth.Authenticate(c.Request.Context(), token, c.GetHeader(CorpHeader))
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			fail(c, http.StatusUnauthorized, "unauthenticated", err.Error(), nil)
			return
		case errors.Is(err, auth.ErrNotMember):
			fail(c, http.StatusForbidden, "forbidden", "you are not a member of corp "+c.GetHeader(CorpHeader), nil)
			return
		case err != nil:
			s.failErr(c, err)
			return
		}
		if perm != "" && !p.Can(perm) {
			fail(c, http.StatusForbidden, "forbidden", "your role ("+string(p.Role)+") lacks the "+string(perm)+" permission", nil)
			return
		}
		c.Set(principalKey, p)
		c.Next()
	}
}

func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(principalKey)
	return p.(auth.Principal)
}

func (s *Server) login(c *gin.Context) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !bind(c, &req) {
		return
	}
	if req.Email == "" {
		invalid(c, "email", "is required")
		return
	}
	if req.Password == "" {
		invalid(c, "password", "is required")
		return
	}
	if wait, limited := s.loginLimited(c, auth.NormalizeEmail(req.Email)); limited {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())))
		fail(c, http.StatusTooManyRequests, "too_many_attempts", "too many sign-in attempts; try again in a few minutes", nil)
		return
	}
	token, exp, err := s.d.Auth.Login(c.Request.Context(), req.Email, req.Password)
	if errors.Is(err, auth.ErrBadCredentials) {
		s.logger(c).Warn("login failed", "email", auth.NormalizeEmail(req.Email), "remote", c.ClientIP())
		fail(c, http.StatusUnauthorized, "bad_credentials", err.Error(), nil)
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": token, "token_type": "Bearer", "expires_at": exp.UTC().Format(time.RFC3339)})
}

func (s *Server) logout(c *gin.Context) {
	token, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if err := s.d.Auth.Revoke(c.Request.Context(), token); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) me(c *gin.Context) {
	p := principal(c)
	perms := []auth.Permission{}
	for _, x := range auth.Permissions {
		if p.Can(x) {
			perms = append(perms, x)
		}
	}
	c.JSON(http.StatusOK, gin.H{"user_id": p.UserID, "email": p.Email, "corp_id": p.CorpID, "role": p.Role,
		"staff_userid": p.StaffUserID, "permissions": perms})
}

func (s *Server) createToken(c *gin.Context) {
	var req struct {
		Name     string `json:"name"`
		TTLHours int    `json:"ttl_hours"`
	}
	if !bind(c, &req) {
		return
	}
	if req.TTLHours < 0 {
		invalid(c, "ttl_hours", "must not be negative")
		return
	}
	tok, id, err := s.d.Auth.CreateAPIToken(c.Request.Context(), principal(c).UserID, req.Name, time.Duration(req.TTLHours)*time.Hour)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": id, "token": tok, "name": req.Name})
}

func (s *Server) listUsers(c *gin.Context) {
	users, err := s.d.Auth.ListUsers(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"users": users})
}

func (s *Server) createUser(c *gin.Context) {
	var req struct {
		Email       string `json:"email"`
		Name        string `json:"name"`
		Password    string `json:"password"`
		Role        string `json:"role"`
		StaffUserID string `json:"staff_userid"`
	}
	if !bind(c, &req) {
		return
	}
	u, err := s.d.Auth.CreateUser(c.Request.Context(), auth.NewUser{Email: req.Email, Name: req.Name, Password: req.Password,
		CorpID: principal(c).CorpID, Role: auth.Role(req.Role), StaffUserID: req.StaffUserID})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, u)
}

func (s *Server) setPermission(c *gin.Context) {
	var req struct {
		Allowed *bool `json:"allowed"`
	}
	if !bind(c, &req) {
		return
	}
	if req.Allowed == nil {
		invalid(c, "allowed", "is required")
		return
	}
	err := s.d.Auth.SetPermission(c.Request.Context(), principal(c).CorpID, auth.Role(c.Param("role")), auth.Permission(c.Param("permission")), *req.Allowed)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) createTeam(c *gin.Context) {
	var req struct {
		Name          string `json:"name"`
		ManagerUserID int64  `json:"manager_user_id"`
	}
	if !bind(c, &req) {
		return
	}
	t, err := s.d.Auth.CreateTeam(c.Request.Context(), principal(c).CorpID, req.Name, req.ManagerUserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

func (s *Server) addTeamMember(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var req struct {
		UserID int64 `json:"user_id"`
	}
	if !bind(c, &req) {
		return
	}
	if req.UserID <= 0 {
		invalid(c, "user_id", "is required")
		return
	}
	if err := s.d.Auth.AddTeamMember(c.Request.Context(), principal(c).CorpID, id, req.UserID); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// Sign-in attempts allowed per window, per account and per client address,
// counted in Redis so every instance shares them.
const (
	loginWindow     = 5 * time.Minute
	loginPerAccount = 10
	loginPerIP      = 50
)

// loginLimited counts an attempt for the account and the address and says
// whether either is over its limit, with how long until the window ends.
func (s *Server) loginLimited(c *gin.Context, email string) (time.Duration, bool) {
	wait, limited := s.overLimit(c, loginWindow, limit{s.kvKey("login", "acct", email), loginPerAccount},
		limit{s.kvKey("login", "ip", c.ClientIP()), loginPerIP})
	if limited {
		s.logger(c).Warn("sign-in attempts over the limit", "email", email, "remote", c.ClientIP())
	}
	return wait, limited
}
