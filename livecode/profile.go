package livecode

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/qiflow/qiflow/wecom"
)

var tagsSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "qiflow_livecode_tags_skipped_total",
	Help: "Tags a code would mark that no longer exist in WeCom, skipped per add.",
}, []string{"corp"})

// codeUnknownTag is WeCom's answer to mark_tag with a tag id it does not know.
const codeUnknownTag = 40068

// ApplyProfile marks the code's tags on a new contact and sets the remark
// and description from the code's templates. A tag deleted in WeCom is
// skipped and reported (log, metric), never fatal: the rest still apply.
// Tags are set, not toggled, and the remark is overwritten with the same
// text, so a retried delivery changes nothing more.
func (s *Service) ApplyProfile(ctx context.Context, corp string, ev *wecom.ExternalContactEvent) error {
	c, err := s.store.get(ctx, corp, ParseState(ev.State))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(c.Settings.Tags) > 0 {
		if err := s.markTags(ctx, c, ev); err != nil {
			return err
		}
	}
	if c.Settings.RemarkTemplate == "" && c.Settings.DescriptionTemplate == "" {
		s.refreshMirror(ctx, corp, ev.ExternalUserID, len(c.Settings.Tags) > 0)
		return nil
	}
	vars, err := s.templateVars(ctx, corp, c, ev)
	if err != nil {
		return err
	}
	r := wecom.Remark{UserID: ev.UserID, ExternalUserID: ev.ExternalUserID}
	if c.Settings.RemarkTemplate != "" {
		v := truncate(Render(c.Settings.RemarkTemplate, vars), 20)
		r.Remark = &v
	}
	if c.Settings.DescriptionTemplate != "" {
		v := truncate(Render(c.Settings.DescriptionTemplate, vars), 150)
		r.Description = &v
	}
	if err := s.wc.RemarkExternalContact(ctx, corp, r); err != nil && !gone(err) {
		return fmt.Errorf("set remark: %w", err)
	}
	s.refreshMirror(ctx, corp, ev.ExternalUserID, true)
	return nil
}

// refreshMirror re-reads a contact Qiflow just changed in WeCom into the
// directory mirror, so the API shows its tags and remark now, not after the
// next full sync. Best effort: the next sync repairs a miss.
func (s *Service) refreshMirror(ctx context.Context, corp, externalUserID string, changed bool) {
	if !changed {
		return
	}
	if err := s.dir.RefreshContact(ctx, corp, externalUserID); err != nil {
		s.log.Warn("mirror not refreshed after setting tags or remark", "corp", corp, "external_userid", externalUserID, "err", err)
	}
}

// markTags marks the code's tags that still exist. When WeCom refuses a tag
// the mirror still lists (deleted since the last sync), the mirror is
// refreshed and the mark tried once more without it.
func (s *Service) markTags(ctx context.Context, c *Code, ev *wecom.ExternalContactEvent) error {
	for attempt := 0; ; attempt++ {
		missing, err := s.dir.MissingTags(ctx, c.CorpID, c.Settings.Tags)
		if err != nil {
			return err
		}
		var tags []string
		for _, t := range c.Settings.Tags {
			if !slices.Contains(missing, t) {
				tags = append(tags, t)
			}
		}
		if len(missing) > 0 {
			tagsSkipped.WithLabelValues(c.CorpID).Add(float64(len(missing)))
			s.log.Warn("a live code's tags no longer exist in WeCom; skipped (edit the code)", "corp", c.CorpID, "code", c.ID, "tags", missing)
		}
		if len(tags) == 0 {
			return nil
		}
		err = s.wc.MarkTag(ctx, c.CorpID, ev.UserID, ev.ExternalUserID, tags, nil)
		switch {
		case err == nil || gone(err):
			return nil
		case wecom.IsCode(err, codeUnknownTag) && attempt == 0:
			if err := s.dir.SyncTags(ctx, c.CorpID); err != nil {
				return fmt.Errorf("refresh tags after %w", err)
			}
		default:
			return fmt.Errorf("mark tags: %w", err)
		}
	}
}

// gone reports WeCom errors meaning the relation no longer exists: nothing to retry.
func gone(err error) bool { return wecom.IsCode(err, wecom.CodeInvalidExternalID, 84061) }
