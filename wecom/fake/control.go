package fake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// controlRoutes is the sandbox's control API: script customers for demos and
// load tests, read the world, inject faults. Every route answers JSON.
func (f *Fake) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /fake/corps/{corp}/scan", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			ConfigID string   `json:"config_id"`
			Customer Customer `json:"customer"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return f.Scan(r.Context(), corp, req.ConfigID, req.Customer)
	}))
	// A staff member confirms the mass messages waiting for them (all, or
	// ?msgid= one), as they would in the WeCom app.
	mux.HandleFunc("POST /fake/corps/{corp}/staff/{userid}/confirm-groupmsgs", f.ctl(func(r *http.Request, corp string) (any, error) {
		user := r.PathValue("userid")
		var sent []GroupMsgSend
		for _, m := range f.PendingGroupMsgs(corp, user) {
			if id := r.URL.Query().Get("msgid"); id != "" && id != m.ID {
				continue
			}
			got, err := f.ConfirmGroupMsg(corp, m.ID, user)
			if err != nil {
				return nil, err
			}
			sent = append(sent, got...)
		}
		return map[string]any{"sends": sent}, nil
	}))
	mux.HandleFunc("GET /fake/corps/{corp}/staff/{userid}/groupmsgs", f.ctl(func(r *http.Request, corp string) (any, error) {
		return map[string]any{"pending": f.PendingGroupMsgs(corp, r.PathValue("userid"))}, nil
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/oauth-user", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			UserID string `json:"userid"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		f.SetOAuthUser(corp, req.UserID)
		return map[string]string{"oauth_user": req.UserID}, nil
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/add", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			UserID   string   `json:"userid"`
			Customer Customer `json:"customer"`
			AddWay   int      `json:"add_way"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return f.Add(r.Context(), corp, req.UserID, req.Customer, req.AddWay)
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/delete-follow", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			ExternalUserID string `json:"external_userid"`
			UserID         string `json:"userid"`
			By             string `json:"by"` // customer | staff
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		if req.By == "staff" {
			return f.StaffDeletesCustomer(r.Context(), corp, req.UserID, req.ExternalUserID)
		}
		return f.CustomerDeletesStaff(r.Context(), corp, req.ExternalUserID, req.UserID)
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/transfer", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			ExternalUserID string `json:"external_userid"`
			From           string `json:"from"`
			To             string `json:"to"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return map[string]bool{"ok": true}, f.Transfer(r.Context(), corp, req.ExternalUserID, req.From, req.To)
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/groups", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			Owner string `json:"owner"`
			Name  string `json:"name"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		id, d, err := f.CreateGroup(r.Context(), corp, req.Owner, req.Name)
		return map[string]any{"chat_id": id, "callback": d}, err
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/join", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			ConfigID string   `json:"config_id"`
			Customer Customer `json:"customer"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return f.JoinGroup(r.Context(), corp, req.ConfigID, req.Customer)
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/leave", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			ChatID         string `json:"chat_id"`
			ExternalUserID string `json:"external_userid"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return f.LeaveGroup(r.Context(), corp, req.ChatID, req.ExternalUserID)
	}))
	mux.HandleFunc("POST /fake/corps/{corp}/tags", f.ctl(func(r *http.Request, corp string) (any, error) {
		var req struct {
			GroupName string `json:"group_name"`
			TagName   string `json:"tag_name"`
		}
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		id, d, err := f.AdminAddTag(r.Context(), corp, req.GroupName, req.TagName)
		return map[string]any{"tag_id": id, "callback": d}, err
	}))
	mux.HandleFunc("GET /fake/corps/{corp}/messages", f.ctl(func(r *http.Request, corp string) (any, error) {
		return f.Messages(corp), nil
	}))
	mux.HandleFunc("GET /fake/corps/{corp}/world", f.ctl(func(r *http.Request, corp string) (any, error) {
		var out any
		f.Inspect(corp, func(c *Corp) {
			b, _ := json.Marshal(c)
			var m map[string]any
			json.Unmarshal(b, &m)
			delete(m, "secret")
			delete(m, "aes_key")
			delete(m, "token")
			out = m
		})
		if out == nil {
			return nil, fmt.Errorf("%w: corp %s", ErrNotFound, corp)
		}
		return out, nil
	}))
	mux.HandleFunc("POST /fake/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Fault
			LatencyMS int `json:"latency_ms"`
		}
		if err := readJSON(r, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.LatencyMS > 0 {
			req.Fault.Latency = time.Duration(req.LatencyMS) * time.Millisecond
		}
		f.Inject(req.Fault)
		writeJSON(w, map[string]bool{"ok": true})
	})
	mux.HandleFunc("DELETE /fake/faults", func(w http.ResponseWriter, r *http.Request) {
		f.ClearFaults()
		writeJSON(w, map[string]bool{"ok": true})
	})
	mux.HandleFunc("POST /fake/tokens/invalidate", func(w http.ResponseWriter, r *http.Request) {
		f.InvalidateTokens()
		writeJSON(w, map[string]bool{"ok": true})
	})
	// The qr_code URLs the fake hands out point here.
	// Like WeCom's, they are images: a PNG QR (what a landing page shows),
	// encoding where to play a customer scanning it; ?format=text explains.
	mux.HandleFunc("GET /fake/qr/{corp}/{config}", func(w http.ResponseWriter, r *http.Request) {
		corp, config := r.PathValue("corp"), r.PathValue("config")
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "sandbox QR code for %s in %s: POST /fake/corps/%s/scan {\"config_id\":%q} (a contact way) or /fake/corps/%s/join (a join way) to play a customer scanning it\n",
				config, corp, corp, config, corp)
			return
		}
		png, err := qrcode.Encode(f.URL()+"/fake/corps/"+corp+"/scan?config_id="+url.QueryEscape(config), qrcode.Medium, 256)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Write(png)
	})
}

func (f *Fake) ctl(fn func(r *http.Request, corp string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := fn(r, r.PathValue("corp"))
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrNotFound) {
				status = http.StatusNotFound
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, out)
	}
}

func readJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}
