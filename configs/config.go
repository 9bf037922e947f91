// Package configs holds Qiflow's configuration: the struct, its defaults, and
// loading from a YAML file, the environment and flags (flags beat env, env beats
// file, file beats defaults), with validation that names the failing key.
package configs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of one qiflow process.
type Config struct {
	HTTPAddr  string `yaml:"http_addr"`
	PublicURL string `yaml:"public_url"`
	DataDir   string `yaml:"data_dir"`
	LogLevel  string `yaml:"log_level"`

	DB    DBConfig    `yaml:"db"`
	Redis RedisConfig `yaml:"redis"`
	WeCom WeComConfig `yaml:"wecom"`
	Admin AdminConfig `yaml:"admin"`
	Inbox InboxConfig `yaml:"inbox"`
	Sync  SyncConfig  `yaml:"sync"`

	// Sandbox is "auto" (on when no corp is configured), "on" or "off".
	Sandbox string `yaml:"sandbox"`
	// SandboxAddr is where `qiflow sandbox` (the standalone fake WeCom) listens.
	SandboxAddr string `yaml:"sandbox_addr"`
	// TrustedProxies are the load balancers whose X-Forwarded-For is believed
	// (client IPs for rate limits and logs).
	TrustedProxies []string `yaml:"trusted_proxies"`
}

type DBConfig struct {
	Driver string `yaml:"driver"` // sqlite | mysql
	DSN    string `yaml:"dsn"`    // empty with sqlite: <data_dir>/qiflow.db
	// MaxOpenConns bounds MySQL connections per instance.
	MaxOpenConns int `yaml:"max_open_conns"`
}

type RedisConfig struct {
	Addr     string `yaml:"addr"` // empty: an in-process Redis
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	Prefix   string `yaml:"prefix"`
}

type WeComConfig struct {
	APIBase string `yaml:"api_base"`
	// OAuthBase is where WeCom's OAuth page is (the chat sidebar signs staff
	// in there): https://open.weixin.qq.com, or the sandbox's fake.
	OAuthBase string `yaml:"oauth_base"`
	// JSSDK is the JS-SDK the sidebar loads: "wecom" (the vendored
	// @wecom/jssdk, which needs WeCom's client around the page) or
	// "sandbox" (a stand-in that picks a sandbox customer; the sandbox's
	// default).
	JSSDK string       `yaml:"jssdk"`
	Corps []CorpConfig `yaml:"corps"`
	// Timeout bounds every call to WeCom.
	Timeout Duration `yaml:"timeout"`
}

// CorpConfig is one WeCom corp with its self-built app.
type CorpConfig struct {
	ID       string         `yaml:"id"`
	Name     string         `yaml:"name"`
	Secret   string         `yaml:"secret"`
	AgentID  int            `yaml:"agent_id"`
	Token    string         `yaml:"token"`
	AESKey   string         `yaml:"aes_key"`
	TimeZone string         `yaml:"time_zone"`
	Calendar CalendarConfig `yaml:"calendar"`
	// NotifyOnLoss sends a staff member an app message when a customer deletes them.
	NotifyOnLoss bool `yaml:"notify_on_loss"`
	// Successors name, by department id, who takes over the customers and
	// groups of staff who leave, when their live code names no successor.
	Successors map[int64]string `yaml:"successors"`
}

type AdminConfig struct {
	Email    string `yaml:"email"`
	Password string `yaml:"password"`
}

type InboxConfig struct {
	Retention   Duration `yaml:"retention"`
	MaxAttempts int      `yaml:"max_attempts"`
	Lease       Duration `yaml:"lease"`
	Workers     int      `yaml:"workers"`
	FastWorkers int      `yaml:"fast_workers"`
	// BurstWorkers is how many normal-lane workers keep running while a
	// burst of callbacks waits to be stored (0: workers/32, at least 2).
	BurstWorkers int `yaml:"burst_workers"`
}

type SyncConfig struct {
	// Reconcile is the cron schedule of the full directory reconciliation.
	Reconcile string `yaml:"reconcile"`
}

// Duration reads "30s", "72h" from YAML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q", n.Value)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Default returns the configuration with nothing set.
func Default() Config {
	return Config{
		HTTPAddr: "127.0.0.1:8080",
		DataDir:  "./data",
		LogLevel: "info",
		DB:       DBConfig{Driver: "sqlite", MaxOpenConns: 32},
		Redis:    RedisConfig{Prefix: "qiflow:"},
		WeCom:    WeComConfig{APIBase: "https://qyapi.weixin.qq.com", OAuthBase: "https://open.weixin.qq.com", JSSDK: "wecom", Timeout: Duration{10 * time.Second}},
		Inbox: InboxConfig{
			Retention:   Duration{7 * 24 * time.Hour},
			MaxAttempts: 8,
			Lease:       Duration{30 * time.Second},
			Workers:     64,
			FastWorkers: 32,
		},
		Sync:           SyncConfig{Reconcile: "17 3 * * *"},
		Sandbox:        "auto",
		SandboxAddr:    "127.0.0.1:8090",
		TrustedProxies: []string{"127.0.0.1/8", "::1/128"},
	}
}

// Load builds the configuration from defaults, the YAML file at path (if any),
// the environment, and the flags already parsed into flags.
func Load(path string, env func(string) string, flags map[string]string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if env == nil {
		env = os.Getenv
	}
	for _, o := range options(&cfg) {
		if v := env(o.Env); v != "" {
			if err := o.set(v); err != nil {
				return cfg, &FieldError{Key: o.Key, Msg: err.Error()}
			}
		}
	}
	if err := applyEnvCorp(&cfg, env); err != nil {
		return cfg, err
	}
	for _, o := range options(&cfg) {
		if v, ok := flags[o.Flag]; ok {
			if err := o.set(v); err != nil {
				return cfg, &FieldError{Key: o.Key, Msg: err.Error()}
			}
		}
	}
	cfg.fillDerived()
	return cfg, cfg.Validate()
}

// applyEnvCorp adds (or overrides) the one corp configured by QIFLOW_WECOM_*.
func applyEnvCorp(cfg *Config, env func(string) string) error {
	id := env("QIFLOW_WECOM_CORP_ID")
	if id == "" {
		return nil
	}
	c := CorpConfig{ID: id}
	idx := -1
	for i := range cfg.WeCom.Corps {
		if cfg.WeCom.Corps[i].ID == id {
			c, idx = cfg.WeCom.Corps[i], i
		}
	}
	set := func(dst *string, key string) {
		if v := env(key); v != "" {
			*dst = v
		}
	}
	set(&c.Secret, "QIFLOW_WECOM_SECRET")
	set(&c.Token, "QIFLOW_WECOM_TOKEN")
	set(&c.AESKey, "QIFLOW_WECOM_AES_KEY")
	set(&c.TimeZone, "QIFLOW_WECOM_TIME_ZONE")
	if v := env("QIFLOW_WECOM_AGENT_ID"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
			return &FieldError{Key: "wecom.corps[].agent_id", Msg: "QIFLOW_WECOM_AGENT_ID must be a number"}
		}
		c.AgentID = n
	}
	if idx >= 0 {
		cfg.WeCom.Corps[idx] = c
	} else {
		cfg.WeCom.Corps = append(cfg.WeCom.Corps, c)
	}
	return nil
}

func (c *Config) fillDerived() {
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.DB.Driver == "sqlite" && c.DB.DSN == "" {
		c.DB.DSN = filepath.Join(c.DataDir, "qiflow.db")
	}
	for i := range c.WeCom.Corps {
		if c.WeCom.Corps[i].TimeZone == "" {
			c.WeCom.Corps[i].TimeZone = "Asia/Shanghai"
		}
		if c.WeCom.Corps[i].Name == "" {
			c.WeCom.Corps[i].Name = c.WeCom.Corps[i].ID
		}
	}
}

// SandboxOn says whether the in-process fake WeCom runs: asked for, or no corp configured.
func (c *Config) SandboxOn() bool {
	switch c.Sandbox {
	case "on":
		return true
	case "off":
		return false
	}
	return len(c.WeCom.Corps) == 0
}

// FieldError names the configuration key that is wrong.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config %s: %s", e.Key, e.Msg) }

// Validate checks every key and returns the first error, naming its key.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return &FieldError{"http_addr", "must be host:port"}
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{"public_url", "must be an absolute http(s) URL"}
	}
	if c.DataDir == "" {
		return &FieldError{"data_dir", "must not be empty"}
	}
	switch c.DB.Driver {
	case "sqlite":
	case "mysql":
		if c.DB.DSN == "" {
			return &FieldError{"db.dsn", "is required with db.driver mysql"}
		}
	default:
		return &FieldError{"db.driver", "must be sqlite or mysql"}
	}
	if c.DB.MaxOpenConns < 1 {
		return &FieldError{"db.max_open_conns", "must be at least 1"}
	}
	switch c.Sandbox {
	case "auto", "on", "off":
	default:
		return &FieldError{"sandbox", "must be auto, on or off"}
	}
	if u, err := url.Parse(c.WeCom.APIBase); err != nil || u.Host == "" {
		return &FieldError{"wecom.api_base", "must be an absolute URL"}
	}
	if u, err := url.Parse(c.WeCom.OAuthBase); err != nil || u.Host == "" {
		return &FieldError{"wecom.oauth_base", "must be an absolute URL"}
	}
	if c.WeCom.JSSDK != "wecom" && c.WeCom.JSSDK != "sandbox" {
		return &FieldError{"wecom.jssdk", "must be wecom or sandbox"}
	}
	if c.WeCom.Timeout.Duration <= 0 {
		return &FieldError{"wecom.timeout", "must be positive"}
	}
	if c.Inbox.MaxAttempts < 1 {
		return &FieldError{"inbox.max_attempts", "must be at least 1"}
	}
	if c.Inbox.Lease.Duration < time.Second {
		return &FieldError{"inbox.lease", "must be at least 1s"}
	}
	if c.Inbox.Retention.Duration < time.Hour {
		return &FieldError{"inbox.retention", "must be at least 1h"}
	}
	if c.Inbox.Workers < 1 || c.Inbox.FastWorkers < 1 {
		return &FieldError{"inbox.workers", "workers and fast_workers must be at least 1"}
	}
	if c.Inbox.BurstWorkers < 0 || c.Inbox.BurstWorkers > c.Inbox.Workers {
		return &FieldError{"inbox.burst_workers", "is 0 (automatic) or between 1 and inbox.workers"}
	}
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return &FieldError{fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP or a CIDR"}
		}
	}
	if c.Admin.Email != "" && !strings.Contains(c.Admin.Email, "@") {
		return &FieldError{"admin.email", "must be an email address"}
	}
	if c.Admin.Email != "" && len(c.Admin.Password) < 8 {
		return &FieldError{"admin.password", "must be at least 8 characters when admin.email is set"}
	}
	seen := map[string]bool{}
	for i, corp := range c.WeCom.Corps {
		key := func(f string) string { return fmt.Sprintf("wecom.corps[%d].%s", i, f) }
		if corp.ID == "" {
			return &FieldError{key("id"), "is required"}
		}
		if seen[corp.ID] {
			return &FieldError{key("id"), "duplicate corp id " + corp.ID}
		}
		seen[corp.ID] = true
		if corp.Secret == "" {
			return &FieldError{key("secret"), "is required"}
		}
		if corp.Token == "" {
			return &FieldError{key("token"), "is required"}
		}
		if err := checkAESKey(corp.AESKey); err != nil {
			return &FieldError{key("aes_key"), err.Error()}
		}
		if _, err := time.LoadLocation(corp.TimeZone); err != nil {
			return &FieldError{key("time_zone"), "unknown time zone " + corp.TimeZone}
		}
		if _, err := corp.Calendar.Compile(corp.TimeZone); err != nil {
			return &FieldError{key("calendar"), err.Error()}
		}
	}
	return nil
}

func checkAESKey(k string) error {
	if len(k) != 43 {
		return errors.New("must be the 43-character EncodingAESKey")
	}
	b, err := base64.StdEncoding.DecodeString(k + "=")
	if err != nil || len(b) != 32 {
		return errors.New("is not valid base64 for a 32-byte key")
	}
	return nil
}

// Corp returns the configured corp with that id.
func (c *Config) Corp(id string) (CorpConfig, bool) {
	for _, corp := range c.WeCom.Corps {
		if corp.ID == id {
			return corp, true
		}
	}
	return CorpConfig{}, false
}

// Dump renders the effective configuration as YAML with every secret masked.
func (c Config) Dump() string {
	masked := c
	masked.WeCom.Corps = append([]CorpConfig(nil), c.WeCom.Corps...)
	for i := range masked.WeCom.Corps {
		masked.WeCom.Corps[i].Secret = Mask(masked.WeCom.Corps[i].Secret)
		masked.WeCom.Corps[i].Token = Mask(masked.WeCom.Corps[i].Token)
		masked.WeCom.Corps[i].AESKey = Mask(masked.WeCom.Corps[i].AESKey)
	}
	masked.Redis.Password = Mask(c.Redis.Password)
	masked.Admin.Password = Mask(c.Admin.Password)
	masked.DB.DSN = MaskDSN(c.DB.DSN)
	b, _ := yaml.Marshal(masked)
	return string(b)
}

// Mask hides a secret but keeps a short fingerprint so two values can be told apart.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	return "***" // set; nothing of it, not even a fingerprint one could test guesses against
}

// MaskDSN hides the password part of user:password@... DSNs.
func MaskDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return dsn
	}
	userinfo := dsn[:at]
	if colon := strings.Index(userinfo, ":"); colon >= 0 {
		return userinfo[:colon] + ":***" + dsn[at:]
	}
	return dsn
}
