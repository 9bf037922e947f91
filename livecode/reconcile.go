package livecode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/qiflow/qiflow/configs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
)

// A code's WeCom side (its contact way's staff, its link, its join way's
// groups, its ways' skip-verify) is brought in line with what the code says
// by a reconcile. Reconciles are level-triggered and scheduled in the
// database:
//   - an input change (an edit, a counted add, a group filling) makes the
//     code due now (reconcile_at, reconcile_seq);
//   - otherwise it is due at its next clock edge (a schedule slot, midnight
//     for caps, a validity bound) or its drift check, whichever is first;
//   - each instance runs a reconciler that claims due codes with a
//     conditional update and a lease: one code is never reconciled twice at
//     once, and a trigger that arrives during a run makes it due again.
// A reconcile compares with what Qiflow last set and calls WeCom only for a
// difference; once an hour (DriftEvery) it reads WeCom back instead, to catch
// changes made in WeCom's console.

// ErrBusy means another instance is reconciling the code right now; it will
// run again there, so the change is not lost.
var ErrBusy = errors.New("code is being reconciled elsewhere")

// reconcileLease bounds one reconcile; a claim older than this is taken over.
const reconcileLease = 2 * time.Minute

// reconcileRetry is how soon a failed reconcile is tried again.
const reconcileRetry = time.Minute

type reconciler struct {
	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// reconcileClaim is a won claim on a code's reconcile.
type reconcileClaim struct {
	Token       string `db:"reconcile_token"`
	Seq         int64  `db:"reconcile_seq"`
	DriftAt     int64  `db:"drift_at"`
	SkipApplied string `db:"skip_applied"`
}

// Start runs this instance's reconciler and statistics folder until Stop.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.reconciler.cancel = cancel
	s.reconciler.wg.Add(2)
	go s.reconcileLoop(ctx)
	go s.foldLoop(ctx)
}

// statsFoldEvery is how often pending counter changes are folded.
const statsFoldEvery = time.Second

// foldLoop folds pending counter changes into the statistics every second
// (every instance does; see foldStats for why that is safe).
func (s *Service) foldLoop(ctx context.Context) {
	defer s.reconciler.wg.Done()
	t := time.NewTicker(statsFoldEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.FoldStats(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("folding statistics failed; will retry", "err", err)
		}
	}
}

// FoldStats folds every pending counter change into the statistics, a
// few thousand per transaction, and returns how many it folded.
func (s *Service) FoldStats(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.store.foldStats(ctx, 500)
		total += n
		if err != nil || n < 500 {
			return total, err
		}
	}
}

// Stop stops the reconciler and waits for running reconciles.
func (s *Service) Stop() {
	if s.reconciler.cancel != nil {
		s.reconciler.cancel()
		s.reconciler.wg.Wait()
	}
}

func (s *Service) wakeReconciler() {
	select {
	case s.reconciler.wake <- struct{}{}:
	default:
	}
}

func (s *Service) reconcileLoop(ctx context.Context) {
	defer s.reconciler.wg.Done()
	t := time.NewTicker(s.ReconcilePoll)
	defer t.Stop()
	for {
		if err := s.reconcileDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reconciler pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.reconciler.wake:
		}
	}
}

// reconcileDue runs the codes that are due, a few at a time.
func (s *Service) reconcileDue(ctx context.Context) error {
	due, err := s.store.dueReconciles(ctx, qsql.Millis(s.now()), 64)
	if err != nil || len(due) == 0 {
		return err
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, ref := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.reconcileClaimed(ctx, ref.CorpID, ref.ID); err != nil && !errors.Is(err, ErrBusy) {
				s.log.Warn("reconcile failed; will retry", "corp", ref.CorpID, "code", ref.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// trigger makes a code due now: something it depends on changed.
func (s *Service) trigger(ctx context.Context, corp string, id int64) error {
	if err := s.store.triggerReconcile(ctx, s.db, corp, []int64{id}, qsql.Millis(s.now())); err != nil {
		return err
	}
	s.wakeReconciler()
	return nil
}

// Reconcile brings one code's WeCom side in line now and returns once a
// reconcile that started after the call has finished: this one, or, when
// another instance holds the code, the run it makes again because of this
// call (the trigger bumped the code's sequence).
func (s *Service) Reconcile(ctx context.Context, corp string, id int64) error {
	if err := s.store.triggerReconcile(ctx, s.db, corp, []int64{id}, qsql.Millis(s.now())); err != nil {
		return err
	}
	wait := time.NewTicker(25 * time.Millisecond)
	defer wait.Stop()
	for {
		err := s.reconcileClaimed(ctx, corp, id)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		// Not claimable: leased elsewhere, or no longer due because a run
		// that saw this trigger has finished.
		leased, due, err := s.store.reconcileState(ctx, id, qsql.Millis(s.now()))
		if err != nil {
			return err
		}
		if !leased && !due {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait.C:
		}
	}
}

// ReconcileAll hands over the customers of staff who left, checks the
// outcome of hand-overs under way, and reconciles
// every code now (operators and tests; the reconciler does it as needed).
func (s *Service) ReconcileAll(ctx context.Context) error {
	var errs []error
	if err := s.HandleLeavers(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.CheckHandovers(ctx); err != nil {
		errs = append(errs, err)
	}
	codes, err := s.store.reconcilable(ctx)
	if err != nil {
		return err
	}
	for _, c := range codes {
		if err := s.Reconcile(ctx, c.CorpID, c.ID); err != nil && !errors.Is(err, ErrBusy) {
			errs = append(errs, fmt.Errorf("code %d: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// reconcileClaimed claims a due code, reconciles it and schedules the next run.
func (s *Service) reconcileClaimed(ctx context.Context, corp string, id int64) error {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	now := s.now()
	cl, ok, err := s.store.claimReconcile(ctx, id, token, qsql.Millis(now), qsql.Millis(now.Add(reconcileLease)))
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	rctx, cancel := context.WithTimeout(ctx, reconcileLease*8/10)
	defer cancel()
	c, err := s.store.get(rctx, corp, id)
	if err != nil {
		s.finishReconcile(ctx, id, cl, nil, err)
		return err
	}
	next, err := s.reconcile(rctx, c, &cl)
	s.finishReconcile(ctx, id, cl, next, err)
	return err
}

// finishReconcile records when the code is next due: at once if a trigger
// arrived during the run, soon if it failed, else next.
func (s *Service) finishReconcile(ctx context.Context, id int64, cl reconcileClaim, next *time.Time, runErr error) {
	now := s.now()
	var at *int64
	if runErr != nil {
		ms := qsql.Millis(now.Add(reconcileRetry))
		at = &ms
	} else if next != nil {
		ms := qsql.Millis(*next)
		at = &ms
	}
	if err := s.store.finishReconcile(context.WithoutCancel(ctx), id, cl, at, qsql.Millis(now)); err != nil {
		s.log.Error("recording a reconcile failed; its lease will lapse and it will run again", "code", id, "err", err)
	}
}

// reconcile does one code's work and returns when it is next due (nil: never).
func (s *Service) reconcile(ctx context.Context, c *Code, cl *reconcileClaim) (*time.Time, error) {
	now := s.now()
	if c.Status == StatusArchived {
		return nil, s.removeWays(ctx, c)
	}
	drift := qsql.Millis(now) >= cl.DriftAt
	var err error
	switch c.Mode {
	case ModeWeComQR:
		err = s.reconcileStaffWay(ctx, c, cl, drift, s.contactWay(c))
	case ModeLink:
		err = s.reconcileStaffWay(ctx, c, cl, drift, s.acquisitionLink(c))
	case ModeRotating:
		err = s.reconcileRotatingSkip(ctx, c, cl)
	case ModeJoinWay:
		s.remindManual(ctx, c)
		if err = s.store.indexGroups(ctx, c); err == nil && c.ConfigID != "" {
			err = s.reconcileGroups(ctx, c, drift)
		}
	}
	if err != nil {
		return nil, err
	}
	if drift {
		cl.DriftAt = qsql.Millis(now.Add(s.DriftEvery))
	}
	next := configs.Earliest(s.nextChange(c, now), qsql.FromMillis(cl.DriftAt))
	return &next, nil
}

// removeWays deletes an archived code's WeCom objects and forgets them once
// WeCom has none left; until then the code stays due.
func (s *Service) removeWays(ctx context.Context, c *Code) error {
	ways, err := s.unsharedWays(ctx, c)
	if err != nil {
		return err
	}
	if len(ways) == 0 {
		if c.ConfigID == "" && c.Settings.GroupWelcomeTemplate == "" {
			return nil
		}
		c.ConfigID, c.Settings.GroupWelcomeTemplate = "", ""
		return s.store.saveWays(ctx, c)
	}
	if !s.deleteWays(ctx, c.CorpID, ways) {
		return errors.New("some WeCom ways of the archived code are not deleted yet")
	}
	c.ConfigID, c.Settings.GroupWelcomeTemplate = "", ""
	for i := range c.Staff {
		c.Staff[i].ConfigID = ""
	}
	return s.store.saveWays(ctx, c)
}

// wayState is the users (sorted) and skip-verify of a contact way or link.
type wayState struct {
	users []string
	skip  bool
}

// staffWay is how one WeCom object that lists a code's staff (a contact way,
// an acquisition link) is read and written.
type staffWay struct {
	read  func(ctx context.Context) (wayState, error)
	write func(ctx context.Context, w wayState) error
}

func (s *Service) contactWay(c *Code) staffWay {
	return staffWay{
		read: func(ctx context.Context) (wayState, error) {
			have, err := s.wc.GetContactWay(ctx, c.CorpID, c.ConfigID)
			if err != nil {
				return wayState{}, fmt.Errorf("get contact way: %w", err)
			}
			return wayState{users: have.User, skip: have.SkipVerify == nil || *have.SkipVerify}, nil
		},
		write: func(ctx context.Context, w wayState) error {
			if err := s.wc.UpdateContactWay(ctx, c.CorpID, wecom.ContactWay{ConfigID: c.ConfigID, State: codeState(c.ID), User: w.users,
				SkipVerify: &w.skip, Remark: truncate(c.Name, 30)}); err != nil {
				return fmt.Errorf("update contact way: %w", err)
			}
			return nil
		},
	}
}

func (s *Service) acquisitionLink(c *Code) staffWay {
	return staffWay{
		read: func(ctx context.Context) (wayState, error) {
			have, err := s.wc.GetAcquisitionLink(ctx, c.CorpID, c.ConfigID)
			if err != nil {
				return wayState{}, fmt.Errorf("get acquisition link: %w", err)
			}
			return wayState{users: have.Users, skip: have.SkipVerify}, nil
		},
		write: func(ctx context.Context, w wayState) error {
			if err := s.wc.UpdateAcquisitionLink(ctx, c.CorpID, wecom.AcquisitionLink{LinkID: c.ConfigID, LinkName: truncate(c.Name, 30),
				Users: w.users, SkipVerify: w.skip}); err != nil {
				return fmt.Errorf("update acquisition link: %w", err)
			}
			return nil
		},
	}
}

// reconcileStaffWay keeps a WeCom-QR code's contact way, or a link code's
// acquisition link, equal to the eligible staff and the skip-verify setting
// of the moment. It compares with what Qiflow last set, reading WeCom back
// only on a drift check (or when what was set is unknown).
func (s *Service) reconcileStaffWay(ctx context.Context, c *Code, cl *reconcileClaim, drift bool, way staffWay) error {
	if c.ConfigID == "" {
		return nil
	}
	users, _, err := s.Eligible(ctx, c)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		// A way needs at least one user; keep the current list rather than break the QR.
		users = c.WeComUsers
	}
	want := wayState{users: users, skip: s.skipVerifyNow(c, s.now())}
	current, haveSkip := c.WeComUsers, cl.SkipApplied
	if drift || haveSkip == "" {
		have, err := way.read(ctx)
		if err != nil {
			return err
		}
		current = append([]string(nil), have.users...)
		sort.Strings(current)
		haveSkip = skipFlag(have.skip)
	}
	if !slices.Equal(current, want.users) || haveSkip != skipFlag(want.skip) {
		if err := way.write(ctx, want); err != nil {
			return err
		}
		s.log.Info("WeCom way updated", "corp", c.CorpID, "code", c.ID, "users", want.users, "skip_verify", want.skip)
	}
	cl.SkipApplied = skipFlag(want.skip)
	if slices.Equal(c.WeComUsers, want.users) {
		return nil
	}
	return s.store.setWeComUsers(ctx, c.ID, want.users, qsql.Millis(s.now()))
}

func skipFlag(skip bool) string {
	if skip {
		return "1"
	}
	return "0"
}

// reconcileRotatingSkip applies the code's skip-verify setting (never, or a
// daily window) to a rotating code's single-person ways, which are created
// with skip_verify on. The value last applied is kept with the code.
func (s *Service) reconcileRotatingSkip(ctx context.Context, c *Code, cl *reconcileClaim) error {
	want := skipFlag(s.skipVerifyNow(c, s.now()))
	have := cl.SkipApplied
	if have == "" {
		have = "1"
	}
	if have == want {
		cl.SkipApplied = have
		return nil
	}
	skip := want == "1"
	for _, st := range c.Staff {
		if st.ConfigID == "" {
			continue
		}
		if err := s.wc.UpdateContactWay(ctx, c.CorpID, wecom.ContactWay{ConfigID: st.ConfigID, State: st.State, User: []string{st.UserID},
			SkipVerify: &skip, Remark: truncate(c.Name, 30)}); err != nil {
			return fmt.Errorf("update way of %s: %w", st.UserID, err)
		}
	}
	cl.SkipApplied = want
	return nil
}
