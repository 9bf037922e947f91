// Package jobs runs Qiflow's asynchronous work: the event bus (WeCom events
// from the callback gateway and domain events from the outbox, delivered
// through one machinery), background job rows (progress, resume, cancel) and
// the cron schedule that runs once across instances. It holds no business
// rules: domain packages subscribe and register job kinds; jobs calls them.
//
// # Events and deliveries
//
// An event is one row of bus_events: corp, source (wecom or domain), type
// ("change_external_contact/add_external_contact", "ContactAdded"), subject
// (what it is about: "ext:<external_userid>", "chat:<chat_id>"), dedup key,
// payload and the time it happened. Storing it creates one delivery per
// interested subscriber in the same transaction; WeCom's retries and a
// publisher's repeats collapse on the dedup key.
//
// A delivery is the unit of work. Who writes what:
//   - the writer (Receive) or the publisher's transaction (Publish) inserts it;
//   - a dispatcher claims it with a conditional update that re-checks status
//     and due time and stamps a fresh lease token, then reads back what it
//     won; every later write (done, retry, dead) is fenced on that token, so a
//     stale attempt changes nothing;
//   - an operator replays or dismisses dead letters.
//
// Correctness never depends on FOR UPDATE SKIP LOCKED (TiDB ignores it) or on
// SQLite's single writer.
//
// # Order per subject
//
// A subscriber handles the events of one subject one at a time, in the order
// they happened: a delivery is claimable only while no older delivery of the
// same subscriber and subject is unfinished (queued, leased or waiting to be
// retried), and a claim also takes the subject's row in bus_subject_locks, a
// unique key, so even an older event that arrives late never runs beside a
// newer one. A dead letter does not block its subject: replay it to run it.
// Subscribers still compare event times where it matters (tombstones), since
// WeCom may deliver an event after a later one was handled.
//
// # Background jobs
//
// A job with a unique key (a corp's rescore, a segment's rebuild) exists
// once while it is queued or running: asking again while it is queued
// answers that job; asking while it runs marks it (rerun_requested), and
// its end queues it again from the start instead, in the same statement,
// so a change made after a run read its inputs is never left unapplied.
//
// # Rolling deploys
//
// Each instance records its subscribers in bus_subscribers; an event gets
// deliveries for every subscriber any instance has seen in the last day, and
// an instance claims only deliveries of subscribers it has, and only jobs of
// kinds it knows. A subscriber missing for a day is retired: its queued
// deliveries are dismissed when the bus is pruned.
//
// The table of every subscriber, with its lane and events, sits beside the
// wiring in cmd/qiflow (subscribers.go) and is checked by a test.
package jobs
