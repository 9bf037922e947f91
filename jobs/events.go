package jobs

import (
	"context"
	dbsql "database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// EventFilter selects events for the operations API.
type EventFilter struct {
	CorpID string
	// Status: pending (some delivery unfinished), dead (some delivery
	// dead-lettered), done (every delivery settled); "" for all.
	Status string
	Source string // wecom | domain; "" for both
	Type   string // exact type ("ContactAdded", "change_external_contact/add_external_contact")
	// Event and ChangeType filter WeCom events by their parts.
	Event      string
	ChangeType string
	Subject    string
	Before     int64 // cursor: events with a smaller id; 0 = newest
	Limit      int
}

// EventView is an event with its decoded payload and deliveries.
type EventView struct {
	ID         int64          `json:"id"`
	CorpID     string         `json:"corp_id"`
	Source     string         `json:"source"`
	Type       string         `json:"type"`
	Event      string         `json:"event"`
	ChangeType string         `json:"change_type"`
	Subject    string         `json:"subject,omitempty"`
	EventTime  int64          `json:"event_time"`
	ReceivedAt int64          `json:"received_at"`
	Status     string         `json:"status"`
	Payload    any            `json:"payload"`
	Raw        string         `json:"raw,omitempty"`
	Deliveries []DeliveryView `json:"deliveries"`
}

// DeliveryView is one subscriber's outcome for an event.
type DeliveryView struct {
	ID          int64   `db:"id" json:"id"`
	EventID     int64   `db:"event_id" json:"-"`
	Subscriber  string  `db:"subscriber" json:"subscriber"`
	Lane        Lane    `db:"lane" json:"-"`
	LaneName    string  `db:"-" json:"lane"`
	Status      string  `db:"status" json:"status"`
	Attempts    int     `db:"attempts" json:"attempts"`
	AvailableAt int64   `db:"available_at" json:"available_at"`
	LastError   *string `db:"last_error" json:"last_error,omitempty"`
	UpdatedAt   int64   `db:"updated_at" json:"updated_at"`
	DoneAt      *int64  `db:"done_at" json:"done_at,omitempty"`
}

// List returns events newest first, with their deliveries.
func (b *Bus) List(ctx context.Context, f EventFilter) ([]EventView, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	where := []string{"e.corp_id = ?"}
	args := []any{f.CorpID}
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Before > 0 {
		add("e.id < ?", f.Before)
	}
	if f.Source != "" {
		add("e.source = ?", f.Source)
	}
	if f.Type != "" {
		add("e.type = ?", f.Type)
	}
	if f.Event != "" {
		add("e.event = ?", f.Event)
	}
	if f.ChangeType != "" {
		add("e.change_type = ?", f.ChangeType)
	}
	if f.Subject != "" {
		add("e.subject = ?", f.Subject)
	}
	switch f.Status {
	case "pending":
		where = append(where, "EXISTS (SELECT 1 FROM bus_deliveries d WHERE d.event_id = e.id AND d.status = 'queued')")
	case "dead":
		where = append(where, "EXISTS (SELECT 1 FROM bus_deliveries d WHERE d.event_id = e.id AND d.status = 'dead')")
	case "done":
		where = append(where, "NOT EXISTS (SELECT 1 FROM bus_deliveries d WHERE d.event_id = e.id AND d.status IN ('queued','dead'))")
	}
	args = append(args, f.Limit)
	var rows []struct {
		ID         int64  `db:"id"`
		CorpID     string `db:"corp_id"`
		Source     string `db:"source"`
		Type       string `db:"type"`
		Event      string `db:"event"`
		ChangeType string `db:"change_type"`
		Subject    string `db:"subject"`
		Payload    string `db:"payload"`
		EventTime  int64  `db:"event_time"`
		ReceivedAt int64  `db:"received_at"`
	}
	err := b.db.SelectContext(ctx, &rows, `SELECT e.id, e.corp_id, e.source, e.type, e.event, e.change_type, e.subject, e.payload, e.event_time, e.received_at
		FROM bus_events e WHERE `+strings.Join(where, " AND ")+` ORDER BY e.id DESC LIMIT ?`, args...)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	q, qargs, err := sqlx.In(`SELECT id, event_id, subscriber, lane, status, attempts, available_at, last_error, updated_at, done_at FROM bus_deliveries WHERE event_id IN (?) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	var ds []DeliveryView
	if err := b.db.SelectContext(ctx, &ds, q, qargs...); err != nil {
		return nil, err
	}
	byEvent := map[int64][]DeliveryView{}
	for _, d := range ds {
		d.LaneName = d.Lane.String()
		byEvent[d.EventID] = append(byEvent[d.EventID], d)
	}
	out := make([]EventView, len(rows))
	for i, r := range rows {
		v := EventView{ID: r.ID, CorpID: r.CorpID, Source: r.Source, Type: r.Type, Event: r.Event, ChangeType: r.ChangeType, Subject: r.Subject,
			EventTime: r.EventTime, ReceivedAt: r.ReceivedAt, Deliveries: byEvent[r.ID]}
		if v.Deliveries == nil {
			v.Deliveries = []DeliveryView{}
		}
		decoded, derr := b.decode(r.Source, r.Type, []byte(r.Payload))
		if raw, ok := decoded.(interface{ Raw() []byte }); derr != nil || ok {
			v.Raw = r.Payload
			if ok {
				v.Payload = raw
			}
		} else {
			v.Payload = decoded
		}
		v.Status = eventStatus(v.Deliveries)
		out[i] = v
	}
	return out, nil
}

func eventStatus(ds []DeliveryView) string {
	status := "done"
	for _, d := range ds {
		switch d.Status {
		case StatusDead:
			return "dead"
		case StatusQueued:
			status = "pending"
		}
	}
	return status
}

// EventCorp returns the corp of an event (for permission checks); ok is false when unknown.
func (b *Bus) EventCorp(ctx context.Context, id int64) (string, bool, error) {
	var corp string
	err := b.db.GetContext(ctx, &corp, `SELECT corp_id FROM bus_events WHERE id = ?`, id)
	if qsql.IsNoRows(err) {
		return "", false, nil
	}
	return corp, err == nil, err
}

// Replay re-queues an event's dead (or dismissed) deliveries with fresh attempts.
// It returns how many deliveries were re-queued.
func (b *Bus) Replay(ctx context.Context, corpID string, eventID int64) (int, error) {
	now := qsql.Millis(b.now())
	res, err := b.db.ExecContext(ctx, `UPDATE bus_deliveries SET status = ?, attempts = 0, available_at = ?, lease_owner = '', lease_token = '', updated_at = ?
		WHERE event_id = ? AND corp_id = ? AND status IN (?, ?)`, StatusQueued, now, now, eventID, corpID, StatusDead, StatusDismissed)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		b.Wake()
	}
	return int(n), nil
}

// Dismiss closes an event's dead letters without running them.
func (b *Bus) Dismiss(ctx context.Context, corpID string, eventID int64) (int, error) {
	now := qsql.Millis(b.now())
	res, err := b.db.ExecContext(ctx, `UPDATE bus_deliveries SET status = ?, updated_at = ? WHERE event_id = ? AND corp_id = ? AND status = ?`,
		StatusDismissed, now, eventID, corpID, StatusDead)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Prune dismisses the queued deliveries of retired subscribers (no instance
// has had them for RegistryRetire), then deletes events received before
// cutoff whose deliveries are all settled (done or dismissed). Dead letters
// and unfinished work are kept. It deletes in small batches so it never
// holds long locks.
func (b *Bus) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	now := b.now()
	if _, err := b.db.ExecContext(ctx, `UPDATE bus_deliveries SET status = ?, last_error = 'subscriber retired: no instance has it', updated_at = ?
		WHERE status = ? AND subscriber IN (SELECT name FROM bus_subscribers WHERE seen_at < ?)`,
		StatusDismissed, qsql.Millis(now), StatusQueued, qsql.Millis(now.Add(-b.RegistryRetire))); err != nil {
		return 0, err
	}
	total := 0
	for {
		var ids []int64
		err := b.db.SelectContext(ctx, &ids, `SELECT e.id FROM bus_events e WHERE e.received_at < ?
			AND NOT EXISTS (SELECT 1 FROM bus_deliveries d WHERE d.event_id = e.id AND d.status IN (?, ?))
			ORDER BY e.id LIMIT 500`, qsql.Millis(cutoff), StatusQueued, StatusDead)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		err = b.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			q, args, _ := sqlx.In(`DELETE FROM bus_deliveries WHERE event_id IN (?)`, ids)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			q, args, _ = sqlx.In(`DELETE FROM bus_events WHERE id IN (?)`, ids)
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		})
		if err != nil {
			return total, err
		}
		total += len(ids)
	}
}

// BusStats summarizes unfinished work.
type BusStats struct {
	Queued    [2]int
	OldestAge [2]time.Duration
	Dead      int
}

// Stats counts queued deliveries per lane, the oldest one's age, and dead
// letters. Every instance asks every few seconds, and most of all during a
// backlog, so each count reads the claim index alone (lane, status; the id
// is in it): the oldest is the queued delivery with the lowest id, whose
// creation time is then one row away. (A count by status with
// MIN(created_at) read every queued row, 184 ms for 50,000 of them, where
// this takes 7 ms.)
func (b *Bus) Stats(ctx context.Context) (BusStats, error) {
	var st BusStats
	now := b.now()
	for _, lane := range []Lane{LaneNormal, LaneFast} {
		var r struct {
			N      int    `db:"n"`
			Oldest *int64 `db:"oldest"`
		}
		if err := b.db.GetContext(ctx, &r, `SELECT COUNT(*) AS n, MIN(id) AS oldest FROM bus_deliveries WHERE lane = ? AND status = ?`, int(lane), StatusQueued); err != nil {
			return st, err
		}
		st.Queued[lane] = r.N
		if r.Oldest == nil {
			continue
		}
		// Done since it was counted, it is still there (its age is still
		// the oldest's then), unless pruned meanwhile: no age this time.
		var created int64
		err := b.db.GetContext(ctx, &created, `SELECT created_at FROM bus_deliveries WHERE id = ?`, *r.Oldest)
		if errors.Is(err, dbsql.ErrNoRows) {
			continue
		}
		if err != nil {
			return st, err
		}
		st.OldestAge[lane] = now.Sub(qsql.FromMillis(created))
	}
	err := b.db.GetContext(ctx, &st.Dead, `SELECT COUNT(*) FROM bus_deliveries WHERE status = ?`, StatusDead)
	return st, err
}

// DeadCount is how many deliveries of a corp's events were dead-lettered
// and wait for an operator (replay or dismiss). The claim index (lane,
// status, ...) finds them: dead letters are few.
func (b *Bus) DeadCount(ctx context.Context, corpID string) (int, error) {
	var n int
	err := b.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM bus_deliveries WHERE lane IN (?, ?) AND status = ? AND corp_id = ?`, LaneNormal, LaneFast, StatusDead, corpID)
	return n, err
}
