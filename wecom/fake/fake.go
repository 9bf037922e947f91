package fake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Fake is the fake WeCom. All state is behind mu; HTTP handlers and player
// methods lock it for their whole (short) critical section, never across a
// callback post.
type Fake struct {
	mu     sync.Mutex
	world  *World
	now    func() time.Time
	tokens map[string]tokenInfo // access token → corp, expiry
	rates  map[string]*window   // corp:endpoint → calls this minute
	// hourly counts ticket fetches per corp and app this hour; tickets,
	// oauthCodes and oauthUsers are the JS-SDK's and OAuth's state.
	hourly     map[string]*window
	tickets    map[string]tokenInfo
	oauthCodes map[string]oauthCode
	oauthUsers map[string]string
	faults     faults
	held       int // calls a Gate fault holds
	dirty      bool

	log        *slog.Logger
	persist    string // world file; empty keeps the world in memory only
	callbackHC *http.Client
	srv        *http.Server
	ln         net.Listener
	stop       chan struct{}
	wg         sync.WaitGroup

	// RateLimit is WeCom's per-corp per-API limit a minute (default 10,000).
	RateLimit int
	// CallbackTimeout is how long WeCom waits for our 200 (5 s).
	CallbackTimeout time.Duration
}

type tokenInfo struct {
	corp    string
	expires time.Time
}

type window struct {
	minute int64
	n      int
}

// Options configure a fake.
type Options struct {
	// WorldFile, when set, loads the world from it and saves changes back.
	WorldFile string
	Now       func() time.Time
	Log       *slog.Logger
}

// New returns a fake with an empty world (or the saved one).
func New(o Options) (*Fake, error) {
	f := &Fake{
		world:           &World{Corps: map[string]*Corp{}},
		now:             o.Now,
		tokens:          map[string]tokenInfo{},
		rates:           map[string]*window{},
		hourly:          map[string]*window{},
		tickets:         map[string]tokenInfo{},
		oauthCodes:      map[string]oauthCode{},
		oauthUsers:      map[string]string{},
		log:             o.Log,
		persist:         o.WorldFile,
		callbackHC:      &http.Client{Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second}},
		stop:            make(chan struct{}),
		RateLimit:       10000,
		CallbackTimeout: 5 * time.Second,
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if o.WorldFile != "" {
		w, err := loadWorld(o.WorldFile)
		switch {
		case err == nil:
			f.world = w
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	return f, nil
}

// SetClock replaces the fake's clock (tests of the 20 s welcome window).
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// AddCorp adds a corp (if new) and returns whether it was created.
func (f *Fake) AddCorp(s CorpSpec, demo bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.world.Corps[s.ID]; ok {
		if s.CallbackURL != "" {
			c.CallbackURL = s.CallbackURL
		}
		return false
	}
	c := newCorp(s.ID, s.Name, s.Secret, s.AgentID, s.Token, s.AESKey)
	c.CallbackURL = s.CallbackURL
	if demo {
		seedDemo(c, f.nextID)
	}
	f.world.Corps[s.ID] = c
	f.dirty = true
	return true
}

// SetCallbackURL says where the corp's callbacks go.
func (f *Fake) SetCallbackURL(corpID, url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.world.Corps[corpID]; ok {
		c.CallbackURL = url
	}
}

// nextID returns a fresh id with a prefix; callers hold mu.
func (f *Fake) nextID(prefix string) string {
	f.world.Seq++
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%06d%s", prefix, f.world.Seq, hex.EncodeToString(b))
}

// Start serves the fake on addr ("127.0.0.1:0" for any port) and returns its base URL.
func (f *Fake) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	f.ln = ln
	f.srv = &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 5 * time.Second}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.srv.Serve(ln)
	}()
	if f.persist != "" {
		f.wg.Add(1)
		go f.saveLoop()
	}
	return "http://" + ln.Addr().String(), nil
}

// URL is the base URL the fake serves on.
func (f *Fake) URL() string { return "http://" + f.ln.Addr().String() }

// Close stops serving and saves the world.
func (f *Fake) Close() error {
	close(f.stop)
	if f.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		f.srv.Shutdown(ctx)
		cancel()
	}
	f.wg.Wait()
	return f.Save()
}

// Save writes the world file now (when persistence is on).
func (f *Fake) Save() error {
	if f.persist == "" {
		return nil
	}
	f.mu.Lock()
	b, err := json.Marshal(f.world)
	f.dirty = false
	f.mu.Unlock()
	if err != nil {
		return err
	}
	var w World
	_ = json.Unmarshal(b, &w)
	return saveWorld(f.persist, &w)
}

func (f *Fake) saveLoop() {
	defer f.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.mu.Lock()
			dirty := f.dirty
			f.mu.Unlock()
			if dirty {
				if err := f.Save(); err != nil {
					f.log.Error("sandbox: saving the world failed", "err", err)
				}
			}
		}
	}
}

// Messages returns what the corp has sent (welcome and app messages), oldest first.
func (f *Fake) Messages(corpID string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.world.Corps[corpID]
	if c == nil {
		return nil
	}
	return append([]Message(nil), c.Messages...)
}

// Inspect runs fn on the corp's state under the lock, for tests to read the world.
func (f *Fake) Inspect(corpID string, fn func(c *Corp)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.world.Corps[corpID]; c != nil {
		fn(c)
	}
}

// Mutate runs fn on the corp's state under the lock, as an admin console would.
func (f *Fake) Mutate(corpID string, fn func(c *Corp)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.world.Corps[corpID]; c != nil {
		fn(c)
		f.dirty = true
	}
}

// Calls counts API calls per endpoint for a corp, since the fake started.
func (f *Fake) Calls(corpID, endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults.calls[corpID+" "+endpoint]
}
