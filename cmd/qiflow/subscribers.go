package main

// subscriberTable lists every subscriber on the bus: its name (deliveries
// are recorded under it), lane, the events it takes, and the function that
// does the work. TestSubscriberTable checks it against what the wiring
// registers, so it cannot go stale. Find the welcome here: livecode.welcome
// → (*livecode.Service).Welcome in livecode/welcome.go.
var subscriberTable = []struct {
	Name, Lane string
	Events     []string
	Func       string
}{
	{"directory.contacts", "normal", []string{"change_external_contact/*"},
		"(*directory.Directory).HandleContactEvent: mirror contacts and follow relations"},
	{"directory.tags", "normal", []string{"change_external_tag/*"},
		"(*directory.Directory).SyncTags: mirror the corp's tags"},
	{"directory.chats", "normal", []string{"change_external_chat/*"},
		"(*directory.Directory).HandleChatEvent: mirror customer groups and members"},
	{"livecode.sources", "normal", []string{"change_external_contact/add_external_contact", "change_external_contact/add_half_external_contact",
		"change_external_contact/del_external_contact", "change_external_contact/del_follow_user"},
		"(*livecode.Service).RecordContactEvent (livecode/sources.go): relation, source, counts, caps; publishes ContactAdded / ContactLost"},
	{"livecode.welcome", "fast", []string{"change_external_contact/add_external_contact", "change_external_contact/add_half_external_contact"},
		"(*livecode.Service).Welcome (livecode/welcome.go): the code's welcome message within WeCom's 20 s"},
	{"livecode.profile", "normal", []string{"change_external_contact/add_external_contact", "change_external_contact/add_half_external_contact"},
		"(*livecode.Service).ApplyProfile (livecode/profile.go): the code's tags, remark and description"},
	{"livecode.groups", "normal", []string{"change_external_chat/update"},
		"(*livecode.Service).HandleChat (livecode/groups.go): group-code joins and leaves; switches full groups"},
	{"leads.intake", "normal", []string{"ContactAdded", "ContactLost", "ContactSaved"},
		"(*leads.Service).intake (leads/intake.go): a person and a lead for every WeCom add; adds and losses as scored activities; the person named from the mirror"},
	{"leads.groups", "normal", []string{"change_external_chat/update"},
		"(*leads.Service).RecordGroupChange (leads/groups.go): customers joining and leaving groups as wecom.group_joined / wecom.group_left activities"},
	{"journeys", "normal", []string{"LeadChanged", "ActivitiesRecorded", "ContactSaved", "LeadsRescored", "TeamsChanged"},
		"(*journeys.Service).UpdateMembership (journeys/segments.go), then HandleEvents (journeys/lifecycle.go): re-evaluates the segments whose conditions name what changed, for that lead (after a rescore, rebuilds those on score, fit or stage; after a team change, re-evaluates the owners' leads in those on teams); then wakes runs waiting for the event, enrols at matching entries, ends runs whose goal came true (after a rescore: every active run whose goal reads what it changes)"},
}
