package journeys

import (
	"context"

	qsql "github.com/qiflow/qiflow/sql"
)

// redefine builds a changed filter while the old one keeps serving, then
// swaps it in:
//
//  1. build: one pass over the leads judging them by the new filter, into
//     segment_builds (members and rows to check later); meanwhile the
//     members, their counts and the journeys entering on the segment follow
//     the old filter, and every lead re-evaluated is marked dirty;
//  2. swap: the new filter starts serving (incremental updates judge by it
//     from here), then the difference between the built verdicts and the
//     members is applied a page at a time, leads marked dirty judged again
//     now rather than trusted from the build;
//  3. the build's rows go and the version is marked built.
//
// Both phases resume from their checkpoint.
func (s *Service) redefine(ctx context.Context, g *Segment, cp *rebuildCheckpoint, progress func(after, scanned int64) error) (*RebuildResult, error) {
	res := &RebuildResult{}
	if err := s.buildVersion(ctx, g, cp, progress, res); err != nil {
		return nil, err
	}
	return res, s.swapVersion(ctx, g, cp, progress, res)
}

// buildVersion is redefine's first phase (nothing when it is done).
func (s *Service) buildVersion(ctx context.Context, g *Segment, cp *rebuildCheckpoint, progress func(after, scanned int64) error, res *RebuildResult) error {
	if !cp.Swapping {
		err := s.scanFrom(ctx, g.CorpID, g.building, cp.After, func(vs []verdict, last int64) error {
			if err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error { return writeBuilds(ctx, s.db, tx, g.ID, vs) }); err != nil {
				return err
			}
			res.Scanned += int64(len(vs))
			if progress != nil {
				return progress(last, res.Scanned)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// swapVersion is redefine's second phase and its end.
func (s *Service) swapVersion(ctx context.Context, g *Segment, cp *rebuildCheckpoint, progress func(after, scanned int64) error, res *RebuildResult) error {
	if !cp.Swapping {
		if err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error { return swapIn(ctx, tx, g.ID) }); err != nil {
			return err
		}
		cp.Swapping, cp.After = true, 0
		if progress != nil {
			if err := progress(0, res.Scanned); err != nil {
				return err
			}
		}
	}
	// From here the new filter serves: judge by it.
	g.cond = g.building
	for {
		ids, built, err := swapPage(ctx, s.db, g.ID, cp.After, scanPage)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		dirty, err := dirtyAmong(ctx, s.db, g.ID, ids)
		if err != nil {
			return err
		}
		var again []int64
		vs := make([]verdict, 0, len(ids))
		for _, id := range ids {
			if dirty[id] {
				again = append(again, id)
				continue
			}
			v, ok := built[id]
			if !ok {
				v = verdict{lead: id} // a member the new filter does not take
			}
			vs = append(vs, v)
		}
		if len(again) > 0 {
			fresh, err := s.judgeLeads(ctx, g.CorpID, g.cond, again)
			if err != nil {
				return err
			}
			vs = append(vs, fresh...)
		}
		err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			stored, err := readMembersOf(ctx, tx, g.ID, ids)
			if err != nil {
				return err
			}
			ch, err := s.apply(ctx, tx, g, vs, stored, qsql.Millis(s.now()))
			res.Entered += int64(len(ch.entered))
			res.Exited += int64(len(ch.exited))
			return err
		})
		if err != nil {
			return err
		}
		cp.After = ids[len(ids)-1]
		if progress != nil {
			if err := progress(cp.After, res.Scanned); err != nil {
				return err
			}
		}
	}
	return s.db.WriteTx(ctx, func(tx *qsql.Tx) error { return finishSwap(ctx, tx, g.ID, g.Version, qsql.Millis(s.now())) })
}
