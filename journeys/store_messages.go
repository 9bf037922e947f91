package journeys

import (
	"context"

	qsql "github.com/qiflow/qiflow/sql"
)

// This file holds the statements of customer messages and their settings.

func readMessageSettings(ctx context.Context, db *qsql.DB, corp string) (MessageSettings, bool, error) {
	var m MessageSettings
	err := db.GetContext(ctx, &m, `SELECT cap_day, cap_week, quiet_start, quiet_end, opt_out_activity FROM journey_settings WHERE corp_id = ?`, corp)
	if qsql.IsNoRows(err) {
		return m, false, nil
	}
	return m, err == nil, err
}

func writeMessageSettings(ctx context.Context, db *qsql.DB, corp string, m MessageSettings, now int64) error {
	cols := []string{"corp_id", "cap_day", "cap_week", "quiet_start", "quiet_end", "opt_out_activity", "updated_at"}
	_, err := db.ExecContext(ctx, db.Upsert("journey_settings", cols, []string{"corp_id"}, cols[1:]),
		corp, m.CapDay, m.CapWeek, m.QuietStart, m.QuietEnd, m.OptOutActivity, now)
	return err
}

// messageRow is a journey_messages row.
type messageRow struct {
	Run      int64  `db:"run_id"`
	Step     int    `db:"step"`
	Corp     string `db:"corp_id"`
	Journey  int64  `db:"journey_id"`
	Lead     int64  `db:"lead_id"`
	Person   int64  `db:"person_id"`
	Sender   string `db:"sender"`
	External string `db:"external_userid"`
	MsgID    string `db:"msgid"`
	Status   string `db:"status"`
	At       int64  `db:"created_at"`
}

// messageExists is the status of a step's message ("" none).
func messageExists(ctx context.Context, db *qsql.DB, run int64, step int) (string, error) {
	var st []string
	err := db.SelectContext(ctx, &st, `SELECT status FROM journey_messages WHERE run_id = ? AND step = ?`, run, step)
	if err != nil || len(st) == 0 {
		return "", err
	}
	return st[0], nil
}

// messagesSince are the times of a lead's messages since (oldest first)
// that count against the caps: all but those WeCom could not deliver.
func messagesSince(ctx context.Context, db *qsql.DB, corp string, lead, since int64) ([]int64, error) {
	var out []int64
	err := db.SelectContext(ctx, &out, `SELECT created_at FROM journey_messages WHERE corp_id = ? AND lead_id = ? AND created_at > ?
		AND status NOT IN (?, ?, ?) ORDER BY created_at`, corp, lead, since, MsgUnreachable, MsgNotFriend, MsgLimit)
	return out, err
}

// insertMessage writes a step's row before WeCom is called; false when the
// step has one already.
func insertMessage(ctx context.Context, db *qsql.DB, m messageRow) (bool, error) {
	cols := []string{"run_id", "step", "corp_id", "journey_id", "lead_id", "person_id", "sender", "external_userid", "msgid", "status", "created_at", "updated_at"}
	res, err := db.ExecContext(ctx, db.InsertIgnoreRows("journey_messages", cols, []string{"run_id", "step"}, 1),
		m.Run, m.Step, m.Corp, m.Journey, m.Lead, m.Person, m.Sender, m.External, "", m.Status, m.At, m.At)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func deleteMessage(ctx context.Context, db *qsql.DB, run int64, step int) error {
	_, err := db.ExecContext(ctx, `DELETE FROM journey_messages WHERE run_id = ? AND step = ? AND status = ?`, run, step, MsgSending)
	return err
}

func setMessage(ctx context.Context, db *qsql.DB, run int64, step int, msgID, status string, now int64) error {
	_, err := db.ExecContext(ctx, `UPDATE journey_messages SET msgid = ?, status = ?, updated_at = ? WHERE run_id = ? AND step = ?`,
		msgID, status, now, run, step)
	return err
}

// queuedMessages are the messages waiting for their staff member since.
func queuedMessages(ctx context.Context, db *qsql.DB, since int64) ([]messageRow, error) {
	var out []messageRow
	err := db.SelectContext(ctx, &out, `SELECT run_id, step, corp_id, journey_id, lead_id, person_id, sender, external_userid, msgid, status, created_at
		FROM journey_messages WHERE status = ? AND created_at > ? ORDER BY created_at LIMIT 5000`, MsgQueued, since)
	return out, err
}

// settleMessage records a queued message's outcome (once: a second poller
// finds it settled).
func settleMessage(ctx context.Context, db *qsql.DB, run int64, step int, status string, now int64) error {
	_, err := db.ExecContext(ctx, `UPDATE journey_messages SET status = ?, updated_at = ? WHERE run_id = ? AND step = ? AND status = ?`,
		status, now, run, step, MsgQueued)
	return err
}

// MessageView is a message a journey queued, for the API.
type MessageView struct {
	Run     int64  `db:"run_id" json:"run_id"`
	Step    int    `db:"step" json:"step"`
	Lead    int64  `db:"lead_id" json:"lead_id"`
	Sender  string `db:"sender" json:"sender"`
	MsgID   string `db:"msgid" json:"msgid,omitempty"`
	Status  string `db:"status" json:"status"`
	At      int64  `db:"created_at" json:"created_at"`
	Updated int64  `db:"updated_at" json:"updated_at"`
}

func journeyMessages(ctx context.Context, db *qsql.DB, journey int64, limit int) ([]MessageView, error) {
	out := []MessageView{}
	err := db.SelectContext(ctx, &out, `SELECT run_id, step, lead_id, sender, msgid, status, created_at, updated_at FROM journey_messages
		WHERE journey_id = ? ORDER BY created_at DESC LIMIT ?`, journey, limit)
	return out, err
}
