//! Every decision of a tick, as plain functions over data: which bead is
//! eligible, in which order, what a failed dispatch leads to, what the reaper
//! does with an `in_progress` bead. No I/O here, so all of it is unit-tested
//! without a database or BeadBoard.

use std::time::Duration;

use beads_contract::notes::{self, Note};
use chrono::{DateTime, NaiveDateTime, Utc};

/// Status values the runner reads and writes (beads' built-ins).
pub mod status {
    pub const OPEN: &str = "open";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const BLOCKED: &str = "blocked";
}

/// First retry delay after a failed dispatch; it doubles per failure.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(2 * 60);
/// The longest retry delay.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);
/// Consecutive failed dispatches after which a bead is blocked.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// An open bead assigned to the agent, as the candidate query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub priority: i32,
    pub updated_at: NaiveDateTime,
    pub acceptance_criteria: String,
    pub notes: String,
}

/// What a bead's notes say about earlier dispatch attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureHistory {
    /// Failed dispatches since the last success or backoff block.
    pub consecutive_failures: u32,
    /// When the most recent failed attempt was claimed.
    pub last_attempt: Option<DateTime<Utc>>,
}

/// Reads the failure history from a bead's notes.
pub fn failure_history(bead_notes: &str) -> FailureHistory {
    let mut history = FailureHistory::default();
    let mut last_claim = None;
    for note in notes::history(bead_notes) {
        match note {
            Note::Claimed(at) => last_claim = Some(at),
            Note::DispatchFailed => {
                history.consecutive_failures += 1;
                history.last_attempt = last_claim;
            }
            Note::Dispatched(_) | Note::BackoffBlocked => history = FailureHistory::default(),
            _ => {}
        }
    }
    history
}

/// How long to wait after `failures` consecutive failed dispatches:
/// 2m, 4m, 8m … capped at 1h; zero when nothing failed.
pub fn retry_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY_DELAY
        .saturating_mul(1u32 << doublings)
        .min(MAX_RETRY_DELAY)
}

/// Why a candidate is not dispatched this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    NoAcceptanceCriteria,
    BackingOff { until: DateTime<Utc> },
}

/// Whether a candidate may be dispatched now.
pub fn check_candidate(c: &Candidate, now: DateTime<Utc>) -> Result<(), Skip> {
    if c.acceptance_criteria.trim().is_empty() {
        return Err(Skip::NoAcceptanceCriteria);
    }
    let history = failure_history(&c.notes);
    if let Some(last) = history.last_attempt {
        let delay = retry_delay(history.consecutive_failures);
        let until = last + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if now < until {
            return Err(Skip::BackingOff { until });
        }
    }
    Ok(())
}

/// The candidates that may be dispatched now, best first: priority ascending
/// (0 is highest), then least recently updated, then id.
pub fn eligible(mut candidates: Vec<Candidate>, now: DateTime<Utc>) -> Vec<Candidate> {
    candidates.retain(|c| check_candidate(c, now).is_ok());
    candidates
        .sort_by(|a, b| (a.priority, a.updated_at, &a.id).cmp(&(b.priority, b.updated_at, &b.id)));
    candidates
}

/// How many more beads this tick may dispatch.
pub fn free_slots(max_in_flight: u32, in_progress: u64) -> u64 {
    u64::from(max_in_flight).saturating_sub(in_progress)
}

/// Why a dispatch request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchFailure {
    /// BeadBoard answered, but not with a 2xx carrying a `job_id`.
    Http { status: u16, body: String },
    /// No usable answer: refused, timed out, reset, unreadable body.
    Transport(String),
}

impl DispatchFailure {
    /// The note recorded on the bead.
    pub fn note(&self) -> String {
        match self {
            DispatchFailure::Http { status, body } => notes::dispatch_failed_http(*status, body),
            DispatchFailure::Transport(error) => notes::dispatch_failed_transport(error),
        }
    }
}

/// What happens to a claimed bead after its dispatch failed: the failure note
/// always, then back to `open`, or `blocked` with a second note when this was
/// the [`MAX_CONSECUTIVE_FAILURES`]th failure in a row.
pub fn after_failure(
    notes_before_claim: &str,
    failure: &DispatchFailure,
) -> (&'static str, Vec<String>) {
    let failures = failure_history(notes_before_claim).consecutive_failures + 1;
    if failures >= MAX_CONSECUTIVE_FAILURES {
        (
            status::BLOCKED,
            vec![failure.note(), notes::backoff_blocked(failures)],
        )
    } else {
        (status::OPEN, vec![failure.note()])
    }
}

/// An `in_progress` bead assigned to the agent, as the reaper reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    pub id: String,
    pub updated_at: NaiveDateTime,
    pub notes: String,
}

/// The reaper's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapPolicy {
    pub stale_after: Duration,
    pub claim_timeout: Duration,
}

/// What the reaper does with one bead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReapAction {
    Keep,
    /// No progress for longer than the threshold: note, then `blocked`.
    Block {
        note: String,
    },
    /// Claimed but the dispatch was never sent: note, then `open`.
    Release {
        note: String,
    },
    /// Sent but the outcome was never recorded: note, then `blocked`, because
    /// reopening could dispatch it twice.
    BlockUnknown {
        note: String,
    },
}

impl ReapAction {
    /// The status the action sets, if any.
    pub fn new_status(&self) -> Option<&'static str> {
        match self {
            ReapAction::Keep => None,
            ReapAction::Block { .. } | ReapAction::BlockUnknown { .. } => Some(status::BLOCKED),
            ReapAction::Release { .. } => Some(status::OPEN),
        }
    }

    /// The note the action appends, if any.
    pub fn note(&self) -> Option<&str> {
        match self {
            ReapAction::Keep => None,
            ReapAction::Block { note }
            | ReapAction::Release { note }
            | ReapAction::BlockUnknown { note } => Some(note),
        }
    }
}

/// Where the latest dispatch attempt of a bead stands, from its notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// No runner claim without an outcome: the bead was dispatched or a
    /// person set it `in_progress`.
    Settled,
    /// Claimed, the request not yet sent.
    Claimed(DateTime<Utc>),
    /// Request sent, outcome not recorded.
    Sent(DateTime<Utc>),
    /// A pending claim followed by other notes: the agent (or a person) is at work.
    Active,
}

fn latest_attempt(bead_notes: &str) -> Attempt {
    let mut attempt = Attempt::Settled;
    for note in notes::history(bead_notes) {
        attempt = match (note, attempt) {
            (Note::Claimed(at), _) => Attempt::Claimed(at),
            (Note::Dispatching(at), Attempt::Claimed(_)) => Attempt::Sent(at),
            (
                Note::Dispatched(_)
                | Note::DispatchFailed
                | Note::ReaperReleased
                | Note::ReaperOutcomeUnknown
                | Note::ReaperStale
                | Note::BackoffBlocked,
                _,
            ) => Attempt::Settled,
            (Note::Other, Attempt::Claimed(_) | Attempt::Sent(_)) => Attempt::Active,
            (_, a) => a,
        };
    }
    attempt
}

/// The reaper's decision for one bead.
///
/// A claim that never reached BeadBoard goes back to `open` after the claim
/// timeout; one whose request went out without a recorded outcome is blocked
/// instead. Everything else follows the script's rule: block when the whole
/// minutes since `updated_at` are strictly more than the threshold's.
pub fn reap(bead: &InProgress, now: DateTime<Utc>, policy: ReapPolicy) -> ReapAction {
    let timeout_min = beads_contract::duration::whole_minutes(policy.claim_timeout);
    match latest_attempt(&bead.notes) {
        Attempt::Claimed(at) if elapsed(at, now) > policy.claim_timeout => {
            return ReapAction::Release {
                note: notes::reaper_released(at, timeout_min),
            };
        }
        Attempt::Sent(at) if elapsed(at, now) > policy.claim_timeout => {
            return ReapAction::BlockUnknown {
                note: notes::reaper_outcome_unknown(at, timeout_min),
            };
        }
        Attempt::Claimed(_) | Attempt::Sent(_) => return ReapAction::Keep,
        Attempt::Settled | Attempt::Active => {}
    }
    let age_min = elapsed(bead.updated_at.and_utc(), now).as_secs() / 60;
    let threshold_min = beads_contract::duration::whole_minutes(policy.stale_after);
    if age_min > threshold_min {
        ReapAction::Block {
            note: notes::reaper_stale(age_min, threshold_min),
        }
    } else {
        ReapAction::Keep
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 18, h, m, s).unwrap()
    }

    fn cand(id: &str, priority: i32, updated: DateTime<Utc>, ac: &str, notes: &str) -> Candidate {
        Candidate {
            id: id.into(),
            priority,
            updated_at: updated.naive_utc(),
            acceptance_criteria: ac.into(),
            notes: notes.into(),
        }
    }

    #[test]
    fn orders_by_priority_then_oldest_update_then_id() {
        let now = t(12, 0, 0);
        let got = eligible(
            vec![
                cand("c", 2, t(9, 0, 0), "ok", ""),
                cand("b", 1, t(11, 0, 0), "ok", ""),
                cand("a", 1, t(11, 0, 0), "ok", ""),
                cand("d", 1, t(10, 0, 0), "ok", ""),
                cand("e", 0, t(11, 30, 0), "ok", ""),
            ],
            now,
        );
        let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["e", "d", "a", "b", "c"]);
    }

    #[test]
    fn blank_acceptance_criteria_is_not_eligible() {
        let now = t(12, 0, 0);
        let got = eligible(
            vec![
                cand("a", 0, t(9, 0, 0), "  \n\t ", ""),
                cand("b", 0, t(9, 0, 0), "", ""),
                cand("c", 0, t(9, 0, 0), " x ", ""),
            ],
            now,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "c");
    }

    #[test]
    fn retry_delays_double_and_cap() {
        let mins: Vec<u64> = (0..9).map(|n| retry_delay(n).as_secs() / 60).collect();
        assert_eq!(mins, [0, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    fn failed_attempt(at: DateTime<Utc>) -> String {
        format!(
            "{}\n{}",
            notes::claimed(at),
            notes::dispatch_failed_http(502, "Queue full")
        )
    }

    #[test]
    fn failure_history_counts_since_last_success() {
        let n = [
            failed_attempt(t(9, 0, 0)),
            notes::claimed(t(9, 10, 0)),
            notes::dispatched("j1"),
            failed_attempt(t(10, 0, 0)),
            "agent was here".into(),
            failed_attempt(t(10, 5, 0)),
        ]
        .join("\n");
        assert_eq!(
            failure_history(&n),
            FailureHistory {
                consecutive_failures: 2,
                last_attempt: Some(t(10, 5, 0))
            }
        );
        assert_eq!(failure_history(""), FailureHistory::default());
    }

    #[test]
    fn backoff_skips_until_delay_passed() {
        // Two failures → 4 minutes after the last attempt.
        let n = format!(
            "{}\n{}",
            failed_attempt(t(10, 0, 0)),
            failed_attempt(t(10, 2, 0))
        );
        let c = cand("a", 0, t(9, 0, 0), "ok", &n);
        assert_eq!(
            check_candidate(&c, t(10, 5, 59)),
            Err(Skip::BackingOff { until: t(10, 6, 0) })
        );
        assert_eq!(check_candidate(&c, t(10, 6, 0)), Ok(()));
    }

    #[test]
    fn fifth_consecutive_failure_blocks() {
        let four: String = (0..4)
            .map(|i| failed_attempt(t(10, i, 0)))
            .collect::<Vec<_>>()
            .join("\n");
        let failure = DispatchFailure::Transport("connection refused".into());
        let (status_after, added) = after_failure(&four, &failure);
        assert_eq!(status_after, status::BLOCKED);
        assert_eq!(added, [failure.note(), notes::backoff_blocked(5)]);
        let (status_after, added) = after_failure(&failed_attempt(t(10, 0, 0)), &failure);
        assert_eq!(status_after, status::OPEN);
        assert_eq!(added.len(), 1);
        // A block resets the count: the bead gets five fresh tries after a person reopens it.
        let reopened = format!(
            "{four}\n{}\n{}",
            failed_attempt(t(11, 0, 0)),
            notes::backoff_blocked(5)
        );
        assert_eq!(after_failure(&reopened, &failure).0, status::OPEN);
    }

    fn in_progress(updated: DateTime<Utc>, notes: &str) -> InProgress {
        InProgress {
            id: "b".into(),
            updated_at: updated.naive_utc(),
            notes: notes.into(),
        }
    }

    const POLICY: ReapPolicy = ReapPolicy {
        stale_after: Duration::from_secs(30 * 60),
        claim_timeout: Duration::from_secs(5 * 60),
    };

    #[test]
    fn stale_threshold_is_strict_on_whole_minutes() {
        let dispatched = format!(
            "{}\n{}\n{}",
            notes::claimed(t(9, 0, 0)),
            notes::dispatching(t(9, 0, 0)),
            notes::dispatched("j")
        );
        let now = t(12, 0, 0);
        let keep = in_progress(t(11, 29, 1), &dispatched); // 30m59s → 30 whole minutes
        assert_eq!(reap(&keep, now, POLICY), ReapAction::Keep);
        let keep = in_progress(t(11, 30, 0), &dispatched); // exactly 30m
        assert_eq!(reap(&keep, now, POLICY), ReapAction::Keep);
        let block = in_progress(t(11, 29, 0), &dispatched); // 31m
        assert_eq!(
            reap(&block, now, POLICY),
            ReapAction::Block {
                note: notes::reaper_stale(31, 30)
            }
        );
    }

    #[test]
    fn claim_never_sent_is_released_after_timeout() {
        let n = notes::claimed(t(11, 50, 0));
        let bead = in_progress(t(11, 50, 0), &n);
        assert_eq!(reap(&bead, t(11, 55, 0), POLICY), ReapAction::Keep);
        assert_eq!(
            reap(&bead, t(11, 55, 1), POLICY),
            ReapAction::Release {
                note: notes::reaper_released(t(11, 50, 0), 5)
            }
        );
    }

    #[test]
    fn claim_sent_without_outcome_is_blocked_not_reopened() {
        let n = format!(
            "{}\n{}",
            notes::claimed(t(11, 0, 0)),
            notes::dispatching(t(11, 0, 1))
        );
        let bead = in_progress(t(11, 0, 1), &n);
        let action = reap(&bead, t(11, 10, 0), POLICY);
        assert_eq!(action.new_status(), Some(status::BLOCKED));
        assert!(matches!(action, ReapAction::BlockUnknown { .. }));
    }

    #[test]
    fn agent_notes_after_claim_fall_back_to_stale_rule() {
        let n = format!(
            "{}\n{}\nclaimed by agent 1234",
            notes::claimed(t(11, 0, 0)),
            notes::dispatching(t(11, 0, 1))
        );
        let bead = in_progress(t(11, 20, 0), &n);
        assert_eq!(reap(&bead, t(11, 40, 0), POLICY), ReapAction::Keep);
        assert!(matches!(
            reap(&bead, t(11, 51, 0), POLICY),
            ReapAction::Block { .. }
        ));
    }

    #[test]
    fn bead_set_in_progress_by_a_person_uses_stale_rule() {
        let bead = in_progress(t(11, 0, 0), "working on it");
        assert_eq!(reap(&bead, t(11, 30, 59), POLICY), ReapAction::Keep);
        assert!(matches!(
            reap(&bead, t(11, 31, 0), POLICY),
            ReapAction::Block { .. }
        ));
    }

    #[test]
    fn free_slots_never_negative() {
        assert_eq!(free_slots(1, 0), 1);
        assert_eq!(free_slots(3, 1), 2);
        assert_eq!(free_slots(1, 4), 0);
    }
}
