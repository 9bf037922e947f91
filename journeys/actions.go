package journeys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qiflow/qiflow/apperr"
	"github.com/qiflow/qiflow/leads"
	qsql "github.com/qiflow/qiflow/sql"
)

// errPermanent marks an action failure that retrying cannot fix.
var errPermanent = errors.New("permanent")

// actionRecord is an action a run took (or tried) at a step.
type actionRecord struct {
	Run    int64
	Step   int
	Node   string
	Kind   string
	Status string // done | skipped | failed
	Detail string
	At     int64
}

// ActionKey is an action's idempotency key: the run and the step it was
// taken at (a step is one visit of a node, so a loop's second visit is a
// new key). A retried claim repeats the key, never the action: the lead
// pool drops an activity whose key it has, a stage or status already set
// is skipped, a segment change is a set, and webhooks carry the key for the
// receiver.
func ActionKey(run int64, step int) string { return fmt.Sprintf("journey:%d:%d", run, step) }

// act takes a run's action at its node.
func (s *Service) act(ctx context.Context, g *compiledGraph, n *Node, r *Run, p *leads.Profile, now time.Time) (actionRecord, error) {
	a := n.Action
	rec := actionRecord{Run: r.ID, Step: r.Step, Node: n.ID, Kind: a.Kind, Status: "done", At: qsql.Millis(now)}
	key := ActionKey(r.ID, r.Step)
	reason := a.Reason
	if reason == "" {
		reason = fmt.Sprintf("journey %d, step %s", r.JourneyID, n.ID)
	}
	var err error
	switch a.Kind {
	case ActionStage:
		if p.Stage == a.Stage {
			rec.Status = "skipped"
			break
		}
		_, err = s.leads.ChangeStage(ctx, r.CorpID, r.LeadID, 0, true, a.Stage, reason)
		if err == nil {
			p.Stage = a.Stage
		}
	case ActionStatus:
		if p.Status == a.Status {
			rec.Status = "skipped"
			break
		}
		_, err = s.leads.SetStatus(ctx, r.CorpID, r.LeadID, 0, true, a.Status, reason)
		if err == nil {
			p.Status = a.Status
		}
	case ActionActivity:
		props, _ := json.Marshal(map[string]any{"journey_id": r.JourneyID, "node": n.ID})
		var res leads.ActivitiesResult
		res, err = s.leads.RecordActivities(ctx, r.CorpID, []leads.ActivityIn{{PersonID: p.PersonID, Type: a.Activity, At: now, Properties: props, Key: key}})
		if err == nil && len(res.Rejected) > 0 {
			err = fmt.Errorf("%w: activity refused: %s %s", errPermanent, res.Rejected[0].Field, res.Rejected[0].Reason)
		}
	case ActionSegmentAdd, ActionSegmentRemove:
		err = s.db.WriteTx(ctx, func(tx *qsql.Tx) error {
			seg, err := readSegment(ctx, tx, r.CorpID, a.Segment)
			if err != nil {
				return err
			}
			if err := seg.decode(); err != nil {
				return err
			}
			if seg.Kind != KindStatic {
				return ErrNotStatic
			}
			pin := 1
			if a.Kind == ActionSegmentRemove {
				pin = -1
			}
			return s.pinTx(ctx, tx, seg, []int64{r.LeadID}, pin)
		})
	case ActionScore:
		var applied bool
		applied, err = s.leads.AdjustScore(ctx, r.CorpID, r.LeadID, a.Points, reason, key)
		if err == nil && !applied {
			rec.Status = "skipped" // the step's key was recorded: applied before
		}
	case ActionNotify:
		err = s.notify(ctx, a, r, p)
	case ActionPool:
		if p.PoolID == a.Pool {
			rec.Status = "skipped"
			break
		}
		_, err = s.leads.MoveToPool(ctx, r.CorpID, r.LeadID, a.Pool, 0, reason)
	case ActionTask:
		if p.OwnerUserID == 0 {
			rec.Status, rec.Detail = "skipped", "no owner"
			break
		}
		hours := a.DueHours
		if hours == 0 {
			hours = 24
		}
		var made bool
		// A long name must not make the title too long to store (255 bytes is within 255 characters).
		_, made, err = s.leads.CreateTask(ctx, r.CorpID, 0, leads.TaskIn{LeadID: r.LeadID, Title: truncate(strings.ReplaceAll(a.Text, "{{name}}", p.Name), 255),
			DueAt: now.Add(time.Duration(hours) * time.Hour).UnixMilli(), Key: key})
		if err == nil && !made {
			rec.Status = "skipped" // the step's task was made before
		}
	case ActionAssign:
		var isUser func(int64) (bool, error)
		if s.isMember != nil {
			isUser = func(u int64) (bool, error) { return s.isMember(ctx, r.CorpID, u) }
		}
		var outcome string
		var owner int64
		outcome, owner, err = s.leads.AssignOwner(ctx, r.CorpID, r.LeadID, a.Owner, reason, isUser)
		if err == nil && outcome != leads.AssignedNow {
			rec.Status, rec.Detail = "skipped", outcome
		}
		if err == nil {
			p.OwnerUserID = owner
		}
	case ActionTag:
		switch {
		case s.dir == nil:
			err = fmt.Errorf("%w: no directory to tag through", errPermanent)
		case p.ExternalUserID == "" || p.StaffUserID == "":
			rec.Status, rec.Detail = "skipped", "not a WeCom contact"
		default:
			// Marking a tag already there (or removing one absent) is a
			// no-op at WeCom: a retried step changes nothing more.
			err = s.dir.TagContact(ctx, r.CorpID, p.StaffUserID, p.ExternalUserID, a.TagsAdd, a.TagsRemove)
		}
	case ActionMessage, ActionInvite:
		var detail string
		detail, err = s.message(ctx, a, r, p, now)
		rec.Detail = detail
	case ActionWebhook:
		err = s.webhooks.post(ctx, a.URL, a.Secret, key, webhookBody{
			Journey: r.JourneyID, Version: r.Version, Run: r.ID, Node: n.ID, Step: r.Step, At: now.UTC().Format(time.RFC3339), Lead: p,
		})
	}
	var wait waitError
	if errors.As(err, &wait) {
		rec.Status, rec.Detail = "deferred", wait.Error()
		return rec, err
	}
	if err != nil {
		if _, ok := apperr.As(err); ok { // refused by the lead pool: retrying will not help
			err = fmt.Errorf("%w: %v", errPermanent, err)
		}
		rec.Status, rec.Detail = "failed", truncate(err.Error(), 500)
	}
	return rec, err
}

// webhookBody is what a webhook action posts.
type webhookBody struct {
	Journey int64          `json:"journey_id"`
	Version int64          `json:"version"`
	Run     int64          `json:"run_id"`
	Node    string         `json:"node"`
	Step    int            `json:"step"`
	At      string         `json:"at"`
	Lead    *leads.Profile `json:"lead"`
}

// webhookPoster posts signed webhooks.
type webhookPoster interface {
	post(ctx context.Context, url, secret, key string, body any) error
}

type httpWebhooks struct{ client *http.Client }

func newWebhookPoster() webhookPoster {
	return httpWebhooks{client: &http.Client{Timeout: 10 * time.Second}}
}

func validWebhookURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// post sends body with X-Qiflow-Signature: sha256=HMAC-SHA256(secret, body)
// and Idempotency-Key; a 2xx is done, a 4xx other than 408/429 will not be
// retried, anything else is retried with backoff by the engine.
func (h httpWebhooks) post(ctx context.Context, target, secret, key string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(b)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Qiflow-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Idempotency-Key", key)
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: webhook answered %d", errPermanent, resp.StatusCode)
	}
	return fmt.Errorf("webhook answered %d", resp.StatusCode)
}

// notify sends the lead's owner (their WeCom staff member; without an
// owner, the staff member who added the person) an app message. WeCom's
// duplicate check drops the same text to the same person within 30
// minutes, so a retried step does not notify twice.
func (s *Service) notify(ctx context.Context, a *Action, r *Run, p *leads.Profile) error {
	if s.messenger == nil {
		return fmt.Errorf("%w: no WeCom to send through", errPermanent)
	}
	to := p.StaffUserID
	if p.OwnerUserID != 0 && s.staffOf != nil {
		staff, err := s.staffOf(ctx, r.CorpID, p.OwnerUserID)
		if err != nil {
			return err
		}
		if staff != "" {
			to = staff
		}
	}
	if to == "" {
		return fmt.Errorf("%w: the lead has no owner or staff member in WeCom", errPermanent)
	}
	text := strings.NewReplacer("{{name}}", p.Name, "{{lead}}", fmt.Sprint(p.LeadID)).Replace(a.Text)
	return s.messenger.SendAppMessage(ctx, r.CorpID, to, text)
}
