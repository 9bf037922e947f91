// Command qiflow is the Qiflow SCRM server for WeChat Work (WeCom).
//
//	qiflow [serve]        run the server (the default)
//	qiflow migrate        bring the database schema up to date
//	qiflow sandbox        run the fake WeCom standalone, with a control API
//	qiflow user add|list|passwd
//	qiflow bench callbacks
//	qiflow version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/qiflow/qiflow/configs"
	qsql "github.com/qiflow/qiflow/sql"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "migrate":
		err = migrate(args, stdout, stderr)
	case "sandbox":
		err = sandbox(args, stdout, stderr)
	case "user":
		err = user(args, stdout, stderr)
	case "bench":
		err = bench(args, stdout, stderr)
	case "health":
		err = health(args, stderr)
	case "version":
		fmt.Fprintln(stdout, "qiflow", version)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		fs := flag.NewFlagSet("qiflow", flag.ContinueOnError)
		fs.SetOutput(stdout)
		configs.Flags(fs)
		fmt.Fprintln(stdout, "\nflags:")
		fs.PrintDefaults()
	default:
		fmt.Fprintf(stderr, "qiflow: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the help asked for
	}
	if err != nil {
		fmt.Fprintln(stderr, "qiflow:", err)
		return 1
	}
	return 0
}

const usage = `usage: qiflow [command] [flags]

commands:
  serve      run the server (default)
  migrate    bring the database schema up to date
  sandbox    run the fake WeCom standalone, with a control API for scripting customers
  user       add | list | passwd: manage users
  bench      callbacks: drive the server with encrypted callbacks and report throughput
  health     exit 0 when the local server answers /readyz
  version    print the version

Every command takes --config FILE and the flags below; environment variables
(QIFLOW_*) and the YAML file set the same options (flags > env > file > defaults).
See configs/qiflow.example.yaml.`

// loadConfig parses the common flags and loads the configuration.
func loadConfig(name string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (configs.Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("qiflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path, visited := configs.Flags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return configs.Config{}, fs, err
	}
	p := *path
	if p == "" {
		p = os.Getenv("QIFLOW_CONFIG")
	}
	cfg, err := configs.Load(p, os.Getenv, visited())
	return cfg, fs, err
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(args []string, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Debug("configuration", "config", cfg.Dump())
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := a.start(); err != nil {
		a.shutdown(context.Background())
		return err
	}
	announce(a)
	<-ctx.Done()
	log.Info("shutting down: draining requests and in-flight deliveries")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.shutdown(sctx)
	log.Info("stopped")
	return nil
}

// announce says plainly which mode Qiflow runs in and where to look.
func announce(a *app) {
	cfg := a.cfg
	storage := "mysql"
	if cfg.DB.Driver == "sqlite" {
		storage = "sqlite at " + cfg.DB.DSN
	}
	redis := cfg.Redis.Addr
	if a.kv.Embedded() {
		redis = "in-process (nothing kept across restarts; fine for one instance)"
	}
	attrs := []any{"version", version, "listen", a.addr(), "public_url", cfg.PublicURL, "storage", storage, "redis", redis}
	if a.fake != nil {
		attrs = append(attrs, "mode", "sandbox", "sandbox_wecom", a.fake.URL(), "sandbox_corp", a.corps[len(a.corps)-1].ID,
			"try", "POST "+a.fake.URL()+"/fake/corps/"+a.corps[len(a.corps)-1].ID+"/add {\"userid\":\"zhangsan\"} plays a customer adding a staff member")
	} else {
		attrs = append(attrs, "mode", "production", "wecom_api", cfg.WeCom.APIBase, "corps", len(a.corps))
	}
	for _, c := range a.corps {
		a.log.Info("callback URL to give WeCom", "corp", c.ID, "url", cfg.PublicURL+"/wecom/callback/"+c.ID)
	}
	a.log.Info("qiflow is running", attrs...)
}

func migrate(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, stderr)
	db, err := qsql.Open(cfg.DB.Driver, cfg.DB.DSN)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	if err := qsql.Migrate(ctx, db, log); err != nil {
		return err
	}
	cur, latest, err := qsql.Version(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d (latest %d)\n", cur, latest)
	return nil
}

// health asks the local server's /readyz, for container health checks.
func health(args []string, stderr io.Writer) error {
	cfg, _, err := loadConfig("health", args, stderr, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + cfg.HTTPAddr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: HTTP %d", resp.StatusCode)
	}
	return nil
}
