package leads

import (
	"context"
	"strings"

	"github.com/jmoiron/sqlx"
)

// searchLimit bounds a search's answer: it finds someone, it is not a list.
const searchLimit = 20

// Search finds the leads a viewer may see whose person has the identity
// in q (a mobile in any usual form, an email, a WeCom external userid or
// unionid) or whose name starts with q, newest first.
func (s *Service) Search(ctx context.Context, corp, q string, v Viewer) ([]Lead, error) {
	q = strings.TrimSpace(q)
	out := []Lead{}
	if q == "" {
		return out, nil
	}
	var people []int64
	var err error
	switch mobile, isMobile := NormalizeMobile(q); {
	case isMobile:
		err = s.db.SelectContext(ctx, &people, `SELECT person_id FROM person_identities WHERE corp_id = ? AND kind = ? AND value = ?`, corp, IdentityMobile, mobile)
	case strings.Contains(q, "@"):
		email, _ := NormalizeEmail(q)
		err = s.db.SelectContext(ctx, &people, `SELECT person_id FROM person_identities WHERE corp_id = ? AND kind = ? AND value = ?`, corp, IdentityEmail, email)
	default:
		// An id WeCom gave (external userid, unionid), or the start of a
		// name (in the name index's order: a common prefix reads no more
		// than it shows).
		err = s.db.SelectContext(ctx, &people, `SELECT person_id FROM person_identities WHERE corp_id = ? AND kind IN (?, ?) AND value = ?`,
			corp, IdentityWeCom, IdentityUnionID, q)
		if err == nil && len(people) == 0 {
			err = s.db.SelectContext(ctx, &people, `SELECT id FROM people WHERE corp_id = ? AND name LIKE ? ESCAPE '!' AND merged_into = 0 ORDER BY name LIMIT ?`,
				corp, likePrefix(q), searchLimit*5)
		}
	}
	if err != nil || len(people) == 0 {
		return out, err
	}
	query, args, err := sqlx.In(`SELECT id FROM leads WHERE corp_id = ? AND merged_into = 0 AND person_id IN (?) ORDER BY id DESC`, corp, people)
	if err != nil {
		return nil, err
	}
	var ids []int64
	if err := s.db.SelectContext(ctx, &ids, query, args...); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if len(out) == searchLimit {
			break
		}
		if ok, err := s.store.visible(ctx, s.db, corp, id, v); err != nil {
			return nil, err
		} else if !ok {
			continue // out of the viewer's sight
		}
		l, err := s.read(ctx, corp, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, nil
}

// likePrefix is a LIKE pattern (escape character !, which MySQL and SQLite
// read alike) for values starting with s, its own % and _ taken literally.
func likePrefix(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s) + "%"
}
