package leads

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	qsql "github.com/qiflow/qiflow/sql"
)

// Notices: what the lead pool tells staff (a handoff to accept, an answer
// to a handoff, SLA reminders) is written as a notice in the transaction of
// what it announces, so nothing is told that did not happen and nothing
// that happened goes untold. SendNotices (a cron every minute, once across
// instances, and after each change that writes one) claims the due notices
// with a token, folds each person's into one WeCom app message (WeCom drops
// more than 30 a minute to one person, so many notices at once become a
// digest) and marks them sent. A send that fails is retried after the
// claim expires, at most noticeAttempts times.

// Notifier sends a WeCom app message to a staff member.
type Notifier interface {
	SendAppMessage(ctx context.Context, corpID, userID, text string) error
}

// StaffOf names the WeCom staff member a Qiflow user is ("" when none).
type StaffOf func(ctx context.Context, corpID string, userID int64) (string, error)

// SetNotifier gives the service what sends notices.
func (s *Service) SetNotifier(n Notifier, staff StaffOf) { s.notifier, s.staffOf = n, staff }

const (
	noticeBatch    = 500
	noticeLease    = 2 * time.Minute
	noticeAttempts = 5
	// maxAppText is WeCom's limit on a text message (longer ones are cut).
	maxAppText = 2048
)

// notice is a notice to write.
type notice struct {
	Corp string
	User int64
	Text string
}

// SendNotices sends the due notices; it returns how many messages it sent.
func (s *Service) SendNotices(ctx context.Context) (int, error) {
	if s.notifier == nil {
		return 0, nil
	}
	now := qsql.Millis(s.now())
	token := newBatchToken()
	claimed, err := s.store.claimNotices(ctx, token, now, now+noticeLease.Milliseconds(), noticeBatch)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	type who struct {
		corp string
		user int64
	}
	var order []who
	byWho := map[who][]noticeRow{}
	for _, n := range claimed {
		k := who{n.Corp, n.User}
		if byWho[k] == nil {
			order = append(order, k)
		}
		byWho[k] = append(byWho[k], n)
	}
	sent := 0
	for _, k := range order {
		ns := byWho[k]
		ids := make([]int64, len(ns))
		for i, n := range ns {
			ids[i] = n.ID
		}
		staff, err := s.staffOf(ctx, k.corp, k.user)
		if err == nil && staff == "" {
			// Nobody to tell in WeCom: recorded, never retried.
			err = s.store.settleNotices(ctx, token, ids, now, "the user is not linked to a WeCom staff member", true)
			if err != nil {
				return sent, err
			}
			continue
		}
		if err == nil {
			err = s.notifier.SendAppMessage(ctx, k.corp, staff, digest(ns))
		}
		if err != nil {
			s.log.Warn("lead notices not sent; retried later", "corp", k.corp, "user", k.user, "notices", len(ns), "err", err)
			if err := s.store.settleNotices(ctx, token, ids, now, truncate(err.Error(), 255), false); err != nil {
				return sent, err
			}
			continue
		}
		sent++
		if err := s.store.settleNotices(ctx, token, ids, now, "", true); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// digest is the message for one person's due notices: the notice itself,
// or a numbered list cut to WeCom's length with how many more there are.
func digest(ns []noticeRow) string {
	if len(ns) == 1 {
		return cutBytes(ns[0].Text, maxAppText)
	}
	head := fmt.Sprintf("你有 %d 条新通知 / %d new notices:", len(ns), len(ns))
	var b strings.Builder
	b.WriteString(head)
	for i, n := range ns {
		line := fmt.Sprintf("\n%d. %s", i+1, n.Text)
		more := fmt.Sprintf("\n…还有 %d 条 / %d more", len(ns)-i, len(ns)-i)
		if b.Len()+len(line)+len(more) > maxAppText {
			b.WriteString(more)
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

// cutBytes cuts s to at most n bytes on a character boundary.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
