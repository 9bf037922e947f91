package leads

import (
	"context"
	"fmt"

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
// transaction, and returns how many leads it created.
func (s *Service) backfill(ctx context.Context, corp string, page []directory.Contact) (int, error) {
	created := 0
	now := qsql.Millis(s.now())
	err := s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
		created = 0
		pool, err := s.store.defaultPool(ctx, tx, corp, now)
		if err != nil {
			return err
		}
		for _, c := range page {
			person, err := s.store.personByIdentity(ctx, tx, corp, IdentityWeCom, c.ExternalUserID)
			if err != nil {
				return err
			}
			if person == 0 {
				if person, err = s.store.createPerson(ctx, tx, corp, c.Name, IdentityWeCom, c.ExternalUserID, now); err != nil {
					return err
				}
			}
			lead, err := s.store.leadOfPerson(ctx, tx, corp, person)
			if err != nil {
				return err
			}
			if lead > 0 {
				continue // made by intake, or an earlier run
			}
			l := &Lead{CorpID: corp, PersonID: person, PoolID: pool, Stage: StageLead, Source: SourceExisting, CreatedAt: now, UpdatedAt: now}
			if err := s.store.createLead(ctx, tx, l); err != nil {
				return err
			}
			if err := s.store.addHistory(ctx, tx, corp, l.ID, HistoryEntry{At: now, Kind: HistoryCreated, To: StageLead,
				Reason: "a WeCom contact from before Qiflow"}); err != nil {
				return err
			}
			created++
		}
		return nil
	})
	return created, err
}
