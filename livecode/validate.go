package livecode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/configs"
)

// validate checks the code and its references to staff and tags.
func (s *Service) validate(ctx context.Context, c *Code) error {
	errs := c.validate()
	if c.Mode != ModeJoinWay && len(c.Staff) > 0 && len(c.Staff) <= 100 {
		ids := make([]string, len(c.Staff))
		for i, st := range c.Staff {
			ids[i] = st.UserID
		}
		names, err := s.dir.StaffNames(ctx, c.CorpID, ids)
		if err != nil {
			return err
		}
		for i, st := range c.Staff {
			if _, ok := names[st.UserID]; !ok && st.UserID != "" {
				errs[fmt.Sprintf("staff[%d].userid", i)] = "unknown staff member " + st.UserID
			}
		}
		if c.Mode != ModeStores && c.Mode != ModeJoinWay {
			if err := s.checkContactPermission(ctx, c, errs); err != nil {
				return err
			}
		}
	}
	if id := c.Settings.Welcome.InviteGroupCode; id != 0 {
		g, err := s.store.get(ctx, c.CorpID, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err != nil || g.Kind != KindGroup || g.Status == StatusArchived {
			errs["settings.welcome.invite_group_code"] = "must be a live group code"
		}
	}
	if u := c.Settings.Successor; u != "" {
		names, err := s.dir.StaffNames(ctx, c.CorpID, []string{u})
		if err != nil {
			return err
		}
		if _, ok := names[u]; !ok {
			errs["settings.successor"] = "unknown staff member " + u
		}
	}
	if c.Mode == ModeStores && len(c.Settings.StoreIDs) > 0 {
		stores, err := s.ListStores(ctx, c.CorpID, "")
		if err != nil {
			return err
		}
		have := map[int64]bool{}
		for _, st := range stores {
			have[st.ID] = true
		}
		for i, id := range c.Settings.StoreIDs {
			if !have[id] {
				errs[fmt.Sprintf("settings.store_ids[%d]", i)] = fmt.Sprintf("no store %d", id)
			}
		}
	}
	if err := s.checkFiles(ctx, c, errs); err != nil {
		return err
	}
	for i, mg := range c.Settings.ManualGroups {
		if mg.FileID == 0 {
			continue
		}
		ok := false
		if s.Media != nil {
			var err error
			if ok, err = s.Media.Exists(ctx, c.CorpID, mg.FileID, "image"); err != nil {
				return err
			}
		}
		if !ok {
			errs[fmt.Sprintf("settings.manual_groups[%d].file_id", i)] = fmt.Sprintf("no stored image %d", mg.FileID)
		}
	}
	missing, err := s.dir.MissingTags(ctx, c.CorpID, c.Settings.Tags)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		errs["settings.tags"] = "unknown tags: " + strings.Join(missing, ", ")
	}
	return apperr.Invalid(errs)
}

// checkFiles makes sure every stored-file attachment names a file of the right kind.
func (s *Service) checkFiles(ctx context.Context, c *Code, errs map[string]string) error {
	check := func(field string, atts []Attachment) error {
		for i, a := range atts {
			if a.FileID == 0 {
				continue
			}
			kind := a.MsgType
			if kind == "miniprogram" {
				kind = "image"
			}
			ok := false
			if s.Media != nil {
				var err error
				if ok, err = s.Media.Exists(ctx, c.CorpID, a.FileID, kind); err != nil {
					return err
				}
			}
			if !ok {
				errs[fmt.Sprintf("%s[%d].file_id", field, i)] = fmt.Sprintf("no stored %s file %d", kind, a.FileID)
			}
		}
		return nil
	}
	if err := check("settings.welcome.attachments", c.Settings.Welcome.Attachments); err != nil {
		return err
	}
	for i, v := range c.Settings.Welcome.Variants {
		if err := check(fmt.Sprintf("settings.welcome.variants[%d].attachments", i), v.Attachments); err != nil {
			return err
		}
	}
	return nil
}

func checkTemplate(field, tpl string, maxRunes int, errs map[string]string) {
	for _, p := range placeholderRe.FindAllString(tpl, -1) {
		if !knownPlaceholders[p] {
			errs[field] = fmt.Sprintf("unknown placeholder %s (use {customer_name}, {staff_name}, {channel}, {code_name}, {date})", p)
			return
		}
	}
	if maxRunes > 0 {
		// A long customer name is cut at send time; the fixed text alone must fit.
		fixed := Render(tpl, TemplateVars{})
		if utf8.RuneCountInString(fixed) > maxRunes {
			errs[field] = fmt.Sprintf("renders to more than %d characters", maxRunes)
		}
	}
}

func validateAttachments(field string, atts []Attachment, errs map[string]string) {
	if len(atts) > 9 {
		errs[field] = "at most 9 attachments"
		return
	}
	for i, a := range atts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if a.FileID > 0 {
			// Filled in at send time; the sub-object only needs to exist.
			switch a.MsgType {
			case "image", "video", "file", "miniprogram":
				continue
			}
		}
		switch a.MsgType {
		case "image":
			if a.Image == nil || (a.Image.MediaID == "" && a.Image.PicURL == "") {
				errs[f] = "image needs media_id or pic_url"
			}
		case "link":
			if a.Link == nil || a.Link.Title == "" || a.Link.URL == "" {
				errs[f] = "link needs title and url"
			} else if len(a.Link.Title) > 128 || len(a.Link.Desc) > 512 {
				errs[f] = "link title is at most 128 bytes and desc 512"
			}
		case "miniprogram":
			if a.MiniProgram == nil || a.MiniProgram.Title == "" || a.MiniProgram.AppID == "" || a.MiniProgram.Page == "" || a.MiniProgram.PicMediaID == "" {
				errs[f] = "miniprogram needs title, appid, page and pic_media_id"
			} else if len(a.MiniProgram.Title) > 64 || !strings.HasSuffix(strings.SplitN(a.MiniProgram.Page, "?", 2)[0], ".html") {
				errs[f] = "miniprogram title is at most 64 bytes and its page ends in .html"
			}
		case "video", "file":
			m := a.Video
			if a.MsgType == "file" {
				m = a.File
			}
			if m == nil || m.MediaID == "" {
				errs[f] = a.MsgType + " needs media_id"
			}
		default:
			errs[f] = "msgtype must be image, link, miniprogram, video or file"
		}
	}
}

// validate checks a code's own fields (staff and tags are checked against the
// directory by the service).
func (c *Code) validate() map[string]string {
	errs := map[string]string{}
	if strings.TrimSpace(c.Name) == "" {
		errs["name"] = "is required"
	} else if utf8.RuneCountInString(c.Name) > 100 {
		errs["name"] = "is at most 100 characters"
	}
	if utf8.RuneCountInString(c.Channel) > 64 {
		errs["channel"] = "is at most 64 characters"
	}
	switch c.Mode {
	case ModeWeComQR, ModeRotating, ModeLink:
	case ModeJoinWay:
		c.validateGroups(errs)
		return errs
	case ModeStores:
		if strings.TrimSpace(c.Name) == "" {
			errs["name"] = "is required"
		}
		if c.Settings.RadiusKM < 0 {
			errs["settings.radius_km"] = "must not be negative"
		}
		if len(c.Staff) > 0 {
			errs["staff"] = "store codes list stores, not staff"
		}
		return errs
	default:
		errs["mode"] = "must be wecom_qr, rotating, acquisition_link, join_way or stores"
	}
	if len(c.Staff) == 0 {
		errs["staff"] = "needs at least one staff member"
	}
	if len(c.Staff) > 100 {
		errs["staff"] = "at most 100 staff members (WeCom's limit for a contact way)"
	}
	seen := map[string]bool{}
	nonBackup := 0
	for i, s := range c.Staff {
		f := fmt.Sprintf("staff[%d]", i)
		switch {
		case s.UserID == "":
			errs[f+".userid"] = "is required"
		case seen[s.UserID]:
			errs[f+".userid"] = "is listed twice"
		case s.Weight < 0:
			errs[f+".weight"] = "must not be negative"
		case s.DailyCap < 0:
			errs[f+".daily_cap"] = "must not be negative"
		}
		seen[s.UserID] = true
		if !s.Backup {
			nonBackup++
		}
	}
	if len(c.Staff) > 0 && nonBackup == 0 {
		errs["staff"] = "needs at least one staff member who is not a backup"
	}
	for u, cap := range c.Settings.StaffDailyCaps {
		if cap < 0 {
			errs["settings.staff_daily_caps."+u] = "must not be negative"
		}
	}
	st := c.Settings
	checkTemplate("settings.remark_template", st.RemarkTemplate, 20, errs)
	checkTemplate("settings.description_template", st.DescriptionTemplate, 150, errs)
	checkTemplate("settings.welcome.text", st.Welcome.Text, 0, errs)
	if len(st.Welcome.Text) > 4000 {
		errs["settings.welcome.text"] = "is at most 4000 bytes"
	}
	validateAttachments("settings.welcome.attachments", st.Welcome.Attachments, errs)
	for i, v := range st.Welcome.Variants {
		f := fmt.Sprintf("settings.welcome.variants[%d]", i)
		if _, err := v.Slot.Compile(); err != nil {
			errs[f+".slot"] = err.Error()
		}
		checkTemplate(f+".text", v.Text, 0, errs)
		if v.Text == "" && len(v.Attachments) == 0 {
			errs[f] = "needs text or attachments"
		}
		validateAttachments(f+".attachments", v.Attachments, errs)
	}
	var slots []configs.Compiled
	for i, s := range st.Schedule.Slots {
		f := fmt.Sprintf("settings.schedule.slots[%d]", i)
		cs, err := s.TimeSlot.Compile()
		if err != nil {
			errs[f] = err.Error()
			continue
		}
		for _, u := range s.Staff {
			if !seen[u] {
				errs[f+".staff"] = u + " is not one of the code's staff"
			}
		}
		// Slots that share a day must not overlap.
		for j, o := range slots {
			if configs.Overlap(cs, o) {
				errs[f] = fmt.Sprintf("overlaps settings.schedule.slots[%d]", j)
			}
		}
		slots = append(slots, cs)
	}
	if st.Schedule.UseCalendar && len(st.Schedule.Slots) == 0 {
		errs["settings.schedule.slots"] = "use_calendar needs at least one slot"
	}
	switch st.SkipVerify {
	case "", "always", "never":
	case "window":
		if st.SkipVerifyWindow == nil {
			errs["settings.skip_verify_window"] = "is required with skip_verify window"
		} else if _, err := st.SkipVerifyWindow.Compile(); err != nil {
			errs["settings.skip_verify_window"] = err.Error()
		}
	default:
		errs["settings.skip_verify"] = "must be always, never or window"
	}
	if st.ValidFrom != nil && st.ValidUntil != nil && !st.ValidUntil.After(*st.ValidFrom) {
		errs["settings.valid_until"] = "must be after valid_from"
	}
	return errs
}

func (c *Code) validateGroups(errs map[string]string) {
	if strings.TrimSpace(c.Name) == "" {
		errs["name"] = "is required"
	}
	st := c.Settings
	if len(st.Groups) == 0 && len(st.ManualGroups) == 0 {
		errs["settings.groups"] = "needs at least one group (or manual group)"
	}
	for i, mg := range st.ManualGroups {
		f := fmt.Sprintf("settings.manual_groups[%d]", i)
		switch {
		case mg.FileID == 0:
			errs[f+".file_id"] = "is required: upload the group QR image first"
		case mg.ExpiresAt.IsZero():
			errs[f+".expires_at"] = "is required (WeChat group QRs expire after 7 days)"
		case mg.Cap < 0:
			errs[f+".cap"] = "must not be negative"
		}
	}
	seen := map[string]bool{}
	for i, g := range st.Groups {
		f := fmt.Sprintf("settings.groups[%d]", i)
		switch {
		case g.ChatID == "":
			errs[f+".chat_id"] = "is required"
		case seen[g.ChatID]:
			errs[f+".chat_id"] = "is listed twice"
		case g.Threshold < 0 || g.Threshold > maxQRJoin:
			errs[f+".threshold"] = "must be between 1 and 200 (WeCom stops QR joins at 200)"
		}
		seen[g.ChatID] = true
	}
	if utf8.RuneCountInString(st.RoomBaseName) > 40 {
		errs["settings.room_base_name"] = "is at most 40 characters"
	}
	if len(st.GroupWelcome.text()) > 3000 {
		errs["settings.group_welcome.text"] = "is at most 3000 bytes (WeCom's limit for a group welcome)"
	}
	if st.AutoCreateRoom && st.RoomBaseName == "" {
		errs["settings.room_base_name"] = "is required with auto_create_room"
	}
	if len(c.Staff) > 0 {
		errs["staff"] = "group codes list groups, not staff"
	}
}

// checkContactPermission names the code's staff who lack WeCom's
// customer-contact permission (客户联系): WeCom would refuse them on a
// contact way or link (41054), later and less clearly.
func (s *Service) checkContactPermission(ctx context.Context, c *Code, errs map[string]string) error {
	allowed, err := s.wc.ListFollowUsers(ctx, c.CorpID)
	if err != nil {
		return fmt.Errorf("read the staff with customer-contact permission: %w", err)
	}
	for i, st := range c.Staff {
		f := fmt.Sprintf("staff[%d].userid", i)
		if _, bad := errs[f]; !bad && st.UserID != "" && !slices.Contains(allowed, st.UserID) {
			errs[f] = st.UserID + " has no customer-contact permission in WeCom (客户联系); an admin grants it in the WeCom admin console"
		}
	}
	return nil
}
