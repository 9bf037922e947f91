package leads

import (
	"context"
	"fmt"
	"maps"

	"github.com/qiflow/qiflow/jobs"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom/directory"
)

// JobBackfill turns the contacts already in the directory mirror into
// people and leads: a corp that connects with 50,000 customers starts with
// a full pool. It runs after every directory import (the wiring enqueues
// it), is resumable (its checkpoint is the last contact done) and safe to
// repeat (a contact with a person and a lead is skipped).
const JobBackfill = "leads.backfill"

// SourceExisting is a lead made from a contact the corp had before.
const SourceExisting = "existing"

const backfillPage = 500

type backfillCheckpoint struct {
	After   string `json:"after"`
	Seen    int64  `json:"seen"`
	Created int64  `json:"created"`
}

// BackfillResult is what a backfill did.
type BackfillResult struct {
	Contacts int64 `json:"contacts"`
	Created  int64 `json:"created"`
}

// RunBackfill is the JobBackfill handler.
func (s *Service) RunBackfill(ctx context.Context, j *jobs.Job) (any, error) {
	var cp backfillCheckpoint
	if _, err := j.LoadCheckpoint(&cp); err != nil {
		return nil, err
	}
	for {
		page, err := s.contacts.ListContacts(ctx, j.CorpID, cp.After, backfillPage)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return BackfillResult{Contacts: cp.Seen, Created: cp.Created}, nil
		}
		created, err := s.backfill(ctx, j.CorpID, page)
		if err != nil {
			return nil, fmt.Errorf("contacts after %q: %w", cp.After, err)
		}
		cp.After, cp.Seen, cp.Created = page[len(page)-1].ExternalUserID, cp.Seen+int64(len(page)), cp.Created+int64(created)
		if err := j.Checkpoint(ctx, cp, cp.Seen, 0); err != nil {
			return nil, err
		}
	}
}

// backfill makes people and leads for one page of contacts, in one
// transaction of a few statements, and returns how many leads it created.
func (s *Service) backfill(ctx context.Context, corp string, page []directory.Contact) (int, error) {
	created := 0
	now := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		created = 0
		contacts := make([][2]string, len(page))
		for i, c := range page {
			contacts[i] = [2]string{corp, c.ExternalUserID}
		}
		people, err := s.store.peopleByIdentity(ctx, tx, IdentityWeCom, contacts)
		if err != nil {
			return err
		}
		var fresh []newPerson
		for _, c := range page {
			if people[[2]string{corp, c.ExternalUserID}] == 0 {
				fresh = append(fresh, newPerson{Corp: corp, Kind: IdentityWeCom, Value: c.ExternalUserID, Name: c.Name})
			}
		}
		made, err := s.store.createPeople(ctx, tx, fresh, now)
		if err != nil {
			return err
		}
		maps.Copy(people, made)
		refs := make([][2]any, 0, len(people))
		for _, id := range people {
			refs = append(refs, [2]any{corp, id})
		}
		leadOf, err := s.store.leadsOfPeople(ctx, tx, refs)
		if err != nil {
			return err
		}
		pool, err := s.defaultPool(ctx, tx, corp, now)
		if err != nil {
			return err
		}
		var ls []*Lead
		for _, c := range page {
			person := people[[2]string{corp, c.ExternalUserID}]
			if leadOf[person] > 0 {
				continue // made by intake, or an earlier run
			}
			ls = append(ls, &Lead{CorpID: corp, PersonID: person, PoolID: pool, Stage: StageLead, Source: SourceExisting, CreatedAt: now, UpdatedAt: now})
		}
		if err := s.store.createLeads(ctx, tx, ls); err != nil {
			return err
		}
		history := make([]historyRow, len(ls))
		for i, l := range ls {
			history[i] = historyRow{corp, l.ID, HistoryEntry{At: now, Kind: HistoryCreated, To: StageLead, Reason: "a WeCom contact from before Qiflow"}}
		}
		created = len(ls)
		return s.store.addHistories(ctx, tx, history)
	})
	return created, err
}
