package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qiflow/qiflow/configs"
	"github.com/qiflow/qiflow/journeys"
	"github.com/qiflow/qiflow/leads"
	"github.com/qiflow/qiflow/wecom/fake"
)

// An instance is killed (SIGKILL, no shutdown) in the middle of a run: it
// has recorded the run's activity and is inside its webhook call. Another
// instance takes the run over when the lease ends and finishes it; the
// activity is not recorded twice (its key is the run's step) and the
// webhook's second call carries the same Idempotency-Key, so the receiver
// sees one action.
func TestE2E_JourneyRunsSurviveAKilledInstance(t *testing.T) {
	backends(t, func(t *testing.T, driver string) {
		_, base := fake.StartForTest(t, e2eCorp, true)
		cfg := testConfig(t, driver)
		cfg.WeCom.APIBase, cfg.WeCom.OAuthBase, cfg.WeCom.JSSDK = base, base, "sandbox"
		spec := fake.SandboxCorp
		cfg.WeCom.Corps = []configs.CorpConfig{{ID: e2eCorp, Name: "E2E", Secret: spec.Secret, AgentID: spec.AgentID, Token: spec.Token, AESKey: spec.AESKey, TimeZone: "Asia/Shanghai"}}
		cfgPath := filepath.Join(t.TempDir(), "config.json")
		raw, _ := json.Marshal(cfg)
		if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}

		// The webhook's receiver holds the first call until the test lets go.
		var mu sync.Mutex
		var keys []string
		arrived := make(chan struct{}, 4)
		release := make(chan struct{})
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			first := len(keys) == 1
			mu.Unlock()
			arrived <- struct{}{}
			if first {
				<-release
			}
		}))
		defer hook.Close()
		defer close(release)

		// The first instance: a child process of this test binary.
		child := exec.Command(os.Args[0], "-test.run=^TestHelperJourneyInstance$", "-test.v")
		child.Env = append(os.Environ(), "QIFLOW_HELPER_CONFIG="+cfgPath)
		child.Stdout, child.Stderr = os.Stderr, os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		defer child.Process.Kill()
		var addr []byte
		waitUntil(t, "the first instance to listen", func() bool {
			addr, _ = os.ReadFile(cfgPath + ".addr")
			return len(addr) > 0
		})
		url := "http://" + string(addr)
		admin := login(t, url, "admin@example.com", "admin password")
		var created struct {
			Lead leads.Lead `json:"lead"`
		}
		if st := call(t, "POST", url+"/api/v1/leads", admin, map[string]any{"name": "韩梅梅", "mobile": "13912345600"}, &created); st != http.StatusCreated {
			t.Fatalf("create lead: %d", st)
		}
		var j journeys.Journey
		if st := call(t, "POST", url+"/api/v1/journeys", admin, map[string]any{"name": "crash", "draft": map[string]any{"nodes": []map[string]any{
			{"id": "in", "type": "entry", "entry": map[string]any{"on": "manual"}, "exits": map[string]string{"next": "touch"}},
			{"id": "touch", "type": "action", "action": map[string]any{"kind": "activity", "activity": "crash.touch"}, "exits": map[string]string{"next": "hook"}},
			{"id": "hook", "type": "action", "action": map[string]any{"kind": "webhook", "url": hook.URL, "secret": "0123456789abcdef"}, "exits": map[string]string{"next": "out"}},
			{"id": "out", "type": "exit"},
		}}}, &j); st != http.StatusCreated {
			t.Fatalf("create journey: %d", st)
		}
		if st := call(t, "POST", url+"/api/v1/journeys/"+itoa(j.ID)+"/publish", admin, nil, nil); st != http.StatusOK {
			t.Fatalf("publish: %d", st)
		}
		if st := call(t, "POST", url+"/api/v1/journeys/"+itoa(j.ID)+"/enrolments", admin, map[string]any{"lead_ids": []int64{created.Lead.ID}}, nil); st != http.StatusOK {
			t.Fatalf("enrol: %d", st)
		}
		// The run is inside its webhook: kill the instance.
		select {
		case <-arrived:
		case <-time.After(60 * time.Second):
			t.Fatal("the first instance never called the webhook")
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()

		// The second instance, on the same database, takes the run over.
		s := startStackConfig(t, driver, nil, func(c *configs.Config) {
			api := c.WeCom.APIBase
			*c = cfg
			c.WeCom.APIBase, c.WeCom.OAuthBase = api, api
		})
		var runs struct {
			Runs []journeys.Run `json:"runs"`
		}
		waitUntilFor(t, 60*time.Second, "the second instance to finish the run", func() bool {
			call(t, "GET", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/runs", admin, nil, &runs)
			return len(runs.Runs) == 1 && runs.Runs[0].State == journeys.StateDone
		})
		mu.Lock()
		defer mu.Unlock()
		if len(keys) != 2 || keys[0] != keys[1] || keys[0] != journeys.ActionKey(runs.Runs[0].ID, 2) {
			t.Fatalf("webhook calls %v: want two with the same Idempotency-Key", keys)
		}
		if n := s.count("SELECT COUNT(*) FROM activities WHERE type = 'crash.touch'"); n != 1 {
			t.Fatalf("the activity was recorded %d times", n)
		}
		var st journeys.Stats
		call(t, "GET", s.url+"/api/v1/journeys/"+itoa(j.ID)+"/stats", admin, nil, &st)
		if st.Journey.Enrolled != 1 || st.Journey.Active != 0 {
			t.Fatalf("stats %+v", st.Journey)
		}
	})
}

// TestHelperJourneyInstance is the instance TestE2E_JourneyRunsSurviveAKilledInstance
// kills: it runs only as that test's child process (QIFLOW_HELPER_CONFIG
// names its configuration) and is skipped, saying so, everywhere else.
func TestHelperJourneyInstance(t *testing.T) {
	path := os.Getenv("QIFLOW_HELPER_CONFIG")
	if path == "" {
		t.Skip("the instance TestE2E_JourneyRunsSurviveAKilledInstance starts and kills; runs only as its child process")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg configs.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	a.journeys.SetLease(3 * time.Second) // its claims end soon after it dies
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".addr", []byte(a.addr()), 0o600); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}
