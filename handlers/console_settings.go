package handlers

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/leads"
)

// scoringData is the scoring settings page: the corp's bounds, its
// engagement and fit rules.
type scoringData struct {
	Settings leads.Settings
	Rules    []leads.Rule
	FitRules []leads.FitRule
}

// scoringPage shows the scoring rules to those who read leads; those with
// scoring.manage add and delete them (each change rescores every lead in
// the background, shown on the jobs page).
func (s *Server) scoringPage(c *gin.Context) { s.renderScoring(c, http.StatusOK, "") }

func (s *Server) renderScoring(c *gin.Context, status int, msg string) {
	ctx, corp := c.Request.Context(), principal(c).CorpID
	var d scoringData
	var err error
	if d.Settings, err = s.d.Leads.ScoringSettings(ctx, corp); err == nil {
		if d.Rules, err = s.d.Leads.Rules(ctx, corp); err == nil {
			d.FitRules, err = s.d.Leads.FitRules(ctx, corp)
		}
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, status, "scoring", "", s.newView(c, "nav.scoring", "scoring.title", d).WithError(msg))
}

// afterSettingsChange goes back to a settings page, or shows it again with
// the refusal.
func (s *Server) afterSettingsChange(c *gin.Context, err error, page string, again func(*gin.Context, int, string)) {
	if err != nil {
		status, msg := s.refusal(c, err)
		again(c, status, msg)
		return
	}
	redirectPage(c, page)
}

// formInt reads an optional integer form field (empty: 0).
func formInt(c *gin.Context, name string) (int, error) {
	v := strings.TrimSpace(c.PostForm(name))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, apperr.Field(name, "must be a whole number")
	}
	return n, nil
}

func (s *Server) createRuleFromPage(c *gin.Context) {
	points, err := formInt(c, "points")
	var maxPoints int
	if err == nil {
		maxPoints, err = formInt(c, "max_points")
	}
	if err == nil {
		_, err = s.d.Leads.CreateRule(c.Request.Context(), leads.Rule{CorpID: principal(c).CorpID, Name: c.PostForm("name"),
			ActivityType: strings.TrimSpace(c.PostForm("activity_type")), Condition: c.PostForm("condition"), Points: points,
			MaxPoints: maxPoints, Repeatable: c.PostForm("repeatable") != ""})
	}
	s.afterSettingsChange(c, err, "/console/settings/scoring", s.renderScoring)
}

func (s *Server) deleteRuleFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		err = apperr.NotFound("scoring rule not found")
	} else {
		err = s.d.Leads.DeleteRule(c.Request.Context(), principal(c).CorpID, id)
	}
	s.afterSettingsChange(c, err, "/console/settings/scoring", s.renderScoring)
}

func (s *Server) createFitRuleFromPage(c *gin.Context) {
	points, err := formInt(c, "points")
	if err == nil {
		_, err = s.d.Leads.CreateFitRule(c.Request.Context(), leads.FitRule{CorpID: principal(c).CorpID, Name: c.PostForm("name"),
			Condition: c.PostForm("condition"), Points: points})
	}
	s.afterSettingsChange(c, err, "/console/settings/scoring", s.renderScoring)
}

func (s *Server) deleteFitRuleFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		err = apperr.NotFound("fit rule not found")
	} else {
		err = s.d.Leads.DeleteFitRule(c.Request.Context(), principal(c).CorpID, id)
	}
	s.afterSettingsChange(c, err, "/console/settings/scoring", s.renderScoring)
}

// usersData is the users page; Created is a user just added with the
// password to hand them (shown once).
type usersData struct {
	Users    []auth.UserWithRole
	Roles    []auth.Role
	Created  *auth.User
	Password string
}

func (s *Server) usersPage(c *gin.Context) { s.renderUsers(c, http.StatusOK, "", usersData{}) }

func (s *Server) renderUsers(c *gin.Context, status int, msg string, d usersData) {
	users, err := s.d.Auth.ListUsers(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d.Users, d.Roles = users, auth.Roles
	s.render(c, status, "users", "", s.newView(c, "nav.users", "users.title", d).WithError(msg))
}

// createUserFromPage adds a user to the corp, as POST /api/v1/users does;
// without a password one is generated and shown once.
func (s *Server) createUserFromPage(c *gin.Context) {
	password := c.PostForm("password")
	if password == "" {
		password = auth.GeneratePassword()
	}
	u, err := s.d.Auth.CreateUser(c.Request.Context(), auth.NewUser{Email: c.PostForm("email"), Name: c.PostForm("name"), Password: password,
		CorpID: principal(c).CorpID, Role: auth.Role(c.PostForm("role")), StaffUserID: strings.TrimSpace(c.PostForm("staff_userid"))})
	if err != nil {
		status, msg := s.refusal(c, err)
		s.renderUsers(c, status, msg, usersData{})
		return
	}
	d := usersData{Created: &u}
	if c.PostForm("password") == "" {
		d.Password = password
	}
	s.renderUsers(c, http.StatusCreated, "", d)
}

// tokensData is the API tokens page: the user's tokens; Token is one just
// created (shown once).
type tokensData struct {
	Token, Name string
	Tokens      []auth.APIToken
}

func (s *Server) tokensPage(c *gin.Context) { s.renderTokens(c, http.StatusOK, "", tokensData{}) }

func (s *Server) renderTokens(c *gin.Context, status int, msg string, d tokensData) {
	var err error
	if d.Tokens, err = s.d.Auth.APITokens(c.Request.Context(), principal(c).UserID); err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, status, "tokens", "", s.newView(c, "nav.tokens", "tokens.title", d).WithError(msg))
}

// createTokenFromPage makes an API token for an integration, as POST
// /api/v1/tokens does, and shows it once.
func (s *Server) createTokenFromPage(c *gin.Context) {
	hours, err := formInt(c, "ttl_hours")
	if err == nil && hours < 0 {
		err = apperr.Field("ttl_hours", "must not be negative")
	}
	var tok string
	if err == nil {
		tok, _, err = s.d.Auth.CreateAPIToken(c.Request.Context(), principal(c).UserID, c.PostForm("name"), time.Duration(hours)*time.Hour)
	}
	if err != nil {
		status, msg := s.refusal(c, err)
		s.renderTokens(c, status, msg, tokensData{})
		return
	}
	s.renderTokens(c, http.StatusCreated, "", tokensData{Token: tok, Name: c.PostForm("name")})
}

// rolesData is the roles page: each role's permissions in the corp.
type rolesData struct {
	Roles []roleRow
	Perms []auth.Permission
}

type roleRow struct {
	Role    auth.Role
	Allowed map[auth.Permission]bool
}

// rolesPage shows what each role may do in the corp, and lets those who
// manage users change it (the admin row stays whole).
func (s *Server) rolesPage(c *gin.Context) {
	p := principal(c)
	d := rolesData{Perms: auth.Permissions}
	for _, r := range auth.Roles {
		perms, err := s.d.Auth.RolePermissions(c.Request.Context(), p.CorpID, r)
		if err != nil {
			s.failPage(c, err)
			return
		}
		d.Roles = append(d.Roles, roleRow{Role: r, Allowed: perms})
	}
	s.render(c, http.StatusOK, "roles", "", s.newView(c, "nav.roles", "roles.title", d))
}

// setPermissionFromPage grants or takes a permission from a role, as PUT
// /api/v1/roles/{role}/permissions/{permission} does, and answers the cell.
func (s *Server) setPermissionFromPage(c *gin.Context) {
	p := principal(c)
	role, perm := auth.Role(c.Param("role")), auth.Permission(c.Param("permission"))
	allowed := c.PostForm("allowed") == "1"
	if err := s.d.Auth.SetPermission(c.Request.Context(), p.CorpID, role, perm, allowed); err != nil {
		s.failPage(c, err)
		return
	}
	s.logger(c).Info("role permission changed", "role", role, "permission", perm, "allowed", allowed, "by", p.UserID)
	s.render(c, http.StatusOK, "roles", "role_cell", s.newView(c, "nav.roles", "roles.title", roleCell{Role: role, Perm: perm, Allowed: allowed}))
}

// roleCell is one role × permission checkbox.
type roleCell struct {
	Role    auth.Role
	Perm    auth.Permission
	Allowed bool
}

// poolsData is the pools page: each pool's claim rules and its SLA rules.
type poolsData struct {
	Fields     []leads.FieldDef
	Kinds      []string
	Pools      []leads.Pool
	SLAs       []leads.SLARule
	Rules      []leads.AssignmentRule
	Users      []auth.UserWithRole
	Strategies []string
}

func (s *Server) poolsPage(c *gin.Context) { s.renderPools(c, http.StatusOK, "") }

func (s *Server) renderPools(c *gin.Context, status int, msg string) {
	ctx, corp := c.Request.Context(), principal(c).CorpID
	d := poolsData{Strategies: []string{leads.StrategyRoundRobin, leads.StrategyWeighted, leads.StrategyLeastLoaded}, Kinds: leads.FieldKinds}
	var err error
	if d.Fields, err = s.d.Leads.FieldDefs(ctx, corp); err != nil {
		s.failPage(c, err)
		return
	}
	if d.Pools, err = s.d.Leads.Pools(ctx, corp); err == nil {
		if d.SLAs, err = s.d.Leads.SLARules(ctx, corp); err == nil {
			if d.Rules, err = s.d.Leads.AssignmentRules(ctx, corp); err == nil {
				d.Users, err = s.d.Auth.ListUsers(ctx, corp)
			}
		}
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.render(c, status, "pools", "", s.newView(c, "nav.pools", "pools.title", d).WithError(msg))
}

// updatePoolFromPage changes a pool's caps, cool-down and recycling, as
// PUT /api/v1/pools/{id} does (its grade overrides and escalation ladder
// are kept).
func (s *Server) updatePoolFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.afterSettingsChange(c, apperr.NotFound("pool not found"), "/console/settings/pools", s.renderPools)
		return
	}
	corp := principal(c).CorpID
	pools, err := s.d.Leads.Pools(c.Request.Context(), corp)
	if err != nil {
		s.failPage(c, err)
		return
	}
	var pool *leads.Pool
	for i := range pools {
		if pools[i].ID == id {
			pool = &pools[i]
		}
	}
	if pool == nil {
		s.afterSettingsChange(c, apperr.NotFound("pool not found"), "/console/settings/pools", s.renderPools)
		return
	}
	for _, f := range []struct {
		name string
		to   *int
	}{{"max_open", &pool.MaxOpen}, {"max_claims_day", &pool.MaxClaimsDay}, {"cooldown_hours", &pool.CooldownHours}, {"recycle_days", &pool.RecycleDays}} {
		if *f.to, err = formInt(c, f.name); err != nil {
			break
		}
	}
	if err == nil {
		if name := strings.TrimSpace(c.PostForm("name")); name != "" {
			pool.Name = name
		}
		_, err = s.d.Leads.UpdatePool(c.Request.Context(), *pool)
	}
	s.afterSettingsChange(c, err, "/console/settings/pools", s.renderPools)
}

// createSLAFromPage adds an SLA rule (working hours for a new MQL's first
// follow-up and a handoff's answer), as POST /api/v1/sla/rules does.
func (s *Server) createSLAFromPage(c *gin.Context) {
	hours, err := formInt(c, "hours")
	var position int
	if err == nil {
		position, err = formInt(c, "position")
	}
	if err == nil {
		_, err = s.d.Leads.CreateSLARule(c.Request.Context(), leads.SLARule{CorpID: principal(c).CorpID, Position: position,
			Name: c.PostForm("name"), Condition: c.PostForm("condition"), Hours: hours})
	}
	s.afterSettingsChange(c, err, "/console/settings/pools", s.renderPools)
}

// defineFieldFromPage creates or changes one of the corp's own lead
// fields (options: one choice a line, for a select).
func (s *Server) defineFieldFromPage(c *gin.Context) {
	position, err := formInt(c, "position")
	if err == nil {
		var options []string
		for _, o := range strings.Split(c.PostForm("options"), "\n") {
			if o = strings.TrimSpace(o); o != "" {
				options = append(options, o)
			}
		}
		_, err = s.d.Leads.DefineField(c.Request.Context(), leads.FieldDef{CorpID: principal(c).CorpID, Key: strings.TrimSpace(c.PostForm("key")),
			Label: c.PostForm("label"), Kind: c.PostForm("kind"), Options: options, Position: position})
	}
	s.afterSettingsChange(c, err, "/console/settings/pools", s.renderPools)
}

// deleteFieldFromPage removes a field and every lead's value of it.
func (s *Server) deleteFieldFromPage(c *gin.Context) {
	err := s.d.Leads.DeleteField(c.Request.Context(), principal(c).CorpID, c.Param("key"))
	s.afterSettingsChange(c, err, "/console/settings/pools", s.renderPools)
}

// teamsData is the teams page: the teams with their manager and members,
// and the corp's users to pick from.
type teamsData struct {
	Teams []teamView
	Users []auth.UserWithRole
}

type teamView struct {
	auth.Team
	Members []int64
}

func (s *Server) teamsPage(c *gin.Context) { s.renderTeams(c, http.StatusOK, "") }

func (s *Server) renderTeams(c *gin.Context, status int, msg string) {
	ctx, corp := c.Request.Context(), principal(c).CorpID
	teams, err := s.d.Auth.Teams(ctx, corp)
	if err != nil {
		s.failPage(c, err)
		return
	}
	members, err := s.d.Auth.Memberships(ctx, corp)
	if err != nil {
		s.failPage(c, err)
		return
	}
	var d teamsData
	if d.Users, err = s.d.Auth.ListUsers(ctx, corp); err != nil {
		s.failPage(c, err)
		return
	}
	for _, t := range teams {
		tv := teamView{Team: t}
		for _, m := range members {
			if m.TeamID == t.ID {
				tv.Members = append(tv.Members, m.UserID)
			}
		}
		d.Teams = append(d.Teams, tv)
	}
	s.render(c, status, "teams", "", s.newView(c, "nav.teams", "teams.title", d).WithError(msg))
}

// createTeamFromPage makes a team with its manager, as POST /api/v1/teams.
func (s *Server) createTeamFromPage(c *gin.Context) {
	manager, err := formInt(c, "manager_user_id")
	if err == nil {
		_, err = s.d.Auth.CreateTeam(c.Request.Context(), principal(c).CorpID, c.PostForm("name"), int64(manager))
	}
	s.afterSettingsChange(c, err, "/console/settings/teams", s.renderTeams)
}

// addTeamMemberFromPage puts a user in a team, as POST /api/v1/teams/{id}/members.
func (s *Server) addTeamMemberFromPage(c *gin.Context) {
	team, err := formInt(c, "team_id")
	var user int
	if err == nil {
		user, err = formInt(c, "user_id")
	}
	if err == nil {
		err = s.d.Auth.AddTeamMember(c.Request.Context(), principal(c).CorpID, int64(team), int64(user))
	}
	s.afterSettingsChange(c, err, "/console/settings/teams", s.renderTeams)
}

// calendarData is the corp's work calendar, as in use.
type calendarData struct {
	Zone     string
	Calendar configs.CalendarConfig
	Days     []string
	Default  bool // no working hours set: the default ones apply
}

// calendarPage shows the corp's work calendar to every user (SLAs,
// recycling and code schedules count by it); admins change it there.
func (s *Server) calendarPage(c *gin.Context) { s.renderCalendar(c, http.StatusOK, "", nil) }

func (s *Server) renderCalendar(c *gin.Context, status int, msg string, posted *configs.CalendarConfig) {
	corp := principal(c).CorpID
	d := calendarData{Zone: s.location(corp).String(), Days: weekdays}
	if cal := s.d.Calendars[corp]; cal != nil {
		d.Calendar = cal.Config()
	}
	if posted != nil {
		d.Calendar = *posted
	}
	if len(d.Calendar.WorkHours) == 0 {
		d.Calendar.WorkHours, d.Default = configs.DefaultWorkHours(), true
	}
	s.render(c, status, "calendar", "", s.newView(c, "nav.calendar", "calendar.title", d).WithError(msg))
}

// saveCalendarFromPage changes the corp's work calendar: checked first, then
// stored (every instance takes it up) and put in use here at once.
func (s *Server) saveCalendarFromPage(c *gin.Context) {
	p := principal(c)
	cal := s.d.Calendars[p.CorpID]
	if cal == nil {
		s.failPage(c, apperr.NotFound("this corp has no calendar"))
		return
	}
	cc := configs.CalendarConfig{WorkHours: map[string][]string{}, MakeupHours: splitList(c.PostForm("makeup_hours")),
		Holidays: splitList(c.PostForm("holidays")), Workdays: splitList(c.PostForm("workdays"))}
	for _, day := range weekdays {
		cc.WorkHours[day] = splitList(c.PostForm("hours_" + day))
	}
	if _, err := cc.Compile(cal.Location().String()); err != nil {
		s.renderCalendar(c, http.StatusUnprocessableEntity, "calendar: "+err.Error(), &cc)
		return
	}
	if err := s.d.Directory.SaveCalendar(c.Request.Context(), p.CorpID, cc, p.UserID); err != nil {
		s.failPage(c, err)
		return
	}
	if err := cal.Replace(cc); err != nil { // compiled above: cannot fail
		s.failPage(c, err)
		return
	}
	s.logger(c).Info("work calendar changed", "corp", p.CorpID, "by", p.UserID)
	redirectPage(c, "/console/settings/calendar")
}

// splitList reads a list typed with commas, spaces or one item a line.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '，' || r == '\n' || r == '\r' || r == ' ' || r == '\t' })
}

// previewRuleFromPage answers how many of a sample a rule being written
// holds for (?kind=fit or engagement), under the add form.
func (s *Server) previewRuleFromPage(c *gin.Context) {
	p := principal(c)
	var pv leads.Preview
	var err error
	key := "scoring.preview.fit"
	if c.Query("kind") == "fit" {
		pv, err = s.d.Leads.PreviewFitRule(c.Request.Context(), p.CorpID, c.PostForm("condition"))
	} else {
		key = "scoring.preview.engagement"
		pv, err = s.d.Leads.PreviewRule(c.Request.Context(), p.CorpID, strings.TrimSpace(c.PostForm("activity_type")), c.PostForm("condition"))
	}
	lang := s.lang(c, p)
	if err != nil {
		_, msg := s.refusal(c, err)
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(`<span class="error">`+template.HTMLEscapeString(msg)+`</span>`))
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(`<span class="ok">`+template.HTMLEscapeString(translate(lang, key, pv.Matched, pv.Sampled))+`</span>`))
}

// createAssignmentRuleFromPage adds who gets new MQLs (kind mql) or SQLs
// (handoff), as POST /api/v1/assignment/rules does; weights are typed per
// user (weight_<id>).
func (s *Server) createAssignmentRuleFromPage(c *gin.Context) {
	p := principal(c)
	ctx := c.Request.Context()
	r := leads.AssignmentRule{CorpID: p.CorpID, Kind: c.PostForm("kind"), Name: c.PostForm("name"), Condition: c.PostForm("condition"),
		Strategy: c.PostForm("strategy"), WorkingHours: c.PostForm("working_hours") != ""}
	var err error
	if r.Position, err = formInt(c, "position"); err == nil {
		for _, raw := range c.PostFormArray("users") {
			var id int64
			if id, err = strconv.ParseInt(raw, 10, 64); err != nil {
				err = apperr.Field("users", "lists user ids")
				break
			}
			r.Users = append(r.Users, id)
			var w int
			if w, err = formInt(c, "weight_"+raw); err != nil {
				break
			}
			if w > 0 && r.Strategy == leads.StrategyWeighted {
				if r.Weights == nil {
					r.Weights = map[int64]int{}
				}
				r.Weights[id] = w
			}
		}
	}
	if err == nil {
		_, err = s.d.Leads.CreateAssignmentRule(ctx, r, func(u int64) (bool, error) { return s.d.Auth.IsMember(ctx, p.CorpID, u) })
	}
	s.afterSettingsChange(c, err, "/console/settings/pools", s.renderPools)
}

// setRoleFromPage changes a user's role and WeCom userid in the corp (the
// last admin stays one).
func (s *Server) setRoleFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil {
		err = s.d.Auth.SetRole(c.Request.Context(), principal(c).CorpID, id, auth.Role(c.PostForm("role")), c.PostForm("staff_userid"))
	} else {
		err = auth.ErrNotFound
	}
	s.afterSettingsChange(c, err, "/console/settings/users", func(c *gin.Context, status int, msg string) { s.renderUsers(c, status, msg, usersData{}) })
}

// setDisabledFromPage stops a user signing in (every token of theirs stops
// working at once), or lets them again.
func (s *Server) setDisabledFromPage(c *gin.Context) {
	p := principal(c)
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil {
		err = s.d.Auth.SetDisabled(c.Request.Context(), p.CorpID, p.UserID, id, c.PostForm("disabled") == "1")
	} else {
		err = auth.ErrNotFound
	}
	if err == nil {
		s.logger(c).Info("user sign-in changed", "user_id", id, "disabled", c.PostForm("disabled") == "1", "by", p.UserID)
	}
	s.afterSettingsChange(c, err, "/console/settings/users", func(c *gin.Context, status int, msg string) { s.renderUsers(c, status, msg, usersData{}) })
}

// revokeTokenFromPage ends one of the user's API tokens.
func (s *Server) revokeTokenFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err == nil {
		err = s.d.Auth.RevokeAPIToken(c.Request.Context(), principal(c).UserID, id)
	} else {
		err = auth.ErrNotFound
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	redirectPage(c, "/console/settings/tokens")
}
