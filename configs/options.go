package configs

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// option is one scalar setting reachable from the environment and a flag.
// The table below is the single place that maps keys, env names and flags.
type option struct {
	Key   string // YAML path, used in error messages
	Env   string
	Flag  string
	Usage string
	set   func(string) error
}

func str(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

func integer(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", v)
		}
		*p = n
		return nil
	}
}

func list(p *[]string) func(string) error {
	return func(v string) error {
		*p = nil
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				*p = append(*p, x)
			}
		}
		return nil
	}
}

func duration(p *Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("must be a duration such as 30s, got %q", v)
		}
		p.Duration = d
		return nil
	}
}

func options(c *Config) []option {
	return []option{
		{Key: "http_addr", Env: "QIFLOW_HTTP_ADDR", Flag: "http-addr", Usage: "address the HTTP server listens on", set: str(&c.HTTPAddr)},
		{Key: "public_url", Env: "QIFLOW_PUBLIC_URL", Flag: "public-url", Usage: "HTTPS address users and WeCom reach", set: str(&c.PublicURL)},
		{Key: "data_dir", Env: "QIFLOW_DATA_DIR", Flag: "data-dir", Usage: "directory for SQLite, the sandbox world and generated files", set: str(&c.DataDir)},
		{Key: "log_level", Env: "QIFLOW_LOG_LEVEL", Flag: "log-level", Usage: "debug, info, warn or error", set: str(&c.LogLevel)},
		{Key: "db.driver", Env: "QIFLOW_DB_DRIVER", Flag: "db-driver", Usage: "sqlite or mysql", set: str(&c.DB.Driver)},
		{Key: "db.dsn", Env: "QIFLOW_DB_DSN", Flag: "db-dsn", Usage: "database DSN", set: str(&c.DB.DSN)},
		{Key: "db.max_open_conns", Env: "QIFLOW_DB_MAX_OPEN_CONNS", set: integer(&c.DB.MaxOpenConns)},
		{Key: "redis.addr", Env: "QIFLOW_REDIS_ADDR", Flag: "redis-addr", Usage: "Redis host:port; empty runs an in-process Redis", set: str(&c.Redis.Addr)},
		{Key: "redis.password", Env: "QIFLOW_REDIS_PASSWORD", set: str(&c.Redis.Password)},
		{Key: "redis.db", Env: "QIFLOW_REDIS_DB", Flag: "redis-db", Usage: "Redis database number (default 0)", set: integer(&c.Redis.DB)},
		{Key: "redis.prefix", Env: "QIFLOW_REDIS_PREFIX", set: str(&c.Redis.Prefix)},
		{Key: "wecom.api_base", Env: "QIFLOW_WECOM_API_BASE", Flag: "wecom-api-base", Usage: "WeCom API base URL for every corp", set: str(&c.WeCom.APIBase)},
		{Key: "wecom.timeout", Env: "QIFLOW_WECOM_TIMEOUT", set: duration(&c.WeCom.Timeout)},
		{Key: "wecom.oauth_base", Env: "QIFLOW_WECOM_OAUTH_BASE", set: str(&c.WeCom.OAuthBase)},
		{Key: "wecom.jssdk", Env: "QIFLOW_WECOM_JSSDK", set: str(&c.WeCom.JSSDK)},
		{Key: "admin.email", Env: "QIFLOW_ADMIN_EMAIL", set: str(&c.Admin.Email)},
		{Key: "admin.password", Env: "QIFLOW_ADMIN_PASSWORD", set: str(&c.Admin.Password)},
		{Key: "inbox.retention", Env: "QIFLOW_INBOX_RETENTION", set: duration(&c.Inbox.Retention)},
		{Key: "inbox.max_attempts", Env: "QIFLOW_INBOX_MAX_ATTEMPTS", set: integer(&c.Inbox.MaxAttempts)},
		{Key: "inbox.lease", Env: "QIFLOW_INBOX_LEASE", set: duration(&c.Inbox.Lease)},
		{Key: "inbox.workers", Env: "QIFLOW_INBOX_WORKERS", set: integer(&c.Inbox.Workers)},
		{Key: "inbox.fast_workers", Env: "QIFLOW_INBOX_FAST_WORKERS", set: integer(&c.Inbox.FastWorkers)},
		{Key: "inbox.burst_workers", Env: "QIFLOW_INBOX_BURST_WORKERS", set: integer(&c.Inbox.BurstWorkers)},
		{Key: "sync.reconcile", Env: "QIFLOW_SYNC_RECONCILE", set: str(&c.Sync.Reconcile)},
		{Key: "sandbox", Env: "QIFLOW_SANDBOX", Flag: "sandbox", Usage: "auto (on when no corp is configured), on or off", set: str(&c.Sandbox)},
		{Key: "trusted_proxies", Env: "QIFLOW_TRUSTED_PROXIES", Usage: "comma-separated IPs/CIDRs of load balancers", set: list(&c.TrustedProxies)},
		{Key: "sandbox_addr", Env: "QIFLOW_SANDBOX_ADDR", Flag: "sandbox-addr", Usage: "listen address of the sandbox (the fake WeCom), in process or as qiflow sandbox", set: str(&c.SandboxAddr)},
	}
}

// Flags registers the command-line flags on fs. After fs.Parse, Visited
// returns only the flags the user actually gave, so that unset flags don't
// override the environment.
func Flags(fs *flag.FlagSet) (configPath *string, visited func() map[string]string) {
	var scratch Config
	configPath = fs.String("config", "", "YAML config file (env QIFLOW_CONFIG)")
	for _, o := range options(&scratch) {
		if o.Flag == "" {
			continue
		}
		usage := o.Usage
		if o.Env != "" {
			usage += " (env " + o.Env + ")"
		}
		fs.String(o.Flag, "", usage)
	}
	return configPath, func() map[string]string {
		out := map[string]string{}
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" {
				out[f.Name] = f.Value.String()
			}
		})
		return out
	}
}
