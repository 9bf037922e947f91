package jobs

import (
	"context"
	"strings"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// EventFilter selects inbox events for the operations API.
type EventFilter struct {
	CorpID string
	// Status: pending (some delivery unfinished), dead (some delivery
	// dead-lettered), done (every delivery settled); "" for all.
	Status string
	// Event and ChangeType filter by type ("change_external_contact", "add_external_contact").
	Event      string
	ChangeType string
	Before     int64 // cursor: events with a smaller id; 0 = newest
	Limit      int
}

// EventView is an inbox event with its decoded payload and deliveries.
type EventView struct {
	ID         int64          `json:"id"`
	CorpID     string         `json:"corp_id"`
	Event      string         `json:"event"`
	ChangeType string         `json:"change_type"`
	EventTime  int64          `json:"event_time"`
	ReceivedAt int64          `json:"received_at"`
	Status     string         `json:"status"`
	Payload    wecom.Event    `json:"payload"`
	RawXML     string         `json:"raw_xml,omitempty"`
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
func (in *Inbox) List(ctx context.Context, f EventFilter) ([]EventView, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	where := []string{"e.corp_id = ?"}
	args := []any{f.CorpID}
	if f.Before > 0 {
		where = append(where, "e.id < ?")
		args = append(args, f.Before)
	}
	if f.Event != "" {
		where = append(where, "e.event = ?")
		args = append(args, f.Event)
	}
	if f.ChangeType != "" {
		where = append(where, "e.change_type = ?")
		args = append(args, f.ChangeType)
	}
	switch f.Status {
	case "pending":
		where = append(where, "EXISTS (SELECT 1 FROM inbox_deliveries d WHERE d.event_id = e.id AND d.status = 'queued')")
	case "dead":
		where = append(where, "EXISTS (SELECT 1 FROM inbox_deliveries d WHERE d.event_id = e.id AND d.status = 'dead')")
	case "done":
		where = append(where, "NOT EXISTS (SELECT 1 FROM inbox_deliveries d WHERE d.event_id = e.id AND d.status IN ('queued','dead'))")
	}
	args = append(args, f.Limit)
	var rows []struct {
		ID         int64  `db:"id"`
		CorpID     string `db:"corp_id"`
		Event      string `db:"event"`
		ChangeType string `db:"change_type"`
		Payload    string `db:"payload"`
		EventTime  int64  `db:"event_time"`
		ReceivedAt int64  `db:"received_at"`
	}
	err := in.db.SelectContext(ctx, &rows, `SELECT e.id, e.corp_id, e.event, e.change_type, e.payload, e.event_time, e.received_at FROM inbox_events e WHERE `+
		strings.Join(where, " AND ")+` ORDER BY e.id DESC LIMIT ?`, args...)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	q, qargs, err := sqlx.In(`SELECT id, event_id, subscriber, lane, status, attempts, available_at, last_error, updated_at, done_at FROM inbox_deliveries WHERE event_id IN (?) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	var ds []DeliveryView
	if err := in.db.SelectContext(ctx, &ds, q, qargs...); err != nil {
		return nil, err
	}
	byEvent := map[int64][]DeliveryView{}
	for _, d := range ds {
		d.LaneName = d.Lane.String()
		byEvent[d.EventID] = append(byEvent[d.EventID], d)
	}
	out := make([]EventView, len(rows))
	for i, r := range rows {
		v := EventView{ID: r.ID, CorpID: r.CorpID, Event: r.Event, ChangeType: r.ChangeType, EventTime: r.EventTime, ReceivedAt: r.ReceivedAt,
			Deliveries: byEvent[r.ID]}
		if v.Deliveries == nil {
			v.Deliveries = []DeliveryView{}
		}
		ev, perr := wecom.ParseEvent([]byte(r.Payload))
		if raw, ok := ev.(*wecom.RawEvent); ok || perr != nil {
			v.RawXML = r.Payload
			if ok {
				v.Payload = raw
			}
		} else {
			v.Payload = ev
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
func (in *Inbox) EventCorp(ctx context.Context, id int64) (string, bool, error) {
	var corp string
	err := in.db.GetContext(ctx, &corp, `SELECT corp_id FROM inbox_events WHERE id = ?`, id)
	if qsql.IsNoRows(err) {
		return "", false, nil
	}
	return corp, err == nil, err
}
