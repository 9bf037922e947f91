package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/qiflow/qiflow/jobs"
	"github.com/qiflow/qiflow/wecom"
)

var callbacksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "qiflow_callbacks_total",
	Help: "WeCom callbacks by result: accepted, duplicate, or rejected_<reason>.",
}, []string{"result"})

var ackSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "qiflow_callback_ack_seconds",
	Help:    "Time to answer an accepted callback (stored durably before the 200).",
	Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
})

// maxCallbackBody: WeCom's callbacks are a few KB; anything over 1 MiB is refused.
const maxCallbackBody = 1 << 20

// corp finds the corp a callback is for: the path names it, or, on the bare
// path, the only configured corp.
func (s *Server) corp(c *gin.Context) (Corp, bool) {
	id := c.Param("corp_id")
	if id == "" {
		if len(s.corps) == 1 {
			for _, corp := range s.corps {
				return corp, true
			}
		}
		s.reject(c, http.StatusNotFound, "unknown_corp", "callback path must name the corp: /wecom/callback/{corp_id}", nil)
		return Corp{}, false
	}
	corp, ok := s.corps[id]
	if !ok {
		s.reject(c, http.StatusNotFound, "unknown_corp", "no corp "+id+" is configured", nil)
		return Corp{}, false
	}
	return corp, true
}

// reject answers a bad callback with its status and logs it once, without a stack.
func (s *Server) reject(c *gin.Context, status int, reason, msg string, err error) {
	callbacksTotal.WithLabelValues("rejected_" + reason).Inc()
	attrs := []any{"reason", reason, "status", status, "corp", c.Param("corp_id"), "remote", c.ClientIP()}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.logger(c).Warn("callback rejected", attrs...)
	fail(c, status, reason, msg, nil)
}

// verifyURL answers WeCom's GET URL verification with the bare decrypted echostr.
func (s *Server) verifyURL(c *gin.Context) {
	corp, ok := s.corp(c)
	if !ok {
		return
	}
	q := c.Request.URL.Query()
	plain, err := corp.Crypto.VerifyURL(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
	if err != nil {
		s.rejectCrypto(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", plain)
}

func (s *Server) rejectCrypto(c *gin.Context, err error) {
	switch {
	case errors.Is(err, wecom.ErrBadSignature):
		s.reject(c, http.StatusUnauthorized, "bad_signature", "msg_signature does not match", err)
	case errors.Is(err, wecom.ErrReceiver):
		s.reject(c, http.StatusBadRequest, "wrong_receiver", "message is for another corp", err)
	case errors.Is(err, wecom.ErrMalformed):
		s.reject(c, http.StatusBadRequest, "malformed", "malformed message", err)
	default:
		s.reject(c, http.StatusBadRequest, "undecryptable", "cannot decrypt message", err)
	}
}

// receive checks, decrypts and parses a callback, and stores it on the bus
// under its dedup key before answering 200. Processing happens later, in the
// dispatcher; a retry or replay of the same event stores nothing new.
func (s *Server) receive(c *gin.Context) {
	start := time.Now()
	corp, ok := s.corp(c)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxCallbackBody+1))
	if err != nil {
		s.reject(c, http.StatusBadRequest, "unreadable", "cannot read body", err)
		return
	}
	if len(body) > maxCallbackBody {
		s.reject(c, http.StatusRequestEntityTooLarge, "too_large", "body exceeds 1 MiB", nil)
		return
	}
	q := c.Request.URL.Query()
	plain, err := corp.Crypto.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil {
		s.rejectCrypto(c, err)
		return
	}
	ev, err := wecom.ParseEvent(plain)
	if err != nil {
		s.reject(c, http.StatusBadRequest, "malformed", "malformed event", err)
		return
	}
	// WeCom waits 5 s for our answer; leave room so a slow store answers 503
	// (WeCom retries) rather than a silent timeout.
	ctx, cancel := context.WithTimeout(c.Request.Context(), 4*time.Second)
	defer cancel()
	dup, err := s.d.Bus.Receive(ctx, jobs.Incoming{CorpID: corp.ID, Source: jobs.SourceWeCom, Type: wecom.Type(ev), Subject: wecom.Subject(ev),
		DedupKey: ev.DedupKey(), Payload: plain, OccurredAt: ev.Head().Time(), Data: ev})
	if err != nil {
		callbacksTotal.WithLabelValues("store_failed").Inc()
		s.logger(c).Error("callback not stored; WeCom will retry", "corp", corp.ID, "type", wecom.Type(ev), "err", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", "try again", nil)
		return
	}
	if dup {
		callbacksTotal.WithLabelValues("duplicate").Inc()
	} else {
		callbacksTotal.WithLabelValues("accepted").Inc()
	}
	ackSeconds.Observe(time.Since(start).Seconds())
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("success"))
}
