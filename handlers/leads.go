package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

func (s *Server) leadRoutes() []Route {
	return []Route{
		{"GET", "/leads", auth.PermLeadsRead, s.listLeads},
		{"GET", "/leads/:id", auth.PermLeadsRead, s.getLead},
		{"POST", "/leads/:id/claim", auth.PermLeadsClaim, s.claimLead},
		{"POST", "/leads/:id/release", auth.PermLeadsClaim, s.releaseLead},
		{"POST", "/leads/:id/stage", auth.PermLeadsClaim, s.changeStage},
		{"POST", "/leads/:id/status", auth.PermLeadsClaim, s.changeStatus},
		{"POST", "/leads/:id/pool", auth.PermPoolsManage, s.moveLead},
		{"POST", "/leads/:id/touches", auth.PermLeadsClaim, s.touchLead},
		{"GET", "/leads/:id/timeline", auth.PermLeadsRead, s.leadTimeline},
		{"POST", "/leads", auth.PermLeadsWrite, s.upsertLead},
		{"POST", "/leads/:id/qualify", auth.PermLeadsClaim, s.qualifyLead},
		{"GET", "/handoffs", auth.PermLeadsRead, s.listHandoffs},
		{"GET", "/forms", auth.PermLeadsRead, s.listForms},
		{"GET", "/exports/leads", auth.PermLeadsExport, s.exportLeads},
		{"GET", "/exports", auth.PermPoolsManage, s.listExports},
		{"POST", "/imports", auth.PermLeadsWrite, s.createImport},
		{"GET", "/imports/:id", auth.PermLeadsWrite, s.getImport},
		{"GET", "/imports/:id/report", auth.PermLeadsWrite, s.importReport},
		{"POST", "/forms", auth.PermLeadsWrite, s.createForm},
		{"PUT", "/forms/:id", auth.PermLeadsWrite, s.updateForm},
		{"GET", "/sla/rules", auth.PermLeadsRead, s.listSLARules},
		{"POST", "/sla/rules", auth.PermPoolsManage, s.createSLARule},
		{"GET", "/sla/report", auth.PermPoolsManage, s.slaReport},
		{"POST", "/handoffs/:id/accept", auth.PermHandoffsAnswer, s.answerHandoff(true)},
		{"POST", "/handoffs/:id/reject", auth.PermHandoffsAnswer, s.answerHandoff(false)},
		{"GET", "/leads/:id/person", auth.PermLeadsRead, s.leadPerson},
		{"POST", "/people/:id/merge", auth.PermPoolsManage, s.mergePeople},
		{"POST", "/merges/:id/undo", auth.PermPoolsManage, s.undoMerge},
		{"GET", "/companies/reviews", auth.PermLeadsRead, s.companyReviews},
		{"POST", "/companies/:id/reviews/:similar/merge", auth.PermLeadsWrite, s.resolveCompanyReview(true)},
		{"DELETE", "/companies/:id/reviews/:similar", auth.PermLeadsWrite, s.resolveCompanyReview(false)},
		{"POST", "/activities", auth.PermActivitiesWrite, s.recordActivities},
		{"GET", "/assignment/rules", auth.PermLeadsRead, s.listAssignmentRules},
		{"POST", "/assignment/rules", auth.PermPoolsManage, s.createAssignmentRule},
		{"GET", "/scoring/rules", auth.PermLeadsRead, s.listRules},
		{"POST", "/scoring/rules", auth.PermScoringManage, s.createRule},
		{"DELETE", "/scoring/rules/:id", auth.PermScoringManage, s.deleteRule},
		{"GET", "/scoring/settings", auth.PermLeadsRead, s.scoringSettings},
		{"GET", "/scoring/fit-rules", auth.PermLeadsRead, s.listFitRules},
		{"POST", "/scoring/fit-rules", auth.PermScoringManage, s.createFitRule},
		{"DELETE", "/scoring/fit-rules/:id", auth.PermScoringManage, s.deleteFitRule},
		{"PUT", "/scoring/settings", auth.PermScoringManage, s.setScoringSettings},
		{"GET", "/pools", auth.PermLeadsRead, s.listPools},
		{"POST", "/pools", auth.PermPoolsManage, s.createPool},
		{"PUT", "/pools/:id", auth.PermPoolsManage, s.updatePool},
		{"GET", "/pools/:id/members", auth.PermLeadsRead, s.poolMembers},
		{"PUT", "/pools/:id/members/:user", auth.PermPoolsManage, s.poolMember(true)},
		{"DELETE", "/pools/:id/members/:user", auth.PermPoolsManage, s.poolMember(false)},
		{"GET", "/lead-fields", auth.PermLeadsRead, s.listFieldDefs},
		{"PUT", "/lead-fields/:key", auth.PermPoolsManage, s.defineField},
		{"DELETE", "/lead-fields/:key", auth.PermPoolsManage, s.deleteField},
		{"PATCH", "/leads/:id/fields", auth.PermLeadsClaim, s.setLeadFields},
		{"GET", "/tasks", auth.PermLeadsClaim, s.listTasks},
		{"POST", "/leads/:id/tasks", auth.PermLeadsClaim, s.createTask},
		{"POST", "/tasks/:id/done", auth.PermLeadsClaim, s.completeTask},
	}
}

// viewer is who asks: holders of pools.manage see every lead; SDRs (who
// claim) the leads of their pools and their own; sales reps (who answer
// handoffs) the leads handed to them and their own; those who only read
// (marketers) every lead. A team's manager also sees what the team's
// members see as theirs.
func (s *Server) viewer(c *gin.Context, p auth.Principal) (leads.Viewer, bool) {
	v, err := s.viewerOf(c.Request.Context(), p)
	if err != nil {
		s.failErr(c, err)
		return v, false
	}
	return v, true
}

func (s *Server) viewerOf(ctx context.Context, p auth.Principal) (leads.Viewer, error) {
	switch {
	case p.Can(auth.PermPoolsManage):
		return leads.Viewer{UserID: p.UserID, All: true}, nil
	case !p.Can(auth.PermLeadsClaim) && !p.Can(auth.PermHandoffsAnswer):
		return leads.Viewer{UserID: p.UserID, All: true}, nil
	}
	v := leads.Viewer{UserID: p.UserID, Handoffs: !p.Can(auth.PermLeadsClaim)}
	team, err := s.d.Auth.ManagedUsers(ctx, p.CorpID, p.UserID)
	v.Team = team
	return v, err
}

// leadFilter reads a list's filter and the viewer's scope, answering 422
// for a malformed one.
func (s *Server) leadFilter(c *gin.Context) (leads.ListFilter, bool) {
	f, err := s.parseLeadFilter(c.Request.Context(), principal(c), c.Query)
	if err != nil {
		s.failErr(c, err)
		return f, false
	}
	return f, true
}

// parseLeadFilter reads a lead list's filter (?pool=, ?owner= me, none or a
// user id, ?stage=, ?grade=, ?status=, ?source=, ?channel=, ?code=) and
// the viewer's scope: the API's lists and the console's pages read the same.
func (s *Server) parseLeadFilter(ctx context.Context, p auth.Principal, query func(string) string) (leads.ListFilter, error) {
	v, err := s.viewerOf(ctx, p)
	if err != nil {
		return leads.ListFilter{}, err
	}
	f := leads.ListFilter{CorpID: p.CorpID, Viewer: v, Stage: query("stage"), Grade: query("grade"), Status: query("status"),
		Source: query("source"), Channel: query("channel")}
	positive := func(name, what string) (int64, error) {
		v := query(name)
		if v == "" {
			return 0, nil
		}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return 0, apperr.Field(name, "must be "+what)
		}
		return id, nil
	}
	if f.CodeID, err = positive("code", "a live code id"); err != nil {
		return f, err
	}
	if f.PoolID, err = positive("pool", "a pool id"); err != nil {
		return f, err
	}
	switch v := query("owner"); v {
	case "":
	case "me":
		f.Owner = p.UserID
	case "none":
		f.Owner = -1
	default:
		if f.Owner, err = positive("owner", "me, none or a user id"); err != nil {
			return f, err
		}
	}
	return f, nil
}

// exportLeads writes the leads of the list's filter as CSV (UTF-8 with a
// BOM), mobiles and emails masked without pii; the export is audited.
func (s *Server) exportLeads(c *gin.Context) {
	f, ok := s.leadFilter(c)
	if !ok {
		return
	}
	p := principal(c)
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="leads.csv"`)
	if _, err := s.d.Leads.ExportLeads(c.Request.Context(), f, p.UserID, exportMask(p), c.Writer); err != nil {
		s.logger(c).Error("lead export cut short", "err", err)
	}
}

// exportMask hides mobiles and emails from a user without pii (nil: shown).
func exportMask(p auth.Principal) leads.Mask {
	if p.Can(auth.PermPII) {
		return nil
	}
	return func(kind, v string) string {
		if kind == leads.IdentityEmail {
			return maskEmail(v)
		}
		return auth.MaskMobile(v)
	}
}

// listExports is the audit of exports, newest first.
func (s *Server) listExports(c *gin.Context) {
	list, err := s.d.Leads.Exports(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"exports": list})
}

// listLeads pages through leads: ?pool=, ?owner= (me, none, or a user id),
// ?stage=, ?limit=, ?cursor=.
func (s *Server) listLeads(c *gin.Context) {
	limit, cursor, ok := idPage(c)
	if !ok {
		return
	}
	f, ok := s.leadFilter(c)
	if !ok {
		return
	}
	f.After, f.Limit = cursor, limit
	list, err := s.d.Leads.List(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	page(c, "leads", list, limit, func(l leads.Lead) string { return strconv.FormatInt(l.ID, 10) })
}

func (s *Server) getLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	v, ok := s.viewer(c, p)
	if !ok {
		return
	}
	l, history, err := s.d.Leads.Get(c.Request.Context(), p.CorpID, id, v)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"lead": l, "history": history})
}

// claimLead makes the signed-in SDR the lead's owner; a lead someone else
// won answers 409 already_claimed, a cap 409 claim_cap_reached.
func (s *Server) claimLead(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	l, err := s.d.Leads.Claim(c.Request.Context(), p.CorpID, id, p.UserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

func (s *Server) releaseLead(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		Reason string `json:"reason"`
	}) (*leads.Lead, error) {
		return s.d.Leads.Release(ctx, p.CorpID, id, p.UserID, in.Reason)
	})
}

// changeStage moves a lead: {"stage", "reason"}. Owners move their leads;
// holders of pools.manage move any.
func (s *Server) changeStage(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		Stage  string `json:"stage"`
		Reason string `json:"reason"`
	}) (*leads.Lead, error) {
		return s.d.Leads.ChangeStage(ctx, p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage), in.Stage, in.Reason)
	})
}

// changeStatus sets where the work on one's lead stands:
// {"status": "new|attempting|connected|unqualified", "reason"}.
func (s *Server) changeStatus(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}) (*leads.Lead, error) {
		return s.d.Leads.SetStatus(ctx, p.CorpID, id, p.UserID, p.Can(auth.PermPoolsManage), in.Status, in.Reason)
	})
}

// moveLead moves a lead to another pool: {"pool_id", "reason"}.
func (s *Server) moveLead(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		PoolID int64  `json:"pool_id"`
		Reason string `json:"reason"`
	}) (*leads.Lead, error) {
		return s.d.Leads.MoveToPool(ctx, p.CorpID, id, in.PoolID, p.UserID, in.Reason)
	})
}

// touchLead logs a follow-up on one's lead: {"kind": "call|note|message|task", "text"}.
func (s *Server) touchLead(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}) (*leads.Lead, error) {
		return s.d.Leads.Touch(ctx, p.CorpID, id, p.UserID, in.Kind, in.Text)
	})
}

func (s *Server) listPools(c *gin.Context) {
	pools, err := s.d.Leads.Pools(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"pools": pools})
}

// poolInput is a pool's name and claim rules (0 = no limit).
type poolInput struct {
	Name          string `json:"name"`
	MaxOpen       int    `json:"max_open"`
	MaxClaimsDay  int    `json:"max_claims_day"`
	CooldownHours int    `json:"cooldown_hours"`
	RecycleDays   int    `json:"recycle_days"`
	// RecycleByGrade: {"A": 5, "D": 2} working days for leads of a grade.
	RecycleByGrade map[string]int `json:"recycle_by_grade"`
	// Escalations: [{"after_days": 3, "notify": "owner"}, {"after_days": 5, "notify": "manager"}]
	Escalations []leads.Escalation `json:"escalations"`
}

func (in poolInput) pool(corp string) leads.Pool {
	return leads.Pool{CorpID: corp, Name: in.Name, MaxOpen: in.MaxOpen, MaxClaimsDay: in.MaxClaimsDay, CooldownHours: in.CooldownHours,
		RecycleDays: in.RecycleDays, RecycleByGrade: in.RecycleByGrade, Escalations: in.Escalations}
}

func (s *Server) createPool(c *gin.Context) {
	var in poolInput
	if !bind(c, &in) {
		return
	}
	p, err := s.d.Leads.CreatePool(c.Request.Context(), in.pool(principal(c).CorpID))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, p)
}

func (s *Server) updatePool(c *gin.Context) {
	changeRecord(s, c, func(ctx context.Context, p auth.Principal, id int64, in poolInput) (*leads.Pool, error) {
		pool := in.pool(p.CorpID)
		pool.ID = id
		return s.d.Leads.UpdatePool(ctx, pool)
	})
}

func (s *Server) poolMembers(c *gin.Context) {
	s.answerByID(c, func(ctx context.Context, corp string, id int64) (any, error) {
		users, err := s.d.Leads.Members(ctx, corp, id)
		return gin.H{"members": users}, err
	})
}

// poolMember adds (PUT) or removes (DELETE) a member of a pool.
func (s *Server) poolMember(add bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		user, ok := pathID(c, "user")
		if !ok {
			return
		}
		p := principal(c)
		ctx := c.Request.Context()
		if !add {
			if err := s.d.Leads.RemoveMember(ctx, p.CorpID, id, user); err != nil {
				s.failErr(c, err)
				return
			}
			c.Status(http.StatusNoContent)
			return
		}
		member, err := s.d.Auth.IsMember(ctx, p.CorpID, user)
		if err != nil {
			s.failErr(c, err)
			return
		}
		if !member {
			invalid(c, "user", "is not a user of this corp")
			return
		}
		if err := s.d.Leads.AddMember(ctx, p.CorpID, id, user); err != nil {
			s.failErr(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// leadTimeline is the newest 200 things that happened to a lead's person.
func (s *Server) leadTimeline(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	v, ok := s.viewer(c, p)
	if !ok {
		return
	}
	tl, err := s.d.Leads.Timeline(c.Request.Context(), p.CorpID, id, v, 200)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"timeline": tl})
}

// recordActivities records up to 1,000 activities:
// {"activities":[{"external_userid"|"person_id","type","at","properties","key"}]}.
// Bad ones are listed with their index, field and reason; the rest are kept.
func (s *Server) recordActivities(c *gin.Context) {
	var in struct {
		Activities []leads.ActivityIn `json:"activities"`
	}
	if !bind(c, &in) {
		return
	}
	res, err := s.d.Leads.RecordActivities(c.Request.Context(), principal(c).CorpID, in.Activities)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) listRules(c *gin.Context) {
	rules, err := s.d.Leads.Rules(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rules": rules})
}

// createRule adds an engagement rule: {"name","activity_type","condition",
// "points","max_points","repeatable"}; a condition that does not compile is
// a 422 on "condition" naming the problem.
func (s *Server) createRule(c *gin.Context) {
	var in struct {
		Name         string `json:"name"`
		ActivityType string `json:"activity_type"`
		Condition    string `json:"condition"`
		Points       int    `json:"points"`
		MaxPoints    int    `json:"max_points"`
		Repeatable   bool   `json:"repeatable"`
	}
	if !bind(c, &in) {
		return
	}
	r, err := s.d.Leads.CreateRule(c.Request.Context(), leads.Rule{CorpID: principal(c).CorpID, Name: in.Name, ActivityType: in.ActivityType,
		Condition: in.Condition, Points: in.Points, MaxPoints: in.MaxPoints, Repeatable: in.Repeatable})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}

// deleteRule removes an engagement rule; every lead is rescored in the
// background (what the rule gave goes).
func (s *Server) deleteRule(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if err := s.d.Leads.DeleteRule(c.Request.Context(), principal(c).CorpID, id); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listFitRules(c *gin.Context) {
	rules, err := s.d.Leads.FitRules(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rules": rules})
}

// createFitRule adds a fit rule: {"name","condition","points"}; every lead
// is regraded in the background (job leads.rescore).
func (s *Server) createFitRule(c *gin.Context) {
	var in struct {
		Name      string `json:"name"`
		Condition string `json:"condition"`
		Points    int    `json:"points"`
	}
	if !bind(c, &in) {
		return
	}
	r, err := s.d.Leads.CreateFitRule(c.Request.Context(), leads.FitRule{CorpID: principal(c).CorpID, Name: in.Name, Condition: in.Condition, Points: in.Points})
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}

func (s *Server) deleteFitRule(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	if err := s.d.Leads.DeleteFitRule(c.Request.Context(), principal(c).CorpID, id); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) scoringSettings(c *gin.Context) {
	st, err := s.d.Leads.ScoringSettings(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// setScoringSettings changes the settings named in the body; the others
// keep their values.
func (s *Server) setScoringSettings(c *gin.Context) {
	in, err := s.d.Leads.ScoringSettings(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !bind(c, &in) {
		return
	}
	st, err := s.d.Leads.SetScoringSettings(c.Request.Context(), principal(c).CorpID, in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) listAssignmentRules(c *gin.Context) {
	rules, err := s.d.Leads.AssignmentRules(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"rules": rules})
}

// createAssignmentRule adds a rule for new MQLs: {"position","name",
// "condition","users"}; the condition is over the lead (source, channel,
// code_id, pool_id, staff_userid).
func (s *Server) createAssignmentRule(c *gin.Context) {
	var in struct {
		Kind         string        `json:"kind"`
		Position     int           `json:"position"`
		Name         string        `json:"name"`
		Condition    string        `json:"condition"`
		Users        []int64       `json:"users"`
		Strategy     string        `json:"strategy"`
		Weights      map[int64]int `json:"weights"`
		WorkingHours bool          `json:"working_hours"`
	}
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	ctx := c.Request.Context()
	r, err := s.d.Leads.CreateAssignmentRule(ctx, leads.AssignmentRule{CorpID: p.CorpID, Kind: in.Kind, Position: in.Position, Name: in.Name, Condition: in.Condition, Users: in.Users,
		Strategy: in.Strategy, Weights: in.Weights, WorkingHours: in.WorkingHours},
		func(u int64) (bool, error) { return s.d.Auth.IsMember(ctx, p.CorpID, u) })
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}
