//! Where each of the sentinel's beads stands in the pipeline, and one bead's
//! dispatch history: plain functions over rows, notes and events, no I/O.
//!
//! Eligibility, order and the runner-wide pause come from [`crate::decide`],
//! the functions the dispatch tick itself uses, so `status` cannot disagree
//! with a tick.

use std::time::Duration;

use beads_contract::notes::{self, Note, Writer};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::decide::{self, Candidate, Skip, status};

/// One of the sentinel's beads, as the status query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeadRow {
    pub id: String,
    pub title: String,
    pub status: String,
    pub priority: i32,
    pub assignee: Option<String>,
    /// `None` when the stored value is not a valid date (`0000-00-00`).
    pub updated_at: Option<NaiveDateTime>,
    pub acceptance_criteria: String,
    pub notes: String,
    /// `issues.is_template`: bd refuses to update templates.
    pub is_template: bool,
    /// Carries the label BeadBoard hides (`gt:agent`).
    pub hidden: bool,
}

/// Why a bead is never dispatched as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Blank acceptance criteria.
    NoAcceptanceCriteria,
    /// Its notes have no room for another dispatch attempt's notes.
    NotesFull,
    /// Labelled `gt:agent`: BeadBoard hides it.
    AgentLabel,
    /// `is_template`: bd refuses to change templates.
    Template,
    /// A status the dispatcher never picks (`deferred`, `pinned`, custom ones).
    Status,
}

impl SkipReason {
    /// The reason as the table prints it.
    pub fn describe(&self, status: &str) -> String {
        match self {
            SkipReason::NoAcceptanceCriteria => "no acceptance criteria".into(),
            SkipReason::NotesFull => "notes full: no room for another attempt's notes".into(),
            SkipReason::AgentLabel => {
                format!(
                    "labelled {} (hidden from BeadBoard)",
                    beads_contract::labels::BEAD_HIDDEN_FROM_BEADBOARD
                )
            }
            SkipReason::Template => "a template (bd never changes templates)".into(),
            SkipReason::Status => format!("status {status}: only open beads are dispatched"),
        }
    }
}

/// Who blocked a bead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedBy {
    Reaper,
    Dispatcher,
    /// No runner note says it blocked the bead: a person or another tool did.
    Other,
}

/// How far the current attempt of an `in_progress` bead got, by its notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Claimed; the request is not sent yet.
    Claimed,
    /// Sent to BeadBoard; the answer is not recorded yet.
    Sent,
    /// BeadBoard returned a job id: the agent has it.
    Dispatched,
    /// `in_progress` without a runner claim (set by a person).
    Manual,
}

/// Where a bead stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Eligible; `position` 1 is dispatched next (after the runner-wide
    /// pause, if there is one: a pause keeps the order).
    Waiting {
        position: usize,
    },
    /// Claimed or dispatched.
    InFlight {
        #[serde(with = "rfc3339_opt")]
        since: Option<DateTime<Utc>>,
        job_id: Option<String>,
        phase: Phase,
    },
    Blocked {
        by: BlockedBy,
        reason: Option<String>,
    },
    Skipped {
        reason: SkipReason,
    },
}

impl Stage {
    /// The group name: `waiting`, `in_flight`, `blocked`, `skipped`.
    pub fn group(&self) -> Group {
        match self {
            Stage::Waiting { .. } => Group::Waiting,
            Stage::InFlight { .. } => Group::InFlight,
            Stage::Blocked { .. } => Group::Blocked,
            Stage::Skipped { .. } => Group::Skipped,
        }
    }
}

/// The pipeline's groups, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Waiting,
    InFlight,
    Blocked,
    Skipped,
}

impl Group {
    /// Every group, in print order.
    pub const ALL: [Group; 4] = [
        Group::Waiting,
        Group::InFlight,
        Group::Blocked,
        Group::Skipped,
    ];

    /// The name the table prints.
    pub fn label(self) -> &'static str {
        match self {
            Group::Waiting => "waiting",
            Group::InFlight => "in flight",
            Group::Blocked => "blocked",
            Group::Skipped => "skipped",
        }
    }
}

/// One bead and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub bead: BeadRow,
    pub stage: Stage,
}

/// The runner-wide pause: no bead is dispatched before `until`, because
/// BeadBoard or the agent service failed `failures` times in a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    #[serde(with = "rfc3339")]
    pub until: DateTime<Utc>,
    /// Failed attempts in a row on the bead whose history sets the pause.
    pub failures: u32,
    /// That bead's most recent failure note.
    pub last_reason: Option<String>,
    /// That bead.
    pub bead_id: String,
}

/// The sentinel's queue: every bead placed, and the pause if one is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub placed: Vec<Placed>,
    pub paused: Option<Pause>,
}

/// Places every bead, grouped in [`Group::ALL`] order; within a group:
/// waiting by dispatch order, in flight by `since`, the rest by priority,
/// then least recently updated, then id. `first_delay` is the runner's
/// `retry_delay`, which sets how long a pause lasts.
pub fn place_all(beads: Vec<BeadRow>, now: DateTime<Utc>, first_delay: Duration) -> Queue {
    let open_candidates: Vec<Candidate> = beads
        .iter()
        .filter(|b| b.status == status::OPEN && skip_before_decide(b).is_none())
        .map(candidate)
        .collect();
    // The tick's own order: `decide::eligible` keeps and sorts the dispatchable ones.
    let (eligible, _) = decide::eligible(open_candidates);
    let paused = pause(&eligible, now, first_delay);
    let order: Vec<String> = eligible.into_iter().map(|c| c.id).collect();
    let mut placed: Vec<Placed> = beads
        .into_iter()
        .map(|bead| {
            let stage = stage(&bead, &order);
            Placed { bead, stage }
        })
        .collect();
    placed.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Queue { placed, paused }
}

/// The pause the next dispatch tick would observe, by the tick's own rule
/// ([`decide::paused_until`] over the eligible beads, in force while `now`
/// is before its end). The failure count and reason are those of the bead
/// whose history sets the end.
pub fn pause(eligible: &[Candidate], now: DateTime<Utc>, first_delay: Duration) -> Option<Pause> {
    let until = decide::paused_until(eligible, first_delay).filter(|until| now < *until)?;
    let setter = eligible
        .iter()
        .find(|c| decide::paused_until(std::slice::from_ref(*c), first_delay) == Some(until))?;
    Some(Pause {
        until,
        failures: decide::failure_history(&setter.notes).consecutive_failures,
        last_reason: last_failure(&setter.notes),
        bead_id: setter.id.clone(),
    })
}

type SortKey<'a> = (
    Group,
    usize,
    Option<DateTime<Utc>>,
    i32,
    Option<NaiveDateTime>,
    &'a str,
);

fn sort_key(p: &Placed) -> SortKey<'_> {
    let (position, at) = match &p.stage {
        Stage::Waiting { position } => (*position, None),
        Stage::InFlight { since, .. } => (0, *since),
        _ => (0, None),
    };
    (
        p.stage.group(),
        position,
        at,
        p.bead.priority,
        p.bead.updated_at,
        p.bead.id.as_str(),
    )
}

/// Where one bead stands. `order` is the dispatch order of the eligible
/// beads (ids, best first), as [`decide::eligible`] returns it.
pub fn stage(bead: &BeadRow, order: &[String]) -> Stage {
    match bead.status.as_str() {
        status::OPEN => {
            if let Some(reason) = skip_before_decide(bead) {
                return Stage::Skipped { reason };
            }
            match decide::check_candidate(&candidate(bead)) {
                Err(Skip::NoAcceptanceCriteria) => Stage::Skipped {
                    reason: SkipReason::NoAcceptanceCriteria,
                },
                Err(Skip::NotesFull) => Stage::Skipped {
                    reason: SkipReason::NotesFull,
                },
                Ok(()) => Stage::Waiting {
                    position: order
                        .iter()
                        .position(|id| *id == bead.id)
                        .map_or(0, |i| i + 1),
                },
            }
        }
        status::IN_PROGRESS => in_flight(&bead.notes, bead.updated_at),
        status::BLOCKED => blocked(&bead.notes),
        _ => Stage::Skipped {
            reason: SkipReason::Status,
        },
    }
}

/// Skips the candidate query makes before any decision: the hidden label
/// (excluded in SQL) and templates.
fn skip_before_decide(bead: &BeadRow) -> Option<SkipReason> {
    if bead.hidden {
        Some(SkipReason::AgentLabel)
    } else if bead.is_template {
        Some(SkipReason::Template)
    } else {
        None
    }
}

fn candidate(bead: &BeadRow) -> Candidate {
    Candidate {
        id: bead.id.clone(),
        priority: bead.priority,
        updated_at: bead.updated_at,
        acceptance_criteria: bead.acceptance_criteria.clone(),
        notes: bead.notes.clone(),
    }
}

/// The text of the most recent note of a failure that counts towards the
/// pause (see [`decide::failure_history`]): a failed or refused dispatch.
fn last_failure(bead_notes: &str) -> Option<String> {
    bead_notes
        .lines()
        .rev()
        .find(|l| {
            matches!(
                notes::classify(l),
                Note::DispatchFailed | Note::DispatchRefused
            )
        })
        .map(str::to_string)
}

/// The latest claim (if any) and what followed it.
fn in_flight(bead_notes: &str, updated_at: Option<NaiveDateTime>) -> Stage {
    let lines: Vec<&str> = bead_notes.lines().collect();
    let claim = lines.iter().rposition(|l| notes::claimed_at(l).is_some());
    let Some(claim) = claim else {
        return Stage::InFlight {
            since: updated_at.map(|t| t.and_utc()),
            job_id: None,
            phase: Phase::Manual,
        };
    };
    let after = &lines[claim + 1..];
    let job_id = after
        .iter()
        .find_map(|l| notes::dispatched_job(l))
        .map(str::to_string);
    let phase = if job_id.is_some() {
        Phase::Dispatched
    } else if after.iter().any(|l| notes::dispatching_at(l).is_some()) {
        Phase::Sent
    } else {
        Phase::Claimed
    };
    Stage::InFlight {
        since: notes::claimed_at(lines[claim]),
        job_id,
        phase,
    }
}

/// Who blocked the bead: the last runner note saying it blocked it.
fn blocked(bead_notes: &str) -> Stage {
    let block = bead_notes.lines().rev().find(|l| notes::is_block(l));
    match block {
        Some(line) => Stage::Blocked {
            by: match notes::writer(line) {
                Some(Writer::Reaper) => BlockedBy::Reaper,
                _ => BlockedBy::Dispatcher,
            },
            reason: Some(line.to_string()),
        },
        None => Stage::Blocked {
            by: BlockedBy::Other,
            reason: bead_notes.lines().next_back().map(str::to_string),
        },
    }
}

// ---------------------------------------------------------------------------
// One bead's history.

/// One `events` row, as the history query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// `None` when the stored value is not a valid date.
    pub created_at: Option<NaiveDateTime>,
    pub event_type: String,
    pub actor: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// What one timeline entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// The status changed.
    Status { from: Option<String>, to: String },
    /// The assignee changed.
    Assignee {
        from: Option<String>,
        to: Option<String>,
    },
    /// A note line was added. `kind` names the runner's notes
    /// (`claimed`, `dispatched`, `refused`, …); anything else is `other`.
    Note { kind: &'static str, text: String },
    /// Any other event (`created`, `closed`, `commented`, …).
    Other { event_type: String },
}

/// One step of a bead's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When: the event's `created_at`, else the note's own timestamp.
    #[serde(with = "rfc3339_opt")]
    pub at: Option<DateTime<Utc>>,
    /// `events.actor`, when an event recorded the step.
    pub actor: Option<String>,
    #[serde(flatten)]
    pub what: What,
}

/// The kind of a note line, tolerant of suffixes the runner may add.
pub fn note_kind(line: &str) -> &'static str {
    match notes::classify(line) {
        Note::Claimed(..) => "claimed",
        Note::Dispatching(_) => "dispatching",
        Note::Dispatched(_) => "dispatched",
        Note::DispatchFailed => "dispatch_failed",
        Note::DispatchRefused => "refused",
        Note::RefusedBlocked => "refused_blocked",
        Note::OutcomeUnknown => "outcome_unknown",
        Note::ReaperStale => "reaper_stale",
        Note::ReaperReleased => "reaper_released",
        Note::ReaperOutcomeUnknown => "reaper_outcome_unknown",
        // The scripts' note; old beads still carry it.
        Note::BackoffBlocked => "backoff_blocked",
        Note::Other if notes::claimed_at(line).is_some() => "claimed",
        Note::Other if notes::dispatching_at(line).is_some() => "dispatching",
        Note::Other => match notes::writer(line) {
            Some(Writer::Dispatcher) => "dispatcher",
            Some(Writer::Reaper) => "reaper",
            None => "other",
        },
    }
}

/// The bead's history, oldest first: every event, with each note line
/// attributed to the event that added it. Note lines no event accounts for
/// (written without bd's bookkeeping) keep their place in the notes' order
/// and the time in their own text, if any. At the same second a status
/// change is listed before notes, as the runner and bd write them.
pub fn timeline(current_notes: &str, events: &[EventRow]) -> Vec<Step> {
    let lines: Vec<&str> = current_notes.lines().collect();
    // (sort time, tie rank, sequence, step); tie rank 0 = status/assignee/other, 1 = note.
    let mut steps: Vec<(Option<DateTime<Utc>>, u8, usize, Step)> = Vec::new();
    let mut covered: Vec<Option<(Option<DateTime<Utc>>, String)>> = vec![None; lines.len()];
    for event in events {
        let at = event.created_at.map(|t| t.and_utc());
        let old = json_object(event.old_value.as_deref());
        let new = json_object(event.new_value.as_deref());
        let mut recorded = false;
        if let Some(to) = new.get("status").and_then(|v| v.as_str()) {
            let from = old
                .get("status")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            push(
                &mut steps,
                at,
                0,
                &event.actor,
                What::Status {
                    from,
                    to: to.to_string(),
                },
            );
            recorded = true;
        }
        if let Some(to) = new.get("assignee") {
            push(
                &mut steps,
                at,
                0,
                &event.actor,
                What::Assignee {
                    from: old
                        .get("assignee")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    to: to.as_str().map(str::to_string),
                },
            );
            recorded = true;
        }
        if let Some(after) = new.get("notes").and_then(|v| v.as_str()) {
            let before = old.get("notes").and_then(|v| v.as_str()).unwrap_or("");
            let before_count = if before.is_empty() {
                0
            } else {
                before.lines().count()
            };
            for (i, line) in after.lines().enumerate().skip(before_count) {
                // Attribute the line where the current notes still hold it there.
                if lines.get(i) == Some(&line) && covered[i].is_none() {
                    covered[i] = Some((at, event.actor.clone()));
                }
            }
            recorded = true;
        }
        if !recorded {
            push(
                &mut steps,
                at,
                0,
                &event.actor,
                What::Other {
                    event_type: event.event_type.clone(),
                },
            );
        }
    }
    // Note lines: attributed ones take their event's time; the rest their
    // own timestamp, else the time of the line before them.
    let mut previous: Option<DateTime<Utc>> = None;
    for (i, line) in lines.iter().enumerate() {
        let (at, actor, shown_at) = match &covered[i] {
            Some((at, actor)) => (*at, Some(actor.clone()), *at),
            None => {
                let own = notes::claimed_at(line).or_else(|| notes::dispatching_at(line));
                (own.or(previous), None, own)
            }
        };
        if at.is_some() {
            previous = at;
        }
        steps.push((
            at,
            1,
            steps.len(),
            Step {
                at: shown_at,
                actor,
                what: What::Note {
                    kind: note_kind(line),
                    text: (*line).to_string(),
                },
            },
        ));
    }
    // Untimed steps keep their place relative to the timed ones they follow.
    steps.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.cmp(&b.2)));
    steps.into_iter().map(|(_, _, _, s)| s).collect()
}

fn push(
    steps: &mut Vec<(Option<DateTime<Utc>>, u8, usize, Step)>,
    at: Option<DateTime<Utc>>,
    rank: u8,
    actor: &str,
    what: What,
) {
    let seq = steps.len();
    steps.push((
        at,
        rank,
        seq,
        Step {
            at,
            actor: Some(actor.to_string()),
            what,
        },
    ));
}

fn json_object(text: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    text.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

/// Timestamps in the JSON output: RFC 3339, UTC, whole seconds, `Z`.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&beads_contract::notes::timestamp(*t))
    }
}

pub(crate) mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    pub fn serialize<S: serde::Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 18, h, m, s).unwrap()
    }

    fn row(id: &str, status: &str, priority: i32, notes: &str) -> BeadRow {
        BeadRow {
            id: id.into(),
            title: format!("bead {id}"),
            status: status.into(),
            priority,
            assignee: Some("agent".into()),
            updated_at: Some(t(9, 0, 0).naive_utc()),
            acceptance_criteria: "it works".into(),
            notes: notes.into(),
            is_template: false,
            hidden: false,
        }
    }

    const DELAY: Duration = Duration::from_secs(120);

    fn stages(placed: &[Placed]) -> Vec<(&str, &Stage)> {
        placed
            .iter()
            .map(|p| (p.bead.id.as_str(), &p.stage))
            .collect()
    }

    #[test]
    fn every_state_lands_in_its_group_in_dispatch_order() {
        let now = t(12, 0, 0);
        let failed = [
            notes::claimed(t(11, 59, 0)),
            notes::dispatch_failed_http(502, "Queue full"),
        ]
        .join("\n");
        let dispatched = [
            notes::claimed(t(11, 30, 0)),
            notes::dispatching(t(11, 30, 1)),
            notes::dispatched("job-7"),
        ]
        .join("\n");
        let mut template = row("s-template", "open", 0, "");
        template.is_template = true;
        let mut labelled = row("s-label", "open", 0, "");
        labelled.hidden = true;
        let mut blank = row("s-blank", "open", 0, "");
        blank.acceptance_criteria = " \n ".into();
        let mut newer = row("w-newer", "open", 1, "");
        newer.updated_at = Some(t(10, 0, 0).naive_utc());
        let full = "x".repeat(decide::NOTES_LIMIT - 100);
        let refused = notes::refused_blocked("HTTP 400: Bead is missing acceptance criteria.");
        let unknown = notes::outcome_unknown("timed out after sending");
        let beads = vec![
            row("s-deferred", "deferred", 2, ""),
            row("s-full", "open", 2, &full),
            row(
                "b-refused",
                "blocked",
                2,
                &format!("{}\n{refused}", notes::claimed_by(t(11, 0, 0), "r#1")),
            ),
            row(
                "b-unknown",
                "blocked",
                2,
                &format!("{}\n{unknown}", notes::dispatching(t(11, 0, 1))),
            ),
            blank,
            labelled,
            template,
            row("b-person", "blocked", 2, "waiting on design review"),
            row(
                "b-backoff",
                "blocked",
                2,
                &format!("{failed}\n{}", notes::backoff_blocked(5)),
            ),
            row(
                "b-reaper",
                "blocked",
                2,
                &format!("{dispatched}\n{}", notes::reaper_stale(31, 30)),
            ),
            row("f-claimed", "in_progress", 2, &notes::claimed(t(11, 58, 0))),
            row("f-job", "in_progress", 2, &dispatched),
            row("f-manual", "in_progress", 2, "a person started this"),
            row("r-failed", "open", 0, &failed),
            newer,
            row("w-low", "open", 3, ""),
            row("w-old", "open", 1, ""),
        ];
        let queue = place_all(beads, now, DELAY);
        // The failure pauses the whole runner (2m after the attempt); the
        // failed bead keeps its place, first, as the tick orders it.
        assert_eq!(
            queue.paused,
            Some(Pause {
                until: t(12, 1, 0),
                failures: 1,
                last_reason: Some(notes::dispatch_failed_http(502, "Queue full")),
                bead_id: "r-failed".into(),
            })
        );
        assert_eq!(
            stages(&queue.placed),
            [
                ("r-failed", &Stage::Waiting { position: 1 }),
                ("w-old", &Stage::Waiting { position: 2 }),
                ("w-newer", &Stage::Waiting { position: 3 }),
                ("w-low", &Stage::Waiting { position: 4 }),
                (
                    "f-manual",
                    &Stage::InFlight {
                        since: Some(t(9, 0, 0)),
                        job_id: None,
                        phase: Phase::Manual
                    }
                ),
                (
                    "f-job",
                    &Stage::InFlight {
                        since: Some(t(11, 30, 0)),
                        job_id: Some("job-7".into()),
                        phase: Phase::Dispatched
                    }
                ),
                (
                    "f-claimed",
                    &Stage::InFlight {
                        since: Some(t(11, 58, 0)),
                        job_id: None,
                        phase: Phase::Claimed
                    }
                ),
                (
                    "b-backoff",
                    &Stage::Blocked {
                        by: BlockedBy::Dispatcher,
                        reason: Some(notes::backoff_blocked(5))
                    }
                ),
                (
                    "b-person",
                    &Stage::Blocked {
                        by: BlockedBy::Other,
                        reason: Some("waiting on design review".into())
                    }
                ),
                (
                    "b-reaper",
                    &Stage::Blocked {
                        by: BlockedBy::Reaper,
                        reason: Some(notes::reaper_stale(31, 30))
                    }
                ),
                (
                    "b-refused",
                    &Stage::Blocked {
                        by: BlockedBy::Dispatcher,
                        reason: Some(refused.clone())
                    }
                ),
                (
                    "b-unknown",
                    &Stage::Blocked {
                        by: BlockedBy::Dispatcher,
                        reason: Some(unknown.clone())
                    }
                ),
                (
                    "s-blank",
                    &Stage::Skipped {
                        reason: SkipReason::NoAcceptanceCriteria
                    }
                ),
                (
                    "s-label",
                    &Stage::Skipped {
                        reason: SkipReason::AgentLabel
                    }
                ),
                (
                    "s-template",
                    &Stage::Skipped {
                        reason: SkipReason::Template
                    }
                ),
                (
                    "s-deferred",
                    &Stage::Skipped {
                        reason: SkipReason::Status
                    }
                ),
                (
                    "s-full",
                    &Stage::Skipped {
                        reason: SkipReason::NotesFull
                    }
                ),
            ]
        );
    }

    #[test]
    fn the_pause_is_the_ticks_and_names_the_bead_that_sets_it() {
        let now = t(12, 0, 0);
        let attempt = |at, failure: String| format!("{}\n{failure}", notes::claimed(at));
        // Two failures in a row on one bead (4m after 11:58 = 12:02), one
        // refusal on another (2m after 11:59 = 12:01): the later end wins.
        let twice = [
            attempt(
                t(11, 50, 0),
                notes::dispatch_failed_transport("connection refused"),
            ),
            attempt(t(11, 58, 0), notes::dispatch_failed_http(503, "down")),
        ]
        .join("\n");
        let refused = attempt(
            t(11, 59, 0),
            notes::dispatch_refused(400, "Bead a not found."),
        );
        let beads = vec![
            row("a", "open", 1, &refused),
            row("b", "open", 2, &twice),
            row("c", "open", 0, ""),
        ];
        let candidates: Vec<Candidate> = beads.iter().map(candidate).collect();
        let queue = place_all(beads, now, DELAY);
        let until = decide::paused_until(&candidates, DELAY);
        assert_eq!(until, Some(t(12, 2, 0)));
        assert_eq!(
            queue.paused,
            Some(Pause {
                until: t(12, 2, 0),
                failures: 2,
                last_reason: Some(notes::dispatch_failed_http(503, "down")),
                bead_id: "b".into(),
            })
        );
        // Positions are the tick's order; the pause changes none of them.
        assert_eq!(
            stages(&queue.placed),
            [
                ("c", &Stage::Waiting { position: 1 }),
                ("a", &Stage::Waiting { position: 2 }),
                ("b", &Stage::Waiting { position: 3 }),
            ]
        );
        // A failure on a bead no longer eligible (blocked since) pauses nothing,
        // as the tick reads only the eligible beads' notes.
        let queue = place_all(vec![row("b", "blocked", 2, &twice)], now, DELAY);
        assert_eq!(queue.paused, None);
        // A success after the failures ends the pause.
        let done = format!("{twice}\n{}", notes::dispatched("j"));
        assert_eq!(
            place_all(vec![row("b", "open", 2, &done)], now, DELAY).paused,
            None
        );
    }

    #[test]
    fn a_pause_that_has_passed_is_no_pause() {
        let failed = [
            notes::claimed(t(11, 0, 0)),
            notes::dispatch_failed_transport("connection refused"),
        ]
        .join("\n");
        let at_end = place_all(vec![row("a", "open", 2, &failed)], t(11, 2, 0), DELAY);
        assert_eq!(at_end.paused, None);
        assert_eq!(at_end.placed[0].stage, Stage::Waiting { position: 1 });
        let before = place_all(vec![row("a", "open", 2, &failed)], t(11, 1, 59), DELAY);
        assert_eq!(before.paused.map(|p| p.until), Some(t(11, 2, 0)));
    }

    #[test]
    fn in_flight_reads_claims_with_a_runner_suffix_and_a_sent_marker() {
        let n = [
            format!("{} by runner-7f3a", notes::claimed(t(11, 0, 0))),
            notes::dispatching(t(11, 0, 1)),
        ]
        .join("\n");
        assert_eq!(
            stage(&row("a", "in_progress", 2, &n), &[]),
            Stage::InFlight {
                since: Some(t(11, 0, 0)),
                job_id: None,
                phase: Phase::Sent
            }
        );
        assert_eq!(
            note_kind(&format!("{} by r", notes::claimed(t(11, 0, 0)))),
            "claimed"
        );
        assert_eq!(note_kind("auto-dispatcher: something new"), "dispatcher");
        assert_eq!(note_kind(&notes::dispatch_refused(400, "x")), "refused");
        assert_eq!(note_kind(&notes::refused_blocked("x")), "refused_blocked");
        assert_eq!(note_kind(&notes::outcome_unknown("x")), "outcome_unknown");
        assert_eq!(note_kind(&notes::backoff_blocked(5)), "backoff_blocked");
        assert_eq!(note_kind(&notes::claimed_by(t(11, 0, 0), "r#1")), "claimed");
        assert_eq!(note_kind("the agent: step 2 done"), "other");
    }

    fn event(at: DateTime<Utc>, old: serde_json::Value, new: serde_json::Value) -> EventRow {
        let kind = if new.get("status").is_some() {
            "status_changed"
        } else {
            "updated"
        };
        EventRow {
            created_at: Some(at.naive_utc()),
            event_type: kind.into(),
            actor: "beads-dispatcher".into(),
            old_value: Some(old.to_string()),
            new_value: Some(new.to_string()),
        }
    }

    #[test]
    fn timeline_attributes_note_lines_to_their_events_and_keeps_the_rest_in_place() {
        let claim = notes::claimed(t(10, 0, 0));
        let job = notes::dispatched("job-1");
        let n1 = format!("from a person\n{claim}");
        let n2 = format!("{n1}\n{job}");
        let current = format!("{n2}\nagent: done half");
        // As the runner writes them: at the same second, the status change
        // comes first, whatever order the database returns the rows in.
        let events = [
            event(
                t(10, 0, 0),
                serde_json::json!({"status": "in_progress", "notes": "from a person"}),
                serde_json::json!({"notes": n1}),
            ),
            event(
                t(10, 0, 0),
                serde_json::json!({"status": "open", "notes": "from a person"}),
                serde_json::json!({"status": "in_progress"}),
            ),
            event(
                t(10, 0, 5),
                serde_json::json!({"status": "in_progress", "notes": n1}),
                serde_json::json!({"notes": n2}),
            ),
        ];
        let steps = timeline(&current, &events);
        let got: Vec<_> = steps
            .iter()
            .map(|s| (s.at, s.actor.as_deref(), &s.what))
            .collect();
        let note = |kind, text: &str| What::Note {
            kind,
            text: text.into(),
        };
        let d = Some("beads-dispatcher");
        assert_eq!(
            got,
            [
                (None, None, &note("other", "from a person")),
                (
                    Some(t(10, 0, 0)),
                    d,
                    &What::Status {
                        from: Some("open".into()),
                        to: "in_progress".into()
                    }
                ),
                (Some(t(10, 0, 0)), d, &note("claimed", &claim)),
                (Some(t(10, 0, 5)), d, &note("dispatched", &job)),
                (None, None, &note("other", "agent: done half")),
            ]
        );
    }

    #[test]
    fn timeline_without_events_uses_the_notes_own_times() {
        let n = format!(
            "{}\n{}",
            notes::claimed(t(10, 0, 0)),
            notes::dispatch_failed_http(502, "x")
        );
        let steps = timeline(&n, &[]);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].at, Some(t(10, 0, 0)));
        assert_eq!(steps[1].at, None);
        assert!(matches!(
            steps[1].what,
            What::Note {
                kind: "dispatch_failed",
                ..
            }
        ));
        assert!(timeline("", &[]).is_empty());
    }
}
