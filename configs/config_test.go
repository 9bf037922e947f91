package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoad_FlagsBeatEnvBeatFileBeatDefaults(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "q.yaml")
	os.WriteFile(file, []byte("http_addr: 127.0.0.1:7000\ndata_dir: /from/file\nlog_level: warn\ninbox:\n  lease: 45s\n"), 0o600)
	cfg, err := Load(file, envOf(map[string]string{"QIFLOW_DATA_DIR": "/from/env", "QIFLOW_HTTP_ADDR": "127.0.0.1:7001"}),
		map[string]string{"http-addr": "127.0.0.1:7002"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:7002" || cfg.DataDir != "/from/env" || cfg.LogLevel != "warn" || cfg.Inbox.Lease.Duration != 45*time.Second || cfg.Inbox.MaxAttempts != 8 {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if cfg.PublicURL != "http://127.0.0.1:7002" || cfg.DB.DSN != "/from/env/qiflow.db" {
		t.Fatalf("derived values: %s %s", cfg.PublicURL, cfg.DB.DSN)
	}
}

func TestLoad_ErrorsNameTheKey(t *testing.T) {
	cases := map[string]map[string]string{
		"db.driver":                {"QIFLOW_DB_DRIVER": "postgres"},
		"db.dsn":                   {"QIFLOW_DB_DRIVER": "mysql"},
		"public_url":               {"QIFLOW_PUBLIC_URL": "not a url"},
		"inbox.max_attempts":       {"QIFLOW_INBOX_MAX_ATTEMPTS": "zero"},
		"inbox.burst_workers":      {"QIFLOW_INBOX_WORKERS": "8", "QIFLOW_INBOX_BURST_WORKERS": "9"},
		"wecom.corps[0].aes_key":   {"QIFLOW_WECOM_CORP_ID": "ww1", "QIFLOW_WECOM_SECRET": "s", "QIFLOW_WECOM_TOKEN": "t", "QIFLOW_WECOM_AES_KEY": "short"},
		"wecom.corps[].agent_id":   {"QIFLOW_WECOM_CORP_ID": "ww1", "QIFLOW_WECOM_AGENT_ID": "x"},
		"wecom.corps[0].secret":    {"QIFLOW_WECOM_CORP_ID": "ww1"},
		"admin.password":           {"QIFLOW_ADMIN_EMAIL": "a@b.c", "QIFLOW_ADMIN_PASSWORD": "short"},
		"wecom.corps[0].time_zone": {"QIFLOW_WECOM_CORP_ID": "ww1", "QIFLOW_WECOM_SECRET": "s", "QIFLOW_WECOM_TOKEN": "t", "QIFLOW_WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "QIFLOW_WECOM_TIME_ZONE": "Mars/Olympus"},
	}
	for key, env := range cases {
		_, err := Load("", envOf(env), nil)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Key != key {
			t.Errorf("%s: got %v", key, err)
		}
	}
}

func TestLoad_EnvCorpAndSandbox(t *testing.T) {
	cfg, err := Load("", envOf(map[string]string{}), nil)
	if err != nil || !cfg.SandboxOn() {
		t.Fatalf("nothing configured should run the sandbox: %v", err)
	}
	cfg, err = Load("", envOf(map[string]string{"QIFLOW_WECOM_CORP_ID": "ww1", "QIFLOW_WECOM_SECRET": "topsecret", "QIFLOW_WECOM_AGENT_ID": "1000002",
		"QIFLOW_WECOM_TOKEN": "tok", "QIFLOW_WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SandboxOn() || len(cfg.WeCom.Corps) != 1 || cfg.WeCom.Corps[0].AgentID != 1000002 || cfg.WeCom.Corps[0].TimeZone != "Asia/Shanghai" {
		t.Fatalf("env corp: %+v", cfg.WeCom.Corps)
	}
	dump := cfg.Dump()
	if strings.Contains(dump, "topsecret") || strings.Contains(dump, "jWmYm7qr") {
		t.Fatalf("dump leaks a secret:\n%s", dump)
	}
}

func TestExampleFileLoads(t *testing.T) {
	if _, err := Load("qiflow.example.yaml", envOf(nil), nil); err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
}

func TestCalendar_HolidaysAndMakeupWorkdays(t *testing.T) {
	cal, err := CalendarConfig{Holidays: []string{"2026-10-01"}, Workdays: []string{"2026-09-27"}}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02 15:04", s, sh); return t }
	cases := []struct {
		when    string
		working bool
	}{
		{"2026-09-30 10:00", true},  // Wednesday
		{"2026-10-01 10:00", false}, // National Day, a Thursday
		{"2026-09-27 10:00", true},  // Sunday, make-up workday
		{"2026-09-26 10:00", false}, // Saturday
		{"2026-09-30 08:59", false}, // before hours
		{"2026-09-30 18:00", false}, // end is exclusive
	}
	for _, c := range cases {
		if got := cal.IsWorkingTime(at(c.when)); got != c.working {
			t.Errorf("%s: working=%v", c.when, got)
		}
	}
	// Day keys are local: 23:30 UTC is the next day in Shanghai.
	if k := cal.DayKey(time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC)); k != "2026-11-24" {
		t.Fatalf("day key %s", k)
	}
	if _, err := (CalendarConfig{WorkHours: map[string][]string{"mon": {"09:00-12:00", "11:00-13:00"}}}).Compile("UTC"); err == nil {
		t.Fatal("overlapping spans accepted")
	}
}

// The configuration dump (debug log) shows that a secret is set, nothing of it.
func TestDump_ShowsNoPartOfASecret(t *testing.T) {
	c := Default()
	secret := "s3cr3t-abcdefghijklmnop"
	c.WeCom.Corps = []CorpConfig{{ID: "ww1", Secret: secret, Token: secret, AESKey: secret}}
	c.Redis.Password, c.Admin.Password = secret, secret
	c.DB.DSN = "root:" + secret + "@tcp(db:3306)/qiflow"
	out := c.Dump()
	for i := 0; i+4 <= len(secret); i++ {
		if strings.Contains(out, secret[i:i+4]) {
			t.Fatalf("the dump shows %q of a secret:\n%s", secret[i:i+4], out)
		}
	}
}

func TestCalendar_WorkdaysAfterSkipsWeekendsAndHolidays(t *testing.T) {
	cal, err := CalendarConfig{Holidays: []string{"2026-10-01", "2026-10-02"}, Workdays: []string{"2026-10-10"}}.Compile("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02 15:04", s, sh); return t }
	for _, c := range []struct {
		from string
		n    int
		want string
	}{
		{"2026-11-23 15:00", 1, "2026-11-25 00:00"}, // Monday → the end of Tuesday
		{"2026-11-27 10:00", 1, "2026-12-01 00:00"}, // Friday → skips the weekend
		{"2026-11-28 10:00", 2, "2026-12-02 00:00"}, // from a Saturday: Monday and Tuesday
		{"2026-09-30 10:00", 1, "2026-10-06 00:00"}, // Wednesday → skips the holidays and the weekend
		{"2026-10-09 10:00", 1, "2026-10-11 00:00"}, // Friday → the make-up Saturday counts
	} {
		if got := cal.WorkdaysAfter(at(c.from), c.n); !got.Equal(at(c.want)) {
			t.Errorf("%s + %d workdays = %s, want %s", c.from, c.n, got.In(sh).Format("2006-01-02 15:04"), c.want)
		}
	}
}
