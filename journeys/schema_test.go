package journeys

import (
	"encoding/json"
	"slices"
	"testing"
)

// The schema refuses malformed drafts by place, passes good ones, and
// names exactly the node types and action kinds the engine runs.
func TestSchema_ChecksDraftsAndMatchesTheEngine(t *testing.T) {
	if err := checkSchema("draft", welcome()); err != nil {
		t.Fatalf("the welcome series: %v", err)
	}
	bad := Graph{Nodes: []Node{
		{ID: "in", Type: "entrance"},
		{ID: "w", Type: NodeWait, Wait: &Wait{For: "workday", At: "25:00"}},
	}}
	fs := fieldsOf(checkSchema("draft", bad))
	for _, want := range []string{"draft.nodes.0.type", "draft.nodes.1.wait.at"} {
		if fs[want] == "" {
			t.Errorf("no complaint at %s: %v", want, fs)
		}
	}
	var doc struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema, &doc); err != nil {
		t.Fatal(err)
	}
	types := []string{NodeEntry, NodeWait, NodeCondition, NodeSplit, NodeAction, NodeJump, NodeExit}
	kinds := []string{ActionMessage, ActionScore, ActionInvite, ActionNotify, ActionPool, ActionAssign, ActionTask, ActionTag, ActionStage, ActionStatus, ActionActivity, ActionSegmentAdd, ActionSegmentRemove, ActionWebhook}
	for name, pair := range map[string][2][]string{
		"node types":   {doc.Defs["node"].Properties["type"].Enum, types},
		"action kinds": {doc.Defs["action"].Properties["kind"].Enum, kinds},
	} {
		got, want := slices.Sorted(slices.Values(pair[0])), slices.Sorted(slices.Values(pair[1]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the schema says %v, the engine runs %v", name, got, want)
		}
	}
}
