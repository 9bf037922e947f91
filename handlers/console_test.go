package handlers

import (
	"io/fs"
	"regexp"
	"testing"

	"github.com/qiflow/qiflow/auth"
)

// Every text the console's templates and code name is in both languages:
// a missing one would show its key to the user.
func TestConsole_EveryTextIsInBothLanguages(t *testing.T) {
	keys := map[string]bool{}
	literal := regexp.MustCompile(`\.T "([a-z0-9_.]+)"`)
	files, err := fs.Glob(consoleTemplates, "console/templates/*.html")
	if err != nil || len(files) < 4 {
		t.Fatalf("templates: %v %v", files, err)
	}
	for _, f := range files {
		raw, _ := fs.ReadFile(consoleTemplates, f)
		for _, m := range literal.FindAllStringSubmatch(string(raw), -1) {
			keys[m[1]] = true
		}
	}
	for _, n := range consoleNav {
		keys[n.Key] = true
		if n.group != "" {
			keys[n.group] = true
		}
	}
	for _, k := range []string{"err.csrf", "err.forbidden", "err.internal", "err.not_member", "err.not_found", "login.bad", "login.limited", "login.missing"} {
		keys[k] = true
	}
	// Keys the templates build: statuses, code kinds, statistics groups.
	for _, st := range append(consoleFuncs["codeStatuses"].(func() []string)(), "queued", "running", "done", "failed", "cancelled", "dead", "dismissed") {
		keys["status."+st] = true
	}
	for _, m := range consoleFuncs["codeModes"].(func() []string)() {
		keys["mode."+m] = true
	}
	for _, g := range consoleFuncs["statsGroups"].(func() []string)() {
		keys["results.by."+g] = true
	}
	for _, k := range []string{"assign.kind.mql", "assign.kind.handoff", "assign.round_robin", "assign.weighted", "assign.least_loaded"} {
		keys[k] = true
	}
	for _, d := range weekdays {
		keys["day."+d] = true
	}
	for _, k := range []string{"dynamic", "add_only", "static"} {
		keys["segments.kind."+k] = true
	}
	for _, k := range []string{"draft", "published", "paused", "archived"} {
		keys["journeys.status."+k] = true
	}
	for _, k := range []string{"entry", "wait", "condition", "split", "action", "jump", "exit"} {
		keys["designer.kind."+k] = true
	}
	for _, r := range auth.Roles {
		keys["role."+string(r)] = true
	}
	if len(keys) < 30 {
		t.Fatalf("only %d keys found: the pattern no longer matches the templates", len(keys))
	}
	for k := range keys {
		m, ok := messages[k]
		if !ok || m[0] == "" || m[1] == "" {
			t.Errorf("text %q is missing in a language: %q", k, m)
		}
	}
}

func TestConsole_SignInReturnsOnlyToConsolePages(t *testing.T) {
	for next, want := range map[string]string{
		"/console/pool?owner=none": "/console/pool?owner=none",
		"":                         "/console",
		"https://evil.example/":    "/console",
		"//evil.example/console":   "/console",
		"/console\\@evil.example":  "/console",
		"/api/v1/me":               "/console",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestConsole_LanguageFromTheBrowserWhenTheUserHasNotChosen(t *testing.T) {
	for header, want := range map[string]string{"": "zh-CN", "en-US,en;q=0.9": "en", "zh-TW,en;q=0.5": "zh-CN", "fr-FR, en;q=0.5": "en", "de": "zh-CN"} {
		if got := acceptLang(header); got != want {
			t.Errorf("acceptLang(%q) = %q, want %q", header, got, want)
		}
	}
}
