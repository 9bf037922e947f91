package handlers

import (
	"testing"
	"time"
)

type bodyStaff struct {
	UserID   string `json:"userid"`
	DailyCap int    `json:"daily_cap"`
}

type bodyCode struct {
	Name     string      `json:"name"`
	Staff    []bodyStaff `json:"staff"`
	Settings struct {
		Groups []struct {
			ChatID    string `json:"chat_id"`
			Threshold int    `json:"threshold"`
		} `json:"groups"`
		ValidFrom *time.Time `json:"valid_from"`
	} `json:"settings"`
}

// Users read field paths and plain words, never Go type names.
func TestDecodeBody_NamesTheFieldByItsJSONPath(t *testing.T) {
	cases := []struct{ body, field, msg string }{
		{`{"name":"x","staff":[{"userid":"a"},{"userid":"b","daily_cap":"ten"}]}`, "staff[1].daily_cap", "must be a whole number"},
		{`{"name":5}`, "name", "must be text"},
		{`{"settings":{"groups":[{"chat_id":"c1"},{"chat_id":"c2","threshold":2.5}]}}`, "settings.groups[1].threshold", "must be a whole number"},
		{`{"staf":[]}`, "staf", "is not a known field"},
		{`{"name":"x","staff":[{"userid":"a","cap":3}]}`, "staff[0].cap", "is not a known field"},
		{`{"settings":{"valid_from":true}}`, "settings.valid_from", "must be a time such as 2026-11-24T10:00:00+08:00"},
	}
	for _, tc := range cases {
		var v bodyCode
		fields, err := decodeBody([]byte(tc.body), &v)
		if err != nil || fields[tc.field] != tc.msg || len(fields) != 1 {
			t.Errorf("%s: %v %v, want %s: %s", tc.body, fields, err, tc.field, tc.msg)
		}
	}
	var v bodyCode
	if fields, err := decodeBody([]byte(`{"name":"ok","staff":[{"userid":"a","daily_cap":3}]}`), &v); err != nil || fields != nil || v.Staff[0].DailyCap != 3 {
		t.Fatalf("a good body: %v %v %+v", fields, err, v)
	}
	if _, err := decodeBody([]byte(`{"name":`), &v); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}
