-- journeys: segments (a filter tree and who is in it, with entered and
-- exited times, hand-made additions and removals that stick, and when a
-- windowed condition must next be checked), journeys with their published
-- versions, runs (one person's way through a version: durable, claimed by
-- conditional update, woken by time or by an event), the actions runs took
-- (by idempotency key) and statistics per node, kept as runs move.

-- +goose Up
CREATE TABLE segments (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  kind             VARCHAR(16)  NOT NULL,
  filter           TEXT         NOT NULL,
  -- a changed filter being built (the old one serves until it is swapped in)
  building_filter  TEXT         NULL,
  version          BIGINT       NOT NULL DEFAULT 1,
  built_version    BIGINT       NOT NULL DEFAULT 0,
  member_count     BIGINT       NOT NULL DEFAULT 0,
  built_at         BIGINT       NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX segments_name ON segments (corp_id, name);

CREATE TABLE segment_members (
  segment_id       BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  corp_id          VARCHAR(64)  NOT NULL,
  member           INT          NOT NULL,
  -- 1 added by hand, -1 removed by hand: the condition no longer decides
  pinned           INT          NOT NULL DEFAULT 0,
  entered_at       BIGINT       NULL,
  exited_at        BIGINT       NULL,
  -- when a windowed condition may next change for this lead (NULL: never)
  check_at         BIGINT       NULL,
  PRIMARY KEY (segment_id, lead_id)
);
CREATE INDEX segment_members_check ON segment_members (check_at);
CREATE INDEX segment_members_lead ON segment_members (lead_id);

-- A new segment version's verdicts while it builds (members, and rows to
-- check again later), and the leads that changed meanwhile (re-evaluated
-- when the version is swapped in).
CREATE TABLE segment_builds (
  segment_id       BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  member           INT          NOT NULL,
  check_at         BIGINT       NULL,
  PRIMARY KEY (segment_id, lead_id)
);

CREATE TABLE segment_dirty (
  segment_id       BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  PRIMARY KEY (segment_id, lead_id)
);

CREATE TABLE journeys (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  name             VARCHAR(64)  NOT NULL,
  status           VARCHAR(16)  NOT NULL,
  draft            TEXT         NOT NULL,
  version          BIGINT       NOT NULL DEFAULT 0,
  enrolled         BIGINT       NOT NULL DEFAULT 0,
  active           BIGINT       NOT NULL DEFAULT 0,
  goals            BIGINT       NOT NULL DEFAULT 0,
  exited           BIGINT       NOT NULL DEFAULT 0,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL
);
CREATE UNIQUE INDEX journeys_name ON journeys (corp_id, name);

CREATE TABLE journey_versions (
  journey_id       BIGINT       NOT NULL,
  version          BIGINT       NOT NULL,
  graph            TEXT         NOT NULL,
  published_by     BIGINT       NOT NULL DEFAULT 0,
  published_at     BIGINT       NOT NULL,
  PRIMARY KEY (journey_id, version)
);

CREATE TABLE journey_runs (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  corp_id          VARCHAR(64)  NOT NULL,
  journey_id       BIGINT       NOT NULL,
  version          BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  node             VARCHAR(64)  NOT NULL,
  -- ready, waiting (a timer), event (waiting for an event), woken (the
  -- event came); done, goal, exited, failed once it ended
  state            VARCHAR(16)  NOT NULL,
  -- when the run is next due: a timer, an event wait's timeout, or the end
  -- of a claim's lease (a claim pushes it forward, so a run whose claimer
  -- died is due again when its lease ends); NULL when nothing is due
  due_at           BIGINT       NULL,
  wait_event       VARCHAR(64)  NOT NULL DEFAULT '',
  -- the split branch the run took (node:branch), for results per branch
  branch           VARCHAR(130) NOT NULL DEFAULT '',
  step             INT          NOT NULL DEFAULT 0,
  -- failed tries of the current node's action (retried with backoff)
  attempts         INT          NOT NULL DEFAULT 0,
  -- set when the lead changed while an engine held the run: its goal is
  -- checked again once the engine has written the run back
  recheck          INT          NOT NULL DEFAULT 0,
  lease_token      VARCHAR(32)  NOT NULL DEFAULT '',
  -- 1 while the run is active, NULL after: one active run per journey and lead
  active_guard     INT          NULL,
  last_error       VARCHAR(500) NOT NULL DEFAULT '',
  entered_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  ended_at         BIGINT       NULL
);
CREATE INDEX journey_runs_due ON journey_runs (due_at);
CREATE INDEX journey_runs_event ON journey_runs (corp_id, lead_id, wait_event);
CREATE UNIQUE INDEX journey_runs_active ON journey_runs (journey_id, lead_id, active_guard);

CREATE TABLE journey_actions (
  run_id           BIGINT       NOT NULL,
  step             INT          NOT NULL,
  node             VARCHAR(64)  NOT NULL,
  kind             VARCHAR(32)  NOT NULL,
  status           VARCHAR(16)  NOT NULL,
  detail           VARCHAR(500) NOT NULL DEFAULT '',
  at               BIGINT       NOT NULL,
  PRIMARY KEY (run_id, step)
);

CREATE TABLE journey_node_stats (
  journey_id       BIGINT       NOT NULL,
  version          BIGINT       NOT NULL,
  node             VARCHAR(64)  NOT NULL,
  entered          BIGINT       NOT NULL DEFAULT 0,
  waiting          BIGINT       NOT NULL DEFAULT 0,
  completed        BIGINT       NOT NULL DEFAULT 0,
  failed           BIGINT       NOT NULL DEFAULT 0,
  conversions      BIGINT       NOT NULL DEFAULT 0,
  PRIMARY KEY (journey_id, version, node)
);

-- A corp's rules for messages to customers across all journeys: at most
-- cap_day a day and cap_week a week per person, none in quiet hours (they
-- wait for the end), none to a person with the opt-out activity.
CREATE TABLE journey_settings (
  corp_id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  cap_day          INT          NOT NULL,
  cap_week         INT          NOT NULL,
  quiet_start      CHAR(5)      NOT NULL,
  quiet_end        CHAR(5)      NOT NULL,
  opt_out_activity VARCHAR(64)  NOT NULL,
  updated_at       BIGINT       NOT NULL
);

-- Messages to customers that runs queued at WeCom (add_msg_template), one
-- per run and step: the row is written before WeCom is called, so a retry
-- never queues a second copy. status: sending, queued (waiting for the
-- staff member), sent, not_friend, limit (WeCom's receiving limit),
-- unreachable (in WeCom's fail_list), unknown (the call's outcome was lost).
CREATE TABLE journey_messages (
  run_id           BIGINT       NOT NULL,
  step             INT          NOT NULL,
  corp_id          VARCHAR(64)  NOT NULL,
  journey_id       BIGINT       NOT NULL,
  lead_id          BIGINT       NOT NULL,
  person_id        BIGINT       NOT NULL,
  sender           VARCHAR(64)  NOT NULL,
  external_userid  VARCHAR(64)  NOT NULL,
  msgid            VARCHAR(64)  NOT NULL DEFAULT '',
  status           VARCHAR(16)  NOT NULL,
  created_at       BIGINT       NOT NULL,
  updated_at       BIGINT       NOT NULL,
  PRIMARY KEY (run_id, step)
);
CREATE INDEX journey_messages_lead ON journey_messages (corp_id, lead_id, created_at);
CREATE INDEX journey_messages_status ON journey_messages (status, created_at);

-- +goose Down
DROP TABLE journey_messages;
DROP TABLE journey_settings;
DROP TABLE journey_node_stats;
DROP TABLE journey_actions;
DROP TABLE journey_runs;
DROP TABLE journey_versions;
DROP TABLE journeys;
DROP TABLE segment_dirty;
DROP TABLE segment_builds;
DROP TABLE segment_members;
DROP TABLE segments;
