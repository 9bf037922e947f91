package handlers

import (
	"cmp"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/livecode"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/directory"
	"github.com/qiflow/qiflow/wecom/media"
)

// The channel code form (渠道活码): create and edit wecom_qr, rotating and
// acquisition-link codes with a staff picker, caps and backups, a weekly
// schedule, tags, the remark template and the welcome (text and an image).
// Group and store codes are made through the API for now.

// codeFormData is the form: the code as posted (or stored), what to pick
// from, and the schedule's rows (filled ones and empty ones to fill).
type codeFormData struct {
	Code     livecode.Code
	Staff    []staffChoice
	Tags     []directory.Tag
	Slots    []slotRow
	Variants []variantRow
	Days     []string
	Modes    []string
	Editing  bool
}

// variantRow is a welcome for a time slot (a night welcome, say).
type variantRow struct {
	Days       map[string]bool
	Start, End string
	Text       string
}

// variantRows is how many welcome variants the form offers.
const variantRows = 2

type staffChoice struct {
	directory.Staff
	Department  string
	On, Backup  bool
	Cap, Weight int
}

type slotRow struct {
	Days       map[string]bool
	Start, End string
	Staff      map[string]bool
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// formModes are the kinds of code the form makes.
var formModes = []string{livecode.ModeWeComQR, livecode.ModeRotating, livecode.ModeLink}

// scheduleRows is how many schedule rows the form offers.
const scheduleRows = 4

func (s *Server) newCodePage(c *gin.Context) {
	s.renderCodeForm(c, http.StatusOK, "", livecode.Code{Mode: livecode.ModeWeComQR}, false)
}

func (s *Server) editCodePage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.failPage(c, livecode.ErrNotFound)
		return
	}
	code, err := s.codeOf(c, id)
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.renderCodeForm(c, http.StatusOK, "", *code, true)
}

func (s *Server) renderCodeForm(c *gin.Context, status int, msg string, code livecode.Code, editing bool) {
	ctx, corp := c.Request.Context(), principal(c).CorpID
	staff, err := s.d.Directory.ListStaff(ctx, corp)
	if err != nil {
		s.failPage(c, err)
		return
	}
	depts, err := s.d.Directory.DepartmentNames(ctx, corp)
	if err != nil {
		s.failPage(c, err)
		return
	}
	d := codeFormData{Code: code, Days: weekdays, Editing: editing, Modes: formModes}
	if d.Tags, err = s.d.Directory.ListTags(ctx, corp); err != nil {
		s.failPage(c, err)
		return
	}
	on := map[string]livecode.CodeStaff{}
	for _, cs := range code.Staff {
		on[cs.UserID] = cs
	}
	for _, st := range staff {
		if st.GoneAt != nil {
			continue
		}
		cs, ok := on[st.UserID]
		d.Staff = append(d.Staff, staffChoice{Staff: st, Department: depts[st.MainDepartment], On: ok, Backup: cs.Backup, Cap: cs.DailyCap, Weight: cs.Weight})
	}
	for _, sl := range code.Settings.Schedule.Slots {
		row := slotRow{Days: map[string]bool{}, Start: sl.Start, End: sl.End, Staff: map[string]bool{}}
		for _, day := range sl.Days {
			row.Days[day] = true
		}
		for _, u := range sl.Staff {
			row.Staff[u] = true
		}
		d.Slots = append(d.Slots, row)
	}
	for len(d.Slots) < scheduleRows {
		d.Slots = append(d.Slots, slotRow{Days: map[string]bool{}, Staff: map[string]bool{}})
	}
	for _, v := range code.Settings.Welcome.Variants {
		row := variantRow{Days: map[string]bool{}, Start: v.Slot.Start, End: v.Slot.End, Text: v.Text}
		for _, day := range v.Slot.Days {
			row.Days[day] = true
		}
		d.Variants = append(d.Variants, row)
	}
	for len(d.Variants) < variantRows {
		d.Variants = append(d.Variants, variantRow{Days: map[string]bool{}})
	}
	title := "codes.new"
	if editing {
		title = "codes.edit"
	}
	s.render(c, status, "codeform", "", s.newView(c, "nav.codes", title, d).WithError(msg))
}

// codeFromForm reads the posted form into a code (the image, if any, is
// stored as media and attached to the welcome).
func (s *Server) codeFromForm(c *gin.Context) (livecode.Code, error) {
	code := livecode.Code{CorpID: principal(c).CorpID, Name: c.PostForm("name"), Channel: strings.TrimSpace(c.PostForm("channel")), Mode: c.PostForm("mode")}
	for _, u := range c.PostFormArray("staff") {
		cs := livecode.CodeStaff{UserID: u, Backup: c.PostForm("backup_"+u) != ""}
		var err error
		if cs.DailyCap, err = formInt(c, "cap_"+u); err != nil {
			return code, err
		}
		if cs.Weight, err = formInt(c, "weight_"+u); err != nil {
			return code, err
		}
		code.Staff = append(code.Staff, cs)
	}
	st := &code.Settings
	st.Tags = c.PostFormArray("tags")
	st.RemarkTemplate = c.PostForm("remark_template")
	st.Welcome.Text = c.PostForm("welcome_text")
	for i := range scheduleRows {
		n := strconv.Itoa(i)
		days := c.PostFormArray("slot" + n + "_days")
		start, end := strings.TrimSpace(c.PostForm("slot"+n+"_start")), strings.TrimSpace(c.PostForm("slot"+n+"_end"))
		if len(days) == 0 && start == "" && end == "" {
			continue
		}
		st.Schedule.Slots = append(st.Schedule.Slots, livecode.ScheduleSlot{TimeSlot: configs.TimeSlot{Days: days, Start: start, End: end},
			Staff: c.PostFormArray("slot" + n + "_staff")})
	}
	st.Schedule.UseCalendar = c.PostForm("use_calendar") != ""
	for i := range variantRows {
		n := strconv.Itoa(i)
		text := strings.TrimSpace(c.PostForm("variant" + n + "_text"))
		if text == "" {
			continue
		}
		st.Welcome.Variants = append(st.Welcome.Variants, livecode.WelcomeVariant{Text: text, Slot: configs.TimeSlot{Days: c.PostFormArray("variant" + n + "_days"),
			Start: strings.TrimSpace(c.PostForm("variant" + n + "_start")), End: strings.TrimSpace(c.PostForm("variant" + n + "_end"))}})
	}
	for _, id := range c.PostFormArray("keep_attachment") {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return code, apperr.Field("keep_attachment", "must be a file id")
		}
		st.Welcome.Attachments = append(st.Welcome.Attachments, livecode.Attachment{Attachment: wecom.Attachment{MsgType: "image"}, FileID: n})
	}
	if fh, err := c.FormFile("welcome_image"); err == nil && fh.Size > 0 {
		f, err := fh.Open()
		if err != nil {
			return code, apperr.Field("welcome_image", "cannot be read")
		}
		data, err := io.ReadAll(io.LimitReader(f, 20<<20+1))
		f.Close()
		if err != nil {
			return code, apperr.Field("welcome_image", "cannot be read")
		}
		p := principal(c)
		saved, err := s.d.Media.Save(c.Request.Context(), p.CorpID, "image", fh.Filename, fh.Header.Get("Content-Type"), data, p.UserID)
		if errors.Is(err, media.ErrInvalid) {
			return code, apperr.Field("welcome_image", err.Error())
		}
		if err != nil {
			return code, err
		}
		st.Welcome.Attachments = append(st.Welcome.Attachments, livecode.Attachment{Attachment: wecom.Attachment{MsgType: "image"}, FileID: saved.ID})
	}
	return code, nil
}

// createCodeFromPage creates the code as POST /api/v1/codes does (the same
// validation: staff eligible in WeCom, tags known, templates' variables).
func (s *Server) createCodeFromPage(c *gin.Context) {
	code, err := s.codeFromForm(c)
	if err == nil {
		code.OwnerUserID = principal(c).UserID
		_, err = s.d.LiveCodes.Create(c.Request.Context(), code)
	}
	if err != nil {
		status, msg := s.codeRefusal(c, err)
		s.renderCodeForm(c, status, msg, code, false)
		return
	}
	redirectPage(c, "/console/codes")
}

// updateCodeFromPage saves an edit based on the version the form showed: a
// code changed meanwhile is refused, not overwritten.
func (s *Server) updateCodeFromPage(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.failPage(c, livecode.ErrNotFound)
		return
	}
	code, err := s.codeFromForm(c)
	code.ID = id
	if err == nil {
		if code.Version, err = strconv.ParseInt(c.PostForm("version"), 10, 64); err != nil {
			err = apperr.Field("version", "is required")
		}
	}
	if err == nil {
		var old *livecode.Code
		if old, err = s.codeOf(c, id); err == nil {
			code.OwnerUserID = old.OwnerUserID
			_, err = s.d.LiveCodes.Update(c.Request.Context(), code.CorpID, id, code)
		}
	}
	if err != nil {
		status, msg := s.codeRefusal(c, err)
		s.renderCodeForm(c, status, msg, code, true)
		return
	}
	redirectPage(c, "/console/codes")
}

// codeRefusal is refusal with WeCom's own refusals (a staff member without
// the customer-contact permission, say) shown with their errcode.
func (s *Server) codeRefusal(c *gin.Context, err error) (int, string) {
	var apiErr *wecom.APIError
	if errors.As(err, &apiErr) {
		s.logger(c).Warn("WeCom refused a live code", "err", err)
		return http.StatusBadGateway, translate(s.lang(c, principal(c)), "sidebar.wecom_refused", apiErr.Code) + " " + apiErr.Msg
	}
	return s.refusal(c, err)
}

// mediaPreview answers a stored image (a welcome's attachment) for the
// form's preview; other kinds of file are not shown.
func (s *Server) mediaPreview(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		c.Status(http.StatusNotFound)
		return
	}
	f, data, err := s.d.Media.Content(c.Request.Context(), principal(c).CorpID, id)
	if errors.Is(err, media.ErrNotFound) || (err == nil && f.Kind != "image") {
		c.Status(http.StatusNotFound)
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	// The type is what the bytes are, not what the upload claimed: a file
	// that is not an image is never served as anything.
	ct := http.DetectContentType(data)
	if !strings.HasPrefix(ct, "image/") {
		c.Status(http.StatusNotFound)
		return
	}
	c.Header("Cache-Control", "private, max-age=3600")
	c.Data(http.StatusOK, ct, data)
}

// groupFormData is the group code form (群活码): the corp's groups to pick,
// in the order they take over, each with its threshold.
type groupFormData struct {
	Code   livecode.Code
	Groups []groupChoice
}

type groupChoice struct {
	directory.Group
	On        bool
	Order     int
	Threshold int
}

// groupPickerLimit bounds the groups the picker lists.
const groupPickerLimit = 500

func (s *Server) newGroupCodePage(c *gin.Context) {
	s.renderGroupForm(c, http.StatusOK, "", livecode.Code{Mode: livecode.ModeJoinWay})
}

func (s *Server) renderGroupForm(c *gin.Context, status int, msg string, code livecode.Code) {
	groups, err := s.d.Directory.ListGroups(c.Request.Context(), principal(c).CorpID, "", "", groupPickerLimit)
	if err != nil {
		s.failPage(c, err)
		return
	}
	picked := map[string]int{}
	threshold := map[string]int{}
	for i, g := range code.Settings.Groups {
		picked[g.ChatID], threshold[g.ChatID] = i+1, g.Threshold
	}
	d := groupFormData{Code: code}
	for _, g := range groups {
		order, on := picked[g.ChatID]
		d.Groups = append(d.Groups, groupChoice{Group: g, On: on, Order: order, Threshold: threshold[g.ChatID]})
	}
	s.render(c, status, "groupform", "", s.newView(c, "nav.codes", "codes.new_group", d).WithError(msg))
}

// createGroupCodeFromPage makes a group code over the picked groups, in
// the order given (empty orders after the numbered, in the list's order),
// as POST /api/v1/codes does.
func (s *Server) createGroupCodeFromPage(c *gin.Context) {
	p := principal(c)
	code := livecode.Code{CorpID: p.CorpID, Name: c.PostForm("name"), Channel: strings.TrimSpace(c.PostForm("channel")), Mode: livecode.ModeJoinWay, OwnerUserID: p.UserID}
	type pick struct {
		entry livecode.GroupEntry
		order int
		at    int
	}
	var picks []pick
	var err error
	for i, chat := range c.PostFormArray("groups") {
		pk := pick{entry: livecode.GroupEntry{ChatID: chat}, at: i}
		if pk.order, err = formInt(c, "order_"+chat); err == nil {
			pk.entry.Threshold, err = formInt(c, "threshold_"+chat)
		}
		if err != nil {
			break
		}
		if pk.order <= 0 {
			pk.order = 1 << 30
		}
		picks = append(picks, pk)
	}
	slices.SortStableFunc(picks, func(a, b pick) int { return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.at, b.at)) })
	for _, pk := range picks {
		code.Settings.Groups = append(code.Settings.Groups, pk.entry)
	}
	if text := strings.TrimSpace(c.PostForm("group_welcome")); text != "" {
		code.Settings.GroupWelcome = &livecode.GroupWelcome{Text: text}
	}
	if err == nil {
		_, err = s.d.LiveCodes.Create(c.Request.Context(), code)
	}
	if err != nil {
		status, msg := s.codeRefusal(c, err)
		s.renderGroupForm(c, status, msg, code)
		return
	}
	redirectPage(c, "/console/codes")
}
