package handlers

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/leads"
)

// upsertLead creates or updates a person and their lead, found by mobile,
// email or unionid (people found by different ones are merged). The
// Idempotency-Key header makes it safe to repeat. 201 when it made a new
// person and lead, else 200; what was flagged for a review is in
// "reviews" (kept, not refused).
func (s *Server) upsertLead(c *gin.Context) {
	var in leads.PersonIn
	if !bind(c, &in) {
		return
	}
	p := principal(c)
	res, err := s.d.Leads.Upsert(c.Request.Context(), p.CorpID, p.UserID, c.GetHeader("Idempotency-Key"), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	maskPerson(p, res.Person)
	for i := range res.Merges {
		maskIdentities(p, res.Merges[i].Identities)
	}
	status := http.StatusOK
	if res.Created && !res.Replayed {
		status = http.StatusCreated
	}
	c.JSON(status, res)
}

// leadPerson is the person of a lead, with their identities and the merges
// they took part in.
func (s *Server) leadPerson(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	v, ok := s.viewer(c, p)
	if !ok {
		return
	}
	person, merges, err := s.d.Leads.PersonOfLead(c.Request.Context(), p.CorpID, id, v)
	if err != nil {
		s.failErr(c, err)
		return
	}
	maskPerson(p, person)
	for i := range merges {
		maskIdentities(p, merges[i].Identities)
	}
	c.JSON(http.StatusOK, gin.H{"person": person, "merges": merges})
}

// mergePeople folds another person into this one: {"person_id", "reason"}.
func (s *Server) mergePeople(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	var in struct {
		PersonID int64  `json:"person_id"`
		Reason   string `json:"reason"`
	}
	if !bind(c, &in) {
		return
	}
	if in.PersonID <= 0 {
		invalid(c, "person_id", "is required")
		return
	}
	p := principal(c)
	m, err := s.d.Leads.Merge(c.Request.Context(), p.CorpID, id, in.PersonID, p.UserID, in.Reason)
	if err != nil {
		s.failErr(c, err)
		return
	}
	maskIdentities(p, m.Identities)
	c.JSON(http.StatusOK, m)
}

// undoMerge restores both people of a merge.
func (s *Server) undoMerge(c *gin.Context) {
	id, ok := pathID(c, "id")
	if !ok {
		return
	}
	p := principal(c)
	m, err := s.d.Leads.Unmerge(c.Request.Context(), p.CorpID, id, p.UserID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	maskIdentities(p, m.Identities)
	c.JSON(http.StatusOK, m)
}

// companyReviews lists companies whose names are alike, for a person to
// decide whether they are one.
func (s *Server) companyReviews(c *gin.Context) {
	list, err := s.d.Leads.CompanyReviews(c.Request.Context(), principal(c).CorpID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"reviews": list})
}

// resolveCompanyReview folds company {id} into the similar one it was
// proposed with, or dismisses the proposal (they are two companies).
func (s *Server) resolveCompanyReview(merge bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, "id")
		if !ok {
			return
		}
		similar, ok := pathID(c, "similar")
		if !ok {
			return
		}
		if err := s.d.Leads.ResolveCompanyReview(c.Request.Context(), principal(c).CorpID, id, similar, merge); err != nil {
			s.failErr(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// maskPerson hides mobiles and emails from those without pii.
func maskPerson(p auth.Principal, person *leads.Person) {
	if person != nil {
		maskIdentities(p, person.Identities)
	}
}

func maskIdentities(p auth.Principal, ids []leads.Identity) {
	if p.Can(auth.PermPII) {
		return
	}
	for i, id := range ids {
		switch id.Kind {
		case leads.IdentityMobile:
			ids[i].Value = auth.MaskMobile(id.Value)
		case leads.IdentityEmail:
			ids[i].Value = maskEmail(id.Value)
		}
	}
}

// maskEmail keeps an address's first letter and domain: a***@example.com.
func maskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	if at <= 0 {
		return "***"
	}
	return e[:1] + "***" + e[at:]
}
