package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/qiflow/qiflow/auth"
	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/handlers"
	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/kv"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/livecode"
	qsql "github.com/qiflow/qiflow/sql"
	"github.com/qiflow/qiflow/wecom"
	"github.com/qiflow/qiflow/wecom/directory"
	"github.com/qiflow/qiflow/wecom/fake"
	"github.com/qiflow/qiflow/wecom/media"
)

// app is one qiflow serve process: every component, wired.
type app struct {
	cfg   configs.Config
	log   *slog.Logger
	owner string

	db         *qsql.DB
	kv         *kv.Store
	fake       *fake.Fake // the in-process sandbox WeCom, when on
	api        *wecom.API
	bus        *jobs.Bus
	disp       *jobs.Dispatcher
	run        *jobs.Runner
	cron       *jobs.Cron
	dir        *directory.Directory
	codes      *livecode.Service
	leads      *leads.Service
	journeys   *journeys.Service
	stopEngine context.CancelFunc // ends the journey engine
	media      *media.Store
	auth       *auth.Service
	srv        *http.Server
	ln         net.Listener
	corps      []configs.CorpConfig
	// calendars are the corps' live work calendars: the file's, replaced by
	// what admins set in the console (reloaded every calendarReload).
	calendars     map[string]*configs.Calendar
	stopCalendars chan struct{}
}

// calendarReload is how soon an instance takes up a calendar an admin
// changed on another instance.
const calendarReload = 30 * time.Second

// appOptions are wiring choices that are not configuration.
type appOptions struct {
	// noInitialSync skips the import of newly connected corps (benchmarks).
	noInitialSync bool
	// skipSubscribers are bus subscribers left out, to measure what the
	// rest costs (qiflow bench callbacks --skip).
	skipSubscribers []string
}

// newApp opens storage, migrates, and wires every component; start() runs them.
func newApp(ctx context.Context, cfg configs.Config, log *slog.Logger, opts ...appOptions) (a *app, err error) {
	var opt appOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	a = &app{cfg: cfg, log: log, owner: instanceID()}
	// A failed start releases what it opened; `return nil, err` has already
	// cleared a when this runs, so it closes its own copy.
	opened := a
	defer func() {
		if err != nil {
			opened.close()
		}
	}()
	if a.db, err = qsql.OpenWith(cfg.DB.Driver, cfg.DB.DSN, cfg.DB.MaxOpenConns); err != nil {
		return nil, err
	}
	if err = qsql.Migrate(ctx, a.db, log); err != nil {
		return nil, err
	}
	if a.kv, err = kv.Open(ctx, kv.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB, Prefix: cfg.Redis.Prefix}); err != nil {
		return nil, err
	}

	a.corps = cfg.WeCom.Corps
	apiBase, oauthBase, jssdk := cfg.WeCom.APIBase, cfg.WeCom.OAuthBase, cfg.WeCom.JSSDK
	if cfg.SandboxOn() {
		if apiBase, err = a.startSandbox(); err != nil {
			return nil, err
		}
		// The sandbox's fake WeCom has the OAuth page too, and its sidebar
		// has no WeCom client around it: the stand-in JS-SDK.
		oauthBase, jssdk = apiBase, "sandbox"
	}
	apps := make([]wecom.CorpApp, len(a.corps))
	for i, c := range a.corps {
		apps[i] = wecom.CorpApp{CorpID: c.ID, Secret: c.Secret, AgentID: c.AgentID}
	}
	a.api = wecom.NewAPI(apiBase, a.kv, cfg.WeCom.Timeout.Duration, apps...)

	// One bus for WeCom's callbacks and the domain events packages publish;
	// every subscriber is listed in subscribers.go.
	a.bus = jobs.NewBus(a.db, log)
	a.bus.RegisterSource(jobs.SourceWeCom, wecom.Decode)
	a.bus.Skip(opt.skipSubscribers...)
	a.dir = directory.New(a.db, a.api, log)
	a.dir.Subscribe(a.bus)
	calendars := map[string]*configs.Calendar{}
	for _, c := range a.corps {
		if calendars[c.ID], err = c.Calendar.Compile(c.TimeZone); err != nil {
			return nil, &configs.FieldError{Key: "wecom.corps[" + c.ID + "].calendar", Msg: err.Error()}
		}
	}
	a.calendars, a.stopCalendars = calendars, make(chan struct{})
	if err := a.loadCalendars(ctx); err != nil {
		return nil, err
	}
	a.auth = auth.New(a.db)
	a.auth.SetBus(a.bus)
	a.codes = livecode.New(a.db, a.kv, a.api, a.dir, calendars, cfg.PublicURL, log)
	a.media = media.New(a.db, a.api)
	a.codes.Media = a.media
	a.codes.OwnerStaff = a.auth.StaffID
	a.codes.DepartmentSuccessors = map[string]map[int64]string{}
	for _, c := range a.corps {
		a.codes.NotifyOnLoss[c.ID] = c.NotifyOnLoss
		a.codes.DepartmentSuccessors[c.ID] = c.Successors
	}
	a.codes.Subscribe(a.bus)
	a.leads = leads.New(a.db, a.dir, calendars, log)
	a.leads.Subscribe(a.bus)
	a.journeys = journeys.New(a.db, a.leads, calendars, log)
	a.journeys.Subscribe(a.bus)
	if skipped := a.bus.Skipped(); len(skipped) < len(opt.skipSubscribers) {
		for _, name := range opt.skipSubscribers {
			if !slices.Contains(skipped, name) {
				return nil, fmt.Errorf("no subscriber is named %q (see cmd/qiflow/subscribers.go)", name)
			}
		}
	}
	a.journeys.SetMessenger(a.api, a.auth.StaffID)
	a.journeys.SetDirectory(a.dir)
	a.journeys.SetCodes(a.codes)
	a.journeys.SetTeams(a.auth.TeamNamesByUser)
	a.journeys.SetUsers(a.auth.IsMember)
	a.journeys.SetMedia(a.media)
	a.disp = jobs.NewDispatcher(a.bus, jobs.DispatcherOptions{
		Owner: a.owner, Workers: cfg.Inbox.Workers, FastWorkers: cfg.Inbox.FastWorkers,
		Lease: cfg.Inbox.Lease.Duration, MaxAttempts: cfg.Inbox.MaxAttempts, BurstWorkers: cfg.Inbox.BurstWorkers,
	}, log)
	a.run = jobs.NewRunner(a.db, a.owner, time.Minute, log)
	// Every directory import is followed by the lead pool's backfill, so
	// contacts from before Qiflow (or missed while it was down) become leads.
	a.run.Register(directory.JobSync, func(ctx context.Context, j *jobs.Job) (any, error) {
		res, err := a.dir.RunSync(ctx, j)
		if err == nil {
			if _, qerr := a.run.Enqueue(ctx, j.CorpID, leads.JobBackfill, leads.JobBackfill+":"+j.CorpID, nil, j.CreatedBy); qerr != nil {
				log.Error("queueing the lead backfill after a directory import", "corp", j.CorpID, "err", qerr)
			}
		}
		return res, err
	})
	a.run.Register(leads.JobBackfill, a.leads.RunBackfill)
	a.run.Register(leads.JobRescore, a.leads.RunRescore)
	a.run.Register(leads.JobImport, a.leads.RunImport)
	a.leads.SetJobs(a.run)
	a.run.Register(journeys.JobRebuild, a.journeys.RunRebuild)
	a.journeys.SetJobs(a.run)
	a.leads.SetNotifier(a.api, a.auth.StaffID)
	a.leads.SetManagers(a.auth.ManagerOf)
	a.leads.PublicURL = cfg.PublicURL

	corpIDs := make([]string, len(a.corps))
	for i, c := range a.corps {
		corpIDs[i] = c.ID
		created, err := a.dir.EnsureCorp(ctx, c.ID, c.Name, c.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("record corp %s: %w", c.ID, err)
		}
		if created && !opt.noInitialSync {
			id, err := a.dir.EnqueueSync(ctx, a.run, c.ID, 0)
			if err != nil {
				return nil, err
			}
			log.Info("corp connected: initial import queued", "corp", c.ID, "job", id)
		}
	}
	fa, err := a.auth.EnsureFirstAdmin(ctx, cfg.Admin.Email, cfg.Admin.Password, cfg.DataDir, corpIDs)
	if err != nil {
		return nil, fmt.Errorf("create first admin: %w", err)
	}
	if fa.Created && fa.PasswordFile != "" {
		log.Warn("first admin created; its password is in a file readable only by you", "email", fa.Email, "password_file", fa.PasswordFile)
	} else if fa.Created {
		log.Info("first admin created", "email", fa.Email)
	}

	a.cron = jobs.NewCron(a.kv, log)
	if err := a.db.Optimize(ctx); err != nil { // SQLite's statistics: see Optimize
		log.Warn("database statistics not refreshed", "err", err)
	}
	if err := a.cron.Add("sql.optimize", "*/10 * * * *", a.db.Optimize); err != nil {
		return nil, err
	}
	if err := a.cron.Add("bus.prune", "7 * * * *", func(ctx context.Context) error {
		n, err := a.bus.Prune(ctx, time.Now().Add(-cfg.Inbox.Retention.Duration))
		if n > 0 {
			log.Info("bus pruned", "events", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("directory.reconcile", cfg.Sync.Reconcile, func(ctx context.Context) error {
		var errs []error
		for _, c := range a.corps {
			_, err := a.dir.EnqueueSync(ctx, a.run, c.ID, 0)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}); err != nil {
		return nil, &configs.FieldError{Key: "sync.reconcile", Msg: err.Error()}
	}

	// Reconciles are scheduled in the database (livecode's reconciler runs
	// them when an input changes, at schedule edges and hourly drift
	// checks); cron only looks for leavers and prunes.
	if err := a.cron.Add("livecode.leavers", "* * * * *", a.codes.HandleLeavers); err != nil {
		return nil, err
	}
	if err := a.cron.Add("livecode.prune", "17 3 * * *", a.codes.PruneVisitors); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.recycle", "*/5 * * * *", func(ctx context.Context) error {
		n, err := a.leads.Recycle(ctx)
		if n > 0 {
			log.Info("leads without follow-up returned to their pools", "leads", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.cooling", "* * * * *", func(ctx context.Context) error {
		n, err := a.leads.Cool(ctx)
		if n > 0 {
			log.Info("MQLs cooled below the threshold", "leads", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.assign", "* * * * *", func(ctx context.Context) error {
		_, err := a.leads.AssignWaiting(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.sla", "* * * * *", func(ctx context.Context) error {
		_, err := a.leads.CheckSLAs(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.escalate", "*/5 * * * *", func(ctx context.Context) error {
		_, err := a.leads.Escalate(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.tasks", "* * * * *", func(ctx context.Context) error {
		_, err := a.leads.RemindTasks(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("leads.notices", "* * * * *", func(ctx context.Context) error {
		_, err := a.leads.SendNotices(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("journeys.messages", "* * * * *", func(ctx context.Context) error {
		n, err := a.journeys.TrackMessages(ctx)
		if n > 0 {
			log.Info("journey messages settled", "messages", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("journeys.dates", "* * * * *", func(ctx context.Context) error {
		n, err := a.journeys.EnterOnDates(ctx)
		if n > 0 {
			log.Info("leads entered journeys on their date fields", "leads", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.cron.Add("livecode.handovers", "*/10 * * * *", a.codes.CheckHandovers); err != nil {
		return nil, err
	}
	if err := a.cron.Add("media.refresh", "23 * * * *", func(ctx context.Context) error {
		n, err := a.media.RefreshDue(ctx)
		if n > 0 {
			log.Info("media re-uploaded ahead of WeCom's expiry", "files", n)
		}
		return err
	}); err != nil {
		return nil, err
	}

	hcorps := make([]handlers.Corp, len(a.corps))
	for i, c := range a.corps {
		hcorps[i] = handlers.Corp{ID: c.ID, Crypto: wecom.Crypto{Token: c.Token, AESKey: c.AESKey, ReceiverID: c.ID}}
	}
	agentIDs := map[string]int{}
	for _, c := range a.corps {
		agentIDs[c.ID] = c.AgentID
	}
	engine, _ := handlers.New(handlers.Deps{
		Log: log, Corps: hcorps, Bus: a.bus, Runner: a.run, Auth: a.auth, Directory: a.dir, LiveCodes: a.codes, Leads: a.leads, Journeys: a.journeys, Media: a.media, TrustedProxies: cfg.TrustedProxies, KV: a.kv,
		PublicURL: cfg.PublicURL,
		Pages:     a.api, OAuthBase: oauthBase, JSSDK: jssdk, AgentIDs: agentIDs, Calendars: calendars,
		Location: func(corp string) *time.Location {
			if c := calendars[corp]; c != nil {
				return c.Location()
			}
			return nil
		},
		Ready: func(ctx context.Context) error {
			if err := a.db.PingContext(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if err := a.kv.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			return nil
		},
	})
	a.srv = &http.Server{Handler: engine, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	return a, nil
}

// startSandbox runs the fake WeCom in-process with the demo corp, its world
// saved under the data dir, and returns its base URL.
func (a *app) startSandbox() (string, error) {
	f, err := fake.New(fake.Options{WorldFile: filepath.Join(a.cfg.DataDir, "sandbox", "world.json"), Log: a.log})
	if err != nil {
		return "", err
	}
	base, err := f.Start(a.cfg.SandboxAddr)
	if err != nil {
		// Failing beats moving: the README's commands talk to this address.
		return "", fmt.Errorf("the sandbox cannot listen on %s (sandbox_addr, QIFLOW_SANDBOX_ADDR or --sandbox-addr; another qiflow running?): %w", a.cfg.SandboxAddr, err)
	}
	a.fake = f
	spec := fake.SandboxCorp
	spec.CallbackURL = "http://" + a.cfg.HTTPAddr + "/wecom/callback/" + spec.ID
	if f.AddCorp(spec, true) {
		// Groups to try group codes on (README: Try a group code).
		f.SeedGroups(spec.ID, "zhangsan", "VIP 客户群 1", "VIP 客户群 2")
	}
	f.SetCallbackURL(spec.ID, spec.CallbackURL)
	if _, ok := a.cfg.Corp(spec.ID); !ok {
		a.corps = append(a.corps, configs.CorpConfig{ID: spec.ID, Name: spec.Name, Secret: spec.Secret, AgentID: spec.AgentID,
			Token: spec.Token, AESKey: spec.AESKey, TimeZone: "Asia/Shanghai"})
	}
	return base, nil
}

// start listens and runs every background part.
func (a *app) start() error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (http_addr, QIFLOW_HTTP_ADDR or --http-addr; another qiflow running?): %w", a.cfg.HTTPAddr, err)
	}
	a.ln = ln
	if a.fake != nil {
		// Now that the port is known, point the sandbox's callbacks at it.
		a.fake.SetCallbackURL(fake.SandboxCorpID, "http://"+ln.Addr().String()+"/wecom/callback/"+fake.SandboxCorpID)
	}
	if err := a.bus.Start(context.Background()); err != nil {
		return err
	}
	a.disp.Start()
	a.codes.Start()
	a.run.Start(2)
	a.cron.Start()
	engineCtx, stopEngine := context.WithCancel(context.Background())
	a.stopEngine = stopEngine
	go a.journeys.Engine().Run(engineCtx)
	go a.reloadCalendars()
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// addr is the address the server listens on.
func (a *app) addr() string { return a.ln.Addr().String() }

// shutdown stops taking requests, lets in-flight requests and deliveries
// finish (bounded by ctx), then closes storage. Anything unfinished is
// re-claimed by another instance when its lease ends.
func (a *app) shutdown(ctx context.Context) {
	if a.srv != nil && a.ln != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			a.log.Warn("http shutdown", "err", err)
		}
	}
	if a.bus != nil && a.ln != nil {
		a.bus.Stop()
	}
	if a.disp != nil {
		a.disp.Stop(ctx)
	}
	if a.codes != nil && a.ln != nil {
		a.codes.Stop()
	}
	if a.run != nil {
		a.run.Stop(ctx)
	}
	if a.stopEngine != nil {
		a.stopEngine()
		select {
		case <-a.journeys.Engine().Done():
		case <-ctx.Done():
		}
	}
	if a.cron != nil && a.ln != nil {
		a.cron.Stop()
	}
	if a.stopCalendars != nil && a.ln != nil {
		close(a.stopCalendars)
	}
	a.close()
}

// loadCalendars puts the calendars admins set in place of the file's.
func (a *app) loadCalendars(ctx context.Context) error {
	set, err := a.dir.Calendars(ctx)
	if err != nil {
		return fmt.Errorf("read the corps' calendars: %w", err)
	}
	for corp, cc := range set {
		if cal := a.calendars[corp]; cal != nil && !reflect.DeepEqual(cal.Config(), cc) {
			if err := cal.Replace(cc); err != nil {
				a.log.Error("a stored calendar does not compile; the previous one is kept", "corp", corp, "err", err)
			}
		}
	}
	return nil
}

// reloadCalendars takes up calendars changed on other instances until shutdown.
func (a *app) reloadCalendars() {
	tick := time.NewTicker(calendarReload)
	defer tick.Stop()
	for {
		select {
		case <-a.stopCalendars:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := a.loadCalendars(ctx); err != nil {
				a.log.Warn("reloading calendars", "err", err)
			}
			cancel()
		}
	}
}

func (a *app) close() {
	if a.fake != nil {
		if err := a.fake.Close(); err != nil {
			a.log.Error("saving the sandbox world failed", "err", err)
		}
		a.fake = nil
	}
	if a.kv != nil {
		a.kv.Close()
		a.kv = nil
	}
	if a.db != nil {
		a.db.Close()
		a.db = nil
	}
}

func instanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
