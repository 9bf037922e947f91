package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiflow/qiflow/auth"
	qsql "github.com/qiflow/qiflow/sql"
)

func TestUserCommands_AddListPasswd(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("QIFLOW_DATA_DIR", dir)
	t.Setenv("QIFLOW_SANDBOX", "auto")
	runCmd := func(input string, args ...string) (string, int) {
		stdin = strings.NewReader(input)
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return out.String() + errb.String(), code
	}
	if out, code := runCmd("a good password\n", "user", "add", "--email", "Sam@Example.com", "--role", "sdr", "--staff-userid", "lisi"); code != 0 || !strings.Contains(out, "sam@example.com") {
		t.Fatalf("add: %d %s", code, out)
	}
	if out, code := runCmd("", "user", "add", "--email", "x@example.com"); code == 0 || !strings.Contains(out, "password on stdin") {
		t.Fatalf("add without a password: %d %s", code, out)
	}
	if out, code := runCmd("", "user", "list"); code != 0 || !strings.Contains(out, "sam@example.com") || !strings.Contains(out, "sdr") || !strings.Contains(out, "lisi") {
		t.Fatalf("list: %d %s", code, out)
	}
	if out, code := runCmd("another password\n", "user", "passwd", "--email", "sam@example.com"); code != 0 {
		t.Fatalf("passwd: %d %s", code, out)
	}
	db, err := qsql.Open("sqlite", filepath.Join(dir, "qiflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := auth.New(db).Login(context.Background(), "sam@example.com", "another password"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if out, code := runCmd("", "version"); code != 0 || !strings.HasPrefix(out, "qiflow ") {
		t.Fatalf("version: %s", out)
	}
	if out, code := runCmd("", "migrate"); code != 0 || !strings.Contains(out, "schema at version") {
		t.Fatalf("migrate: %s", out)
	}
	if _, code := runCmd("", "nonsense"); code != 2 {
		t.Fatal("an unknown command did not exit 2")
	}
	if out, code := runCmd("", "serve", "--db-driver", "postgres"); code == 0 || !strings.Contains(out, "db.driver") {
		t.Fatalf("bad config: %d %s", code, out)
	}
}

// Help is help (exit 0, every flag listed), and a busy port names the
// setting that moves it instead of failing obscurely or moving silently.
func TestCommands_HelpAndBusyPorts(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "-h"}} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String()+errb.String(), "-http-addr") {
			t.Errorf("%v: exit %d, output %q", args, code, out.String()+errb.String())
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t, "sqlite")
	cfg.HTTPAddr = busy.Addr().String()
	a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := a.start(); err == nil || !strings.Contains(err.Error(), "QIFLOW_HTTP_ADDR") {
		t.Fatalf("busy HTTP port: %v", err)
	}
	cfg = testConfig(t, "sqlite")
	cfg.Sandbox, cfg.SandboxAddr = "on", busy.Addr().String()
	if _, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true}); err == nil || !strings.Contains(err.Error(), "QIFLOW_SANDBOX_ADDR") {
		t.Fatalf("busy sandbox port: %v", err)
	}
}

// bench callbacks --skip names subscribers from subscribers.go; a name that
// matches none is refused rather than measuring the whole pipeline under a
// label that says otherwise.
func TestBench_SkipNamesSubscribers(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true, skipSubscribers: []string{"leads.intake", "journeys"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range a.bus.Subscribers() {
		if s.Name == "leads.intake" || s.Name == "journeys" {
			t.Errorf("%s was skipped but registered", s.Name)
		}
	}
	a.close()
	cfg = testConfig(t, "sqlite")
	if _, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true, skipSubscribers: []string{"leads.intake", "journey"}}); err == nil || !strings.Contains(err.Error(), `"journey"`) {
		t.Fatalf("a misspelt subscriber: %v", err)
	}
}
