package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
)

// TeamsChanged is published in the transaction that changes which teams
// users are in or manage (a team made with its manager, a member added),
// so segments on the owner's teams re-evaluate those users' leads without
// reading auth's tables.
type TeamsChanged struct {
	CorpID  string  `json:"corp_id"`
	UserIDs []int64 `json:"user_ids"`
	At      int64   `json:"at"` // Unix ms
	Key     string  `json:"key"`
}

func (e TeamsChanged) EventType() string    { return "TeamsChanged" }
func (e TeamsChanged) EventSubject() string { return "teams" }
func (e TeamsChanged) EventKey() string     { return e.Key }
func (e TeamsChanged) EventTime() time.Time { return time.UnixMilli(e.At) }

// SetBus makes team changes published on b.
func (s *Service) SetBus(b *jobs.Bus) {
	jobs.RegisterEvent[TeamsChanged](b)
	s.bus = b
}

// teamsChanged publishes a change of users' teams in tx (nothing without a bus).
func (s *Service) teamsChanged(ctx context.Context, tx *qsql.Tx, corpID string, users ...int64) error {
	if s.bus == nil || len(users) == 0 {
		return nil
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return s.bus.Publish(ctx, tx, corpID, TeamsChanged{CorpID: corpID, UserIDs: users, At: qsql.Millis(s.now()), Key: hex.EncodeToString(b)})
}
