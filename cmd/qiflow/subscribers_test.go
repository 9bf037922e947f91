package main

import (
	"context"
	"slices"
	"testing"
)

// The subscriber table beside the wiring is the map readers use to find
// where an event is handled; it must list exactly what is registered.
func TestSubscriberTable(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	a, err := newApp(context.Background(), cfg, testLogger(), appOptions{noInitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	got := a.bus.Subscribers()
	if len(got) != len(subscriberTable) {
		t.Fatalf("registered %d subscribers, the table lists %d", len(got), len(subscriberTable))
	}
	for i, s := range got {
		row := subscriberTable[i]
		if s.Name != row.Name || s.Lane.String() != row.Lane || !slices.Equal(s.Types, row.Events) {
			t.Errorf("subscriber %d: registered %s/%s %v, table says %s/%s %v", i, s.Name, s.Lane, s.Types, row.Name, row.Lane, row.Events)
		}
	}
}
