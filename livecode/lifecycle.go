package livecode

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

func normalize(c *Code) {
	c.Kind = KindChannel
	if c.Mode == ModeStores {
		c.Kind = KindStore
	}
	if c.Mode == ModeJoinWay {
		c.Kind = KindGroup
		for i := range c.Settings.Groups {
			if c.Settings.Groups[i].Threshold == 0 {
				c.Settings.Groups[i].Threshold = maxQRJoin
			}
		}
	}
	c.Name = strings.TrimSpace(c.Name)
	for i := range c.Staff {
		if c.Staff[i].Weight == 0 {
			c.Staff[i].Weight = 1
		}
	}
	if c.Settings.SkipVerify == "" {
		c.Settings.SkipVerify = "always"
	}
}

// Create validates a code, creates its WeCom contact ways, and stores it.
// When any step fails, the ways already created are deleted again: nothing
// half-created is left on WeCom or in the database.
func (s *Service) Create(ctx context.Context, c Code) (*Code, error) {
	normalize(&c)
	c.Status = StatusActive
	if err := s.validate(ctx, &c); err != nil {
		return nil, err
	}
	now := s.now()
	c.Slug = newSlug()
	c.CreatedAt, c.UpdatedAt = qsql.Millis(now), qsql.Millis(now)
	// The id names the WeCom state, so the row comes first (inactive), then
	// the ways, then the row is completed; a failure removes both.
	c.Status = StatusArchived
	if err := s.store.insert(ctx, &c); err != nil {
		return nil, err
	}
	created, err := s.createWays(ctx, &c)
	if err == nil {
		c.Status = StatusActive
		err = s.store.update(ctx, &c, c.Version)
	}
	if err != nil {
		s.deleteWays(context.WithoutCancel(ctx), c.CorpID, created)
		if derr := s.store.deleteCode(context.WithoutCancel(ctx), c.CorpID, c.ID); derr != nil {
			s.log.Error("removing a code whose creation failed", "code", c.ID, "err", derr)
		}
		return nil, err
	}
	s.reconcileAfterChange(ctx, &c)
	return s.Get(ctx, c.CorpID, c.ID)
}

// reconcileAfterChange brings the WeCom side in line now, so the answer shows
// it; when that cannot happen here, the code stays due and the reconciler
// does it.
func (s *Service) reconcileAfterChange(ctx context.Context, c *Code) {
	if c.Mode == ModeStores {
		return
	}
	if err := s.Reconcile(ctx, c.CorpID, c.ID); err != nil && !errors.Is(err, ErrBusy) {
		s.log.Warn("reconcile after a change failed; the reconciler will retry", "code", c.ID, "err", err)
	}
}

// createWays makes the WeCom contact ways a code needs and returns their config ids.
func (s *Service) createWays(ctx context.Context, c *Code) ([]string, error) {
	var created []string
	skip := true
	switch c.Mode {
	case ModeWeComQR:
		users := s.backupOrAll(c)
		c.WeComUsers = users
		id, qr, err := s.wc.AddContactWay(ctx, c.CorpID, wecom.ContactWay{Type: 2, Scene: 2, State: codeState(c.ID), User: users,
			SkipVerify: &skip, Remark: truncate(c.Name, 30)})
		if err != nil {
			return created, fmt.Errorf("create WeCom contact way: %w", err)
		}
		created = append(created, id)
		c.ConfigID, c.QRCode = id, qr
	case ModeLink:
		users := s.backupOrAll(c)
		l, err := s.wc.CreateAcquisitionLink(ctx, c.CorpID, wecom.AcquisitionLink{LinkName: truncate(c.Name, 30), Users: users, SkipVerify: true})
		if err != nil {
			return created, fmt.Errorf("create WeCom acquisition link: %w", err)
		}
		created = append(created, "link:"+l.LinkID)
		// customer_channel comes back as the add's State.
		c.ConfigID, c.QRCode, c.WeComUsers = l.LinkID, linkURL(l.URL, codeState(c.ID)), users
	case ModeJoinWay:
		if len(c.Settings.Groups) == 0 {
			break // manual groups only: nothing on WeCom
		}
		chats, err := s.openGroupsLive(ctx, c)
		if err != nil {
			return created, err
		}
		if len(chats) == 0 {
			return created, apperr.Field("settings.groups", "every group is already at its threshold")
		}
		id, err := s.wc.AddJoinWay(ctx, c.CorpID, s.joinWay(c, chats))
		if err != nil {
			return created, fmt.Errorf("create WeCom join way: %w", err)
		}
		created = append(created, "join:"+id)
		w, err := s.wc.GetJoinWay(ctx, c.CorpID, id)
		if err != nil {
			return created, fmt.Errorf("read WeCom join way: %w", err)
		}
		c.ConfigID, c.QRCode, c.WeComUsers = id, w.QRCode, chats
		if text := c.Settings.GroupWelcome.text(); text != "" {
			tid, isNew, err := s.groupWelcomeTemplate(ctx, c, text)
			if err != nil {
				return created, err
			}
			if isNew {
				created = append(created, "gwt:"+tid)
			}
			c.Settings.GroupWelcomeTemplate = tid
		}
	case ModeRotating:
		for i := range c.Staff {
			st := &c.Staff[i]
			st.State = staffState(c.ID, st.UserID)
			id, qr, err := s.wc.AddContactWay(ctx, c.CorpID, wecom.ContactWay{Type: 1, Scene: 2, State: st.State, User: []string{st.UserID},
				SkipVerify: &skip, Remark: truncate(c.Name, 30)})
			if err != nil {
				return created, fmt.Errorf("create WeCom contact way for %s: %w", st.UserID, err)
			}
			created = append(created, id)
			st.ConfigID, st.QRCode = id, qr
		}
	}
	return created, nil
}

// waysOf lists every WeCom object a code holds, in deleteWays' notation.
func waysOf(c *Code) []string {
	var ways []string
	if t := c.Settings.GroupWelcomeTemplate; t != "" {
		ways = append(ways, "gwt:"+t)
	}
	switch {
	case c.ConfigID == "":
	case c.Mode == ModeJoinWay:
		ways = append(ways, "join:"+c.ConfigID)
	case c.Mode == ModeLink:
		ways = append(ways, "link:"+c.ConfigID)
	default:
		ways = append(ways, c.ConfigID)
	}
	for _, st := range c.Staff {
		if st.ConfigID != "" {
			ways = append(ways, st.ConfigID)
		}
	}
	return ways
}

// deleteWays deletes WeCom objects; it reports whether every one is gone
// (deleted now, or already).
func (s *Service) deleteWays(ctx context.Context, corp string, ids []string) bool {
	ok := true
	for _, id := range ids {
		var err error
		if join, found := strings.CutPrefix(id, "join:"); found {
			err = s.wc.DeleteJoinWay(ctx, corp, join)
		} else if tid, found := strings.CutPrefix(id, "gwt:"); found {
			err = s.wc.DeleteGroupWelcomeTemplate(ctx, corp, tid)
		} else if link, found := strings.CutPrefix(id, "link:"); found {
			err = s.wc.DeleteAcquisitionLink(ctx, corp, link)
		} else {
			err = s.wc.DeleteContactWay(ctx, corp, id)
		}
		if err != nil && !wecom.IsCode(err, wecom.CodeContactWayNotFound) {
			ok = false
			s.log.Error("could not delete a WeCom contact way; will retry", "corp", corp, "config_id", id, "err", err)
		}
	}
	return ok
}

// backupOrAll is a way's user list before the first reconcile: every non-backup staff member.
func (s *Service) backupOrAll(c *Code) []string {
	var users []string
	for _, st := range c.Staff {
		if !st.Backup {
			users = append(users, st.UserID)
		}
	}
	sort.Strings(users)
	return users
}

// Update replaces a code's editable fields (name, channel, staff, settings),
// provided the code is still at in.Version: an edit based on an older
// version is refused with ErrVersion. Staff added to a rotating code get
// their own ways; removed staff's ways are deleted.
func (s *Service) Update(ctx context.Context, corp string, id int64, in Code) (*Code, error) {
	if in.Version <= 0 {
		return nil, apperr.Field("version", "is required: the version of the code this edit is based on")
	}
	old, err := s.store.get(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if old.Status == StatusArchived {
		return nil, ErrArchived
	}
	if old.Version != in.Version {
		return nil, ErrVersion
	}
	next := *old
	next.Name, next.Channel, next.Staff, next.Settings = in.Name, in.Channel, in.Staff, in.Settings
	if in.OwnerUserID != 0 {
		next.OwnerUserID = in.OwnerUserID
	}
	normalize(&next)
	if err := s.validate(ctx, &next); err != nil {
		return nil, err
	}
	var created, obsolete []string
	if next.Mode == ModeJoinWay {
		// The template id is Qiflow's bookkeeping, not an input.
		next.Settings.GroupWelcomeTemplate = old.Settings.GroupWelcomeTemplate
		if err := s.syncGroupWelcome(ctx, old.Settings.GroupWelcome.text(), &next, &created, &obsolete); err != nil {
			return nil, err
		}
	}
	if next.Mode == ModeRotating {
		prev := map[string]CodeStaff{}
		for _, st := range old.Staff {
			prev[st.UserID] = st
		}
		skip := true
		for i := range next.Staff {
			st := &next.Staff[i]
			if p, ok := prev[st.UserID]; ok && p.ConfigID != "" {
				st.State, st.ConfigID, st.QRCode = p.State, p.ConfigID, p.QRCode
				delete(prev, st.UserID)
				continue
			}
			st.State = staffState(next.ID, st.UserID)
			cid, qr, err := s.wc.AddContactWay(ctx, corp, wecom.ContactWay{Type: 1, Scene: 2, State: st.State, User: []string{st.UserID}, SkipVerify: &skip, Remark: truncate(next.Name, 30)})
			if err != nil {
				s.deleteWays(context.WithoutCancel(ctx), corp, created)
				return nil, fmt.Errorf("create WeCom contact way for %s: %w", st.UserID, err)
			}
			created = append(created, cid)
			st.ConfigID, st.QRCode = cid, qr
		}
		for _, p := range prev {
			obsolete = append(obsolete, p.ConfigID)
		}
	}
	next.UpdatedAt = qsql.Millis(s.now())
	if err := s.store.update(ctx, &next, in.Version); err != nil {
		s.deleteWays(context.WithoutCancel(ctx), corp, created)
		return nil, err
	}
	s.deleteWays(ctx, corp, obsolete)
	s.reconcileAfterChange(ctx, &next)
	return s.Get(ctx, corp, id)
}

// SetStatus pauses, resumes or archives a code. Archiving is saved first;
// then the reconciler deletes the code's WeCom ways (at once, and again
// until WeCom confirms), so a failed deletion never leaves a live code
// without its row saying archived.
func (s *Service) SetStatus(ctx context.Context, corp string, id int64, status string) (*Code, error) {
	switch status {
	case StatusActive, StatusPaused, StatusArchived:
	default:
		return nil, apperr.Field("status", "must be active, paused or archived")
	}
	c, err := s.store.get(ctx, corp, id)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusArchived {
		return nil, ErrArchived
	}
	c.Status, c.UpdatedAt = status, qsql.Millis(s.now())
	if err := s.store.update(ctx, c, c.Version); err != nil {
		return nil, err
	}
	s.reconcileAfterChange(ctx, c)
	return s.Get(ctx, corp, id)
}

// linkURL adds the customer_channel that names the code to an acquisition link.
func linkURL(u, state string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "customer_channel=" + state
}
