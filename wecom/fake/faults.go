package fake

import (
	"net/http"
	"time"
)

// Fault is a misbehaviour to inject into the next calls.
type Fault struct {
	// Endpoint limits the fault to one endpoint ("" = every endpoint, gettoken included).
	Endpoint string `json:"endpoint,omitempty"`
	// Count is how many calls the fault hits (0 = until cleared).
	Count int `json:"count,omitempty"`
	// Latency delays the answer.
	Latency time.Duration `json:"latency,omitempty"`
	// ErrCode answers with this errcode (45009 bursts, -1 busy, ...).
	ErrCode int64 `json:"errcode,omitempty"`
	// Status answers with this HTTP status (5xx).
	Status int `json:"status,omitempty"`
	// Drop closes the connection without an answer.
	Drop bool `json:"drop,omitempty"`
	// Gate holds the call until it is closed (tests that need a call to be
	// in flight while something else happens, without guessing durations).
	Gate <-chan struct{} `json:"-"`
}

type faults struct {
	list  []*Fault
	calls map[string]int // "corp endpoint" → calls that reached the world
}

func (fs *faults) count(corp, endpoint string) {
	if fs.calls == nil {
		fs.calls = map[string]int{}
	}
	fs.calls[corp+" "+endpoint]++
}

// Inject adds a fault.
func (f *Fake) Inject(ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := ft
	f.faults.list = append(f.faults.list, &x)
}

// Held is how many calls a Gate fault is holding right now.
func (f *Fake) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// ClearFaults removes every fault.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults.list = nil
}

// InvalidateTokens revokes every access token early, as WeCom may.
func (f *Fake) InvalidateTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]tokenInfo{}
}

// applyFaults applies the first matching fault; it reports whether the
// request was answered (or dropped) by the fault.
func (f *Fake) applyFaults(w http.ResponseWriter, endpoint string) bool {
	f.mu.Lock()
	var hit *Fault
	for i, ft := range f.faults.list {
		if ft.Endpoint != "" && ft.Endpoint != endpoint {
			continue
		}
		c := *ft
		hit = &c
		if ft.Count > 0 {
			ft.Count--
			if ft.Count == 0 {
				f.faults.list = append(f.faults.list[:i], f.faults.list[i+1:]...)
			}
		}
		break
	}
	f.mu.Unlock()
	if hit == nil {
		return false
	}
	if hit.Gate != nil {
		f.mu.Lock()
		f.held++
		f.mu.Unlock()
		<-hit.Gate
		f.mu.Lock()
		f.held--
		f.mu.Unlock()
	}
	if hit.Latency > 0 {
		time.Sleep(hit.Latency)
	}
	switch {
	case hit.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case hit.Status != 0:
		w.WriteHeader(hit.Status)
		return true
	case hit.ErrCode != 0:
		writeErr(w, errf(hit.ErrCode, "injected fault"))
		return true
	}
	return false
}
