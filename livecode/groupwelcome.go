package livecode

import (
	"context"
	"fmt"
	"strings"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/wecom"
)

// A group code's welcome is a WeCom group welcome template (入群欢迎语素材).
// A corp may hold 100, so group codes with the same text share one, and a
// template is deleted only when no live group code uses it any more. WeCom
// creates it with notify on: each group owner is prompted in the WeCom app
// to apply it to their groups, which is how it reaches customers (a join
// way has no template field).

// codeTooManyGroupWelcomes is WeCom's answer once a corp has 100 group
// welcome templates.
const codeTooManyGroupWelcomes = 41055

// groupWelcomeErr turns WeCom's refusal of a new template into what the
// user can act on.
func groupWelcomeErr(err error) error {
	if wecom.IsCode(err, codeTooManyGroupWelcomes) {
		return apperr.Field("settings.group_welcome", "the corp has 100 group welcome templates, WeCom's limit: reuse the text of another group code, or remove the welcome of codes no longer used")
	}
	return fmt.Errorf("create group welcome template: %w", err)
}

// groupWelcomeTemplate returns the template for text: the one another live
// group code already uses for the same text, or a new one (isNew).
func (s *Service) groupWelcomeTemplate(ctx context.Context, c *Code, text string) (id string, isNew bool, err error) {
	others, err := s.store.groupWelcomes(ctx, c.CorpID, c.ID)
	if err != nil {
		return "", false, err
	}
	for tid, t := range others {
		if t == text {
			return tid, false, nil
		}
	}
	id, err = s.wc.AddGroupWelcomeTemplate(ctx, c.CorpID, text)
	if err != nil {
		return "", false, groupWelcomeErr(err)
	}
	return id, true, nil
}

// templateShared says whether another live group code uses the template.
func (s *Service) templateShared(ctx context.Context, c *Code, tid string) (bool, error) {
	others, err := s.store.groupWelcomes(ctx, c.CorpID, c.ID)
	if err != nil {
		return false, err
	}
	_, shared := others[tid]
	return shared, nil
}

// syncGroupWelcome brings an edited group code's template in line with its
// text (was: the text before the edit). A shared template is never edited
// or deleted for one code: the code moves to another template instead.
func (s *Service) syncGroupWelcome(ctx context.Context, was string, c *Code, created, obsolete *[]string) error {
	text, tid := c.Settings.GroupWelcome.text(), c.Settings.GroupWelcomeTemplate
	if text == was && (tid != "") == (text != "") {
		return nil
	}
	shared := false
	if tid != "" {
		var err error
		if shared, err = s.templateShared(ctx, c, tid); err != nil {
			return err
		}
	}
	switch {
	case text == "":
		if tid != "" && !shared {
			*obsolete = append(*obsolete, "gwt:"+tid)
		}
		c.Settings.GroupWelcomeTemplate = ""
		return nil
	case tid != "" && !shared:
		others, err := s.store.groupWelcomes(ctx, c.CorpID, c.ID)
		if err != nil {
			return err
		}
		for other, t := range others {
			if t == text { // another code has this text: share it, drop ours
				*obsolete = append(*obsolete, "gwt:"+tid)
				c.Settings.GroupWelcomeTemplate = other
				return nil
			}
		}
		if err := s.wc.EditGroupWelcomeTemplate(ctx, c.CorpID, tid, text); err != nil {
			return fmt.Errorf("edit group welcome template: %w", err)
		}
		return nil
	}
	id, isNew, err := s.groupWelcomeTemplate(ctx, c, text)
	if err != nil {
		return err
	}
	if isNew {
		*created = append(*created, "gwt:"+id)
	}
	c.Settings.GroupWelcomeTemplate = id
	return nil
}

// unsharedWays lists the WeCom objects an archived code may delete: its
// ways, and its welcome template unless another live code shares it.
func (s *Service) unsharedWays(ctx context.Context, c *Code) ([]string, error) {
	var out []string
	for _, w := range waysOf(c) {
		if tid, ok := strings.CutPrefix(w, "gwt:"); ok {
			shared, err := s.templateShared(ctx, c, tid)
			if err != nil {
				return nil, err
			}
			if shared {
				continue
			}
		}
		out = append(out, w)
	}
	return out, nil
}
