package jobs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	qsql "github.com/qiflow/qiflow/sql"
)

// newToken is a lease token: unique per claim, so a settle from an earlier
// claim of the same row (even by the same instance) matches nothing.
func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// claimable selects due deliveries of the lane for the named subscribers that
// are the oldest unfinished of their subscriber and subject, and whose
// subject no live claim holds. It is a plain read: nothing is written when
// nothing is due.
const claimableSQL = `SELECT d.id FROM bus_deliveries d
	WHERE d.lane = ? AND d.status = 'queued' AND d.available_at <= ? AND d.subscriber IN (?)
	AND (d.subject = '' OR (
		NOT EXISTS (SELECT 1 FROM bus_deliveries p%s
			WHERE p.corp_id = d.corp_id AND p.subscriber = d.subscriber AND p.subject = d.subject AND p.status = 'queued'
			AND (p.occurred_at < d.occurred_at OR (p.occurred_at = d.occurred_at AND p.event_id < d.event_id)))
		AND NOT EXISTS (SELECT 1 FROM bus_subject_locks l
			WHERE l.corp_id = d.corp_id AND l.subscriber = d.subscriber AND l.subject = d.subject AND l.expires_at > ? AND l.delivery_id <> d.id)))
	ORDER BY d.available_at, d.id LIMIT ?`

// Claim leases up to n due deliveries of a lane, for this instance's
// subscribers only, to owner for lease. Three steps, each correct on any
// engine: read candidates; one conditional UPDATE that re-checks status and
// due time and stamps a fresh token (two claimers racing for a row: the
// second matches nothing); read back what carries the token. Deliveries
// with a subject then take its lock row; one that loses it is put back.
func (b *Bus) Claim(ctx context.Context, lane Lane, owner string, n int, lease time.Duration) ([]Delivery, error) {
	names := b.localNames(lane)
	if len(names) == 0 || n < 1 {
		return nil, nil
	}
	now := b.now()
	nowMs := qsql.Millis(now)
	// The older-delivery check must walk bus_deliveries_order (subject and
	// time): through the status index it scans every queued delivery of the
	// subscriber, per candidate, and a backlog makes claiming quadratic.
	// Candidates beyond n let racing instances pick different rows (below);
	// a bounded surplus keeps big batch claims from reading thrice their size.
	q, args, err := sqlx.In(fmt.Sprintf(claimableSQL, b.db.ForceIndex("bus_deliveries_order")), int(lane), nowMs, names, nowMs, n+min(2*n, 128))
	if err != nil {
		return nil, err
	}
	var cands []int64
	if err := b.db.SelectContext(ctx, &cands, q, args...); err != nil || len(cands) == 0 {
		return nil, err
	}
	// Other instances read the same oldest rows: each tries a random part of
	// them, so racing claimers mostly win different rows.
	if len(cands) > n {
		mrand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		cands = cands[:n]
	}
	token := newToken()
	q, args, err = sqlx.In(`UPDATE bus_deliveries SET lease_owner = ?, lease_token = ?, available_at = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (?) AND status = 'queued' AND available_at <= ?`, owner, token, qsql.Millis(now.Add(lease)), nowMs, cands, nowMs)
	if err != nil {
		return nil, err
	}
	// The claim and its subject locks are one transaction: one commit (an
	// fsync on MySQL) per claim, and a failure leaves nothing half-claimed.
	var out []Delivery
	err = b.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		won, err := b.readClaimed(ctx, tx, cands, token, lane)
		if err != nil || len(won) == 0 {
			return err
		}
		out, err = b.lockSubjects(ctx, tx, won, token, now.Add(lease))
		return err
	})
	return out, err
}

// readClaimed reads back the deliveries that carry token, with their events.
func (b *Bus) readClaimed(ctx context.Context, tx *qsql.Tx, ids []int64, token string, lane Lane) ([]Delivery, error) {
	q, args, err := sqlx.In(`SELECT d.id, d.event_id, d.corp_id, d.subscriber, d.subject, d.attempts, e.source, e.type, e.payload, e.event_time, e.received_at
		FROM bus_deliveries d JOIN bus_events e ON e.id = d.event_id WHERE d.id IN (?) AND d.lease_token = ?`, ids, token)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID         int64  `db:"id"`
		EventID    int64  `db:"event_id"`
		CorpID     string `db:"corp_id"`
		Subscriber string `db:"subscriber"`
		Subject    string `db:"subject"`
		Attempts   int    `db:"attempts"`
		Source     string `db:"source"`
		Type       string `db:"type"`
		Payload    string `db:"payload"`
		EventTime  int64  `db:"event_time"`
		ReceivedAt int64  `db:"received_at"`
	}
	if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		out[i] = Delivery{ID: r.ID, EventID: r.EventID, CorpID: r.CorpID, Subscriber: r.Subscriber, Source: r.Source, Type: r.Type,
			Subject: r.Subject, Attempt: r.Attempts, OccurredAt: qsql.FromMillis(r.EventTime), ReceivedAt: qsql.FromMillis(r.ReceivedAt),
			token: token, lane: lane, payload: r.Payload}
	}
	return out, nil
}

// lockSubjects takes each subject-bearing delivery's lock row (free, or held
// by a lease that has expired) and puts back the deliveries whose subject is
// held by another live claim: they run when it finishes.
func (b *Bus) lockSubjects(ctx context.Context, tx *qsql.Tx, ds []Delivery, token string, until time.Time) ([]Delivery, error) {
	var locking []Delivery
	for _, d := range ds {
		if d.Subject != "" {
			locking = append(locking, d)
		}
	}
	if len(locking) == 0 {
		return ds, nil
	}
	sortBySubject(locking)
	now := qsql.Millis(b.now())
	args := make([]any, 0, 6*len(locking))
	for _, d := range locking {
		args = append(args, d.CorpID, d.Subscriber, d.Subject, d.ID, token, qsql.Millis(until))
	}
	// A subject's lock row is taken over only once it has expired.
	q, repeats := b.db.UpsertRowsIfExpired("bus_subject_locks", []string{"corp_id", "subscriber", "subject", "delivery_id", "token", "expires_at"},
		[]string{"corp_id", "subscriber", "subject"}, []string{"delivery_id", "token", "expires_at"}, len(locking), "expires_at")
	for i := 0; i < repeats; i++ {
		args = append(args, now)
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return nil, fmt.Errorf("subject locks: %w", err)
	}
	// Read back by key (the table has no other index: see releaseSubjects).
	keys := make([][]any, len(locking))
	for i, d := range locking {
		keys[i] = []any{d.CorpID, d.Subscriber, d.Subject}
	}
	cond, kargs := b.db.KeysIn([]string{"corp_id", "subscriber", "subject"}, keys)
	var held []struct {
		Delivery int64  `db:"delivery_id"`
		Token    string `db:"token"`
	}
	if err := tx.SelectContext(ctx, &held, `SELECT delivery_id, token FROM bus_subject_locks WHERE `+cond, kargs...); err != nil {
		return nil, err
	}
	have := make(map[int64]bool, len(held))
	for _, h := range held {
		have[h.Delivery] = h.Token == token
	}
	out := ds[:0:0]
	var lost []Delivery
	for _, d := range ds {
		if d.Subject == "" || have[d.ID] {
			out = append(out, d)
		} else {
			lost = append(lost, d)
		}
	}
	if len(lost) > 0 {
		if err := b.release(ctx, tx, lost, token); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// release puts claimed deliveries back as they were: due now, the attempt not counted.
func (b *Bus) release(ctx context.Context, ex sqlx.ExecerContext, ds []Delivery, token string) error {
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	now := qsql.Millis(b.now())
	q, args, _ := sqlx.In(`UPDATE bus_deliveries SET lease_owner = '', lease_token = '', available_at = ?, attempts = attempts - 1, updated_at = ?
		WHERE id IN (?) AND lease_token = ? AND status = 'queued'`, now, now, ids, token)
	_, err := ex.ExecContext(ctx, q, args...)
	return err
}

// complete marks deliveries done and frees their subjects, in one
// transaction. Only rows still carrying the claim's token change: a delivery
// whose lease lapsed and was claimed again is left to its new holder.
func (b *Bus) complete(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	byToken := map[string][]int64{}
	var order []string
	for _, d := range ds {
		if _, ok := byToken[d.token]; !ok {
			order = append(order, d.token)
		}
		byToken[d.token] = append(byToken[d.token], d.ID)
	}
	now := qsql.Millis(b.now())
	return b.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		for _, token := range order {
			ids := byToken[token]
			q, args, err := sqlx.In(`UPDATE bus_deliveries SET status = ?, lease_owner = '', lease_token = '', done_at = ?, updated_at = ?, last_error = NULL
				WHERE id IN (?) AND lease_token = ? AND status = ?`, StatusDone, now, now, ids, token, StatusQueued)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return b.releaseSubjects(ctx, tx, ds)
	})
}

// releaseSubjects deletes the subject locks the deliveries hold (still
// under their claim's token), each by its primary key and in key order: a
// delete by token or delivery id would scan and lock rows other claims are
// taking (InnoDB locks what it scans), and deadlock with them. The table has
// no index but its key (migration 00031), so the optimizer cannot choose
// another way in.
func (b *Bus) releaseSubjects(ctx context.Context, tx *qsql.Tx, ds []Delivery) error {
	var held []Delivery
	for _, d := range ds {
		if d.Subject != "" {
			held = append(held, d)
		}
	}
	if len(held) == 0 {
		return nil
	}
	sortBySubject(held)
	keys := make([][]any, len(held))
	for i, d := range held {
		keys[i] = []any{d.CorpID, d.Subscriber, d.Subject, d.token, d.ID}
	}
	cond, args := b.db.KeysIn([]string{"corp_id", "subscriber", "subject", "token", "delivery_id"}, keys)
	_, err := tx.ExecContext(ctx, "DELETE FROM bus_subject_locks WHERE "+cond, args...)
	return err
}

// sortBySubject orders deliveries by their subject lock's key, the order
// every writer of bus_subject_locks takes rows in.
func sortBySubject(ds []Delivery) {
	slices.SortFunc(ds, func(x, y Delivery) int {
		return cmp.Or(cmp.Compare(x.CorpID, y.CorpID), cmp.Compare(x.Subscriber, y.Subscriber), cmp.Compare(x.Subject, y.Subject))
	})
}

// fail records a failed attempt: retried after backoff (its subject stays
// blocked behind it, so order holds), or dead-lettered after the last attempt
// or on a permanent error (later events of its subject go ahead).
func (b *Bus) fail(ctx context.Context, d Delivery, cause error, maxAttempts int, backoff time.Duration) (dead bool, err error) {
	now := b.now()
	msg := cause.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	var pe permanentError
	dead = d.Attempt >= maxAttempts || errors.As(cause, &pe)
	status, next := StatusQueued, now.Add(backoff)
	if dead {
		status, next = StatusDead, now
	}
	err = b.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bus_deliveries SET status = ?, available_at = ?, lease_owner = '', lease_token = '', last_error = ?, updated_at = ?
			WHERE id = ? AND lease_token = ? AND status = ?`,
			status, qsql.Millis(next), msg, qsql.Millis(now), d.ID, d.token, StatusQueued); err != nil {
			return err
		}
		return b.releaseSubjects(ctx, tx, []Delivery{d})
	})
	return dead, err
}
