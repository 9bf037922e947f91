package handlers

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestErrorsHaveOneShape(t *testing.T) {
	r, _ := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/nope", http.StatusNotFound, "not_found"},
		{"GET", "/api/v1/me", http.StatusUnauthorized, "unauthenticated"},
		{"POST", "/api/v1/auth/login", http.StatusBadRequest, "bad_request"},
		{"POST", "/wecom/callback/wwunknown", http.StatusNotFound, "unknown_corp"},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		var body errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body.String())
		}
		if w.Header().Get("X-Request-ID") == "" {
			t.Errorf("%s %s: no request id", tc.method, tc.path)
		}
	}
}

func TestIPLimiter_BurstThenRefuse(t *testing.T) {
	l := &ipLimiter{}
	allowed := 0
	for i := 0; i < 100; i++ {
		if l.allow("10.0.0.1") {
			allowed++
		}
	}
	if allowed < 30 || allowed > 32 {
		t.Fatalf("%d of 100 immediate requests allowed, want the burst of 30", allowed)
	}
	if !l.allow("10.0.0.2") {
		t.Fatal("another address was limited")
	}
}
