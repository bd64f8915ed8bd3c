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

/// The longest pause of the whole runner after repeated transient failures.
pub const MAX_RETRY_DELAY: Duration = beads_contract::defaults::MAX_RETRY_DELAY;
/// Consecutive failed dispatches after which the scripts' dispatcher blocked
/// a bead. The runner no longer blocks for failures (an outage must not burn
/// the queue); the number survives in old `auto-dispatcher: N consecutive…` notes.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;
/// Bytes a `TEXT` column holds (MySQL, MariaDB and Dolt).
pub const NOTES_LIMIT: usize = 65_535;
/// Room a dispatch attempt needs in `notes`: the claim, marker and outcome
/// notes, each cut to one line of at most 500 characters (4 bytes each).
pub const NOTES_RESERVE: usize = 4 * 1024;

/// An open bead assigned to the agent, as the candidate query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub priority: i32,
    /// `None` when the stored value is not a date (`0000-00-00 00:00:00`).
    pub updated_at: Option<NaiveDateTime>,
    pub acceptance_criteria: String,
    pub notes: String,
}

/// What a bead's notes say about earlier dispatch attempts that failed for
/// reasons outside the bead (BeadBoard or the agent service down, or
/// BeadBoard refusing it without saying why it is the bead's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureHistory {
    /// Such failures since the last success or block.
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
            Note::Claimed(at, _) => last_claim = Some(at),
            Note::DispatchFailed | Note::DispatchRefused => {
                history.consecutive_failures += 1;
                history.last_attempt = last_claim;
            }
            Note::Dispatched(_)
            | Note::BackoffBlocked
            | Note::RefusedBlocked
            | Note::OutcomeUnknown
            | Note::ReaperOutcomeUnknown => history = FailureHistory::default(),
            _ => {}
        }
    }
    history
}

/// How long the runner pauses after `failures` transient failures in a row:
/// `first`, doubling per failure, capped at [`MAX_RETRY_DELAY`]; zero when
/// nothing failed.
pub fn retry_delay(failures: u32, first: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = failures.saturating_sub(1).min(16);
    first
        .saturating_mul(1u32 << doublings)
        .min(MAX_RETRY_DELAY.max(first))
}

/// Until when the whole runner pauses dispatching: the latest end of a
/// retry delay over all candidates' failure histories. Transient failures
/// are the service's, not the bead's, so they pause everything (and block
/// nothing); the next attempt after the pause goes to the best bead again.
pub fn paused_until(candidates: &[Candidate], first_delay: Duration) -> Option<DateTime<Utc>> {
    candidates
        .iter()
        .filter_map(|c| {
            let h = failure_history(&c.notes);
            let last = h.last_attempt?;
            let delay = retry_delay(h.consecutive_failures, first_delay);
            Some(last + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
        })
        .max()
}

/// Why a candidate is not dispatched this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// BeadBoard would refuse it: blank acceptance criteria.
    NoAcceptanceCriteria,
    /// Its notes have no room for another attempt's notes.
    NotesFull,
}

/// Blank as BeadBoard judges it: JavaScript's `String.prototype.trim()`
/// leaves nothing. That strips ECMAScript WhiteSpace and LineTerminator
/// (which include U+FEFF but not U+0085), unlike Rust's `str::trim`.
pub fn is_blank_js(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(
            c,
            '\u{0009}'
                | '\u{000B}'
                | '\u{000C}'
                | '\u{0020}'
                | '\u{00A0}'
                | '\u{FEFF}'
                | '\u{000A}'
                | '\u{000D}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
        )
    })
}

/// Whether `notes` has room for one more dispatch attempt's notes.
pub fn notes_have_room(bead_notes: &str) -> bool {
    bead_notes.len() + NOTES_RESERVE <= NOTES_LIMIT
}

/// Whether a candidate may be dispatched.
pub fn check_candidate(c: &Candidate) -> Result<(), Skip> {
    if is_blank_js(&c.acceptance_criteria) {
        return Err(Skip::NoAcceptanceCriteria);
    }
    if !notes_have_room(&c.notes) {
        return Err(Skip::NotesFull);
    }
    Ok(())
}

/// The candidates that may be dispatched, best first: priority ascending
/// (0 is highest), then least recently updated, then id. Those skipped are
/// returned beside them, with the reason.
pub fn eligible(mut candidates: Vec<Candidate>) -> (Vec<Candidate>, Vec<(String, Skip)>) {
    let mut skipped = Vec::new();
    candidates.retain(|c| match check_candidate(c) {
        Ok(()) => true,
        Err(skip) => {
            skipped.push((c.id.clone(), skip));
            false
        }
    });
    candidates
        .sort_by(|a, b| (a.priority, a.updated_at, &a.id).cmp(&(b.priority, b.updated_at, &b.id)));
    (candidates, skipped)
}

/// How many more beads this tick may dispatch.
pub fn free_slots(max_in_flight: u32, in_progress: u64) -> u64 {
    u64::from(max_in_flight).saturating_sub(in_progress)
}

/// BeadBoard's answer to one dispatch request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx with a `job_id`.
    Accepted(String),
    /// Certainly never reached BeadBoard (connection refused, DNS).
    NotSent(String),
    /// 400: BeadBoard will not take it (perhaps only for now).
    Refused { status: u16, body: String },
    /// 5xx, 409, 429 and every other status: the service, not the bead.
    Transient { status: u16, body: String },
    /// May have reached BeadBoard, answer lost: timeout or reset after
    /// sending, an unreadable 2xx, a 2xx without `job_id`.
    Unknown(String),
}

/// What the runner does with a claimed bead after BeadBoard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Note the job; the bead stays `in_progress` with the agent.
    Dispatched { note: String },
    /// Back to `open` with the note. `outage`: stop the tick and pause the
    /// runner; otherwise an unexplained refusal, and the tick goes on.
    Release { note: String, outage: bool },
    /// `blocked` with the note: refused for the bead's own reason, or the
    /// outcome is unknown and a retry could dispatch it twice.
    Block { note: String },
}

/// Refusals whose reason can only be the bead's (BeadBoard's route: a blank
/// `taskId`, or blank acceptance criteria).
fn refusal_is_the_beads(body: &str) -> bool {
    body.contains("missing acceptance criteria") || body.contains("taskId is required")
}

/// The verdict on one answer. `accepted_other`: a bead BeadBoard accepted
/// earlier in this tick, which proves a refusal is about this bead.
pub fn verdict(answer: &Answer, accepted_other: Option<&str>) -> Verdict {
    match answer {
        Answer::Accepted(job) => Verdict::Dispatched {
            note: notes::dispatched(job),
        },
        Answer::NotSent(error) => Verdict::Release {
            note: notes::dispatch_failed_transport(error),
            outage: true,
        },
        Answer::Transient { status, body } => Verdict::Release {
            note: notes::dispatch_failed_http(*status, body),
            outage: true,
        },
        Answer::Refused { status, body } if refusal_is_the_beads(body) => Verdict::Block {
            note: notes::refused_blocked(&format!("HTTP {status}: {body}")),
        },
        Answer::Refused { status, body } => match accepted_other {
            Some(other) => Verdict::Block {
                note: notes::refused_blocked(&format!(
                    "HTTP {status}: {body}; it accepted {other} in the same tick"
                )),
            },
            None => Verdict::Release {
                note: notes::dispatch_refused(*status, body),
                outage: false,
            },
        },
        Answer::Unknown(reason) => Verdict::Block {
            note: notes::outcome_unknown(reason),
        },
    }
}

/// Whether the bead's latest claim is the one with this claim id (no other
/// runner claimed it since). Every write after a claim checks it.
pub fn holds_claim(bead_notes: &str, claim_id: &str) -> bool {
    notes::history(bead_notes)
        .into_iter()
        .rev()
        .find_map(|n| match n {
            Note::Claimed(_, by) => Some(by.as_deref() == Some(claim_id)),
            _ => None,
        })
        .unwrap_or(false)
}

/// Whether the claim with this id is still pending: it is the latest claim
/// and nothing (the reaper, a person's status change) settled it since.
pub fn claim_pending(bead_notes: &str, claim_id: &str) -> bool {
    holds_claim(bead_notes, claim_id) && matches!(latest_attempt(bead_notes), Attempt::Claimed(_))
}

/// An `in_progress` bead assigned to the agent, as the reaper reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    pub id: String,
    /// `None` when the stored value is not a date: then only the notes decide.
    pub updated_at: Option<NaiveDateTime>,
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
            (Note::Claimed(at, _), _) => Attempt::Claimed(at),
            (Note::Dispatching(at), Attempt::Claimed(_)) => Attempt::Sent(at),
            (
                Note::Dispatched(_)
                | Note::DispatchFailed
                | Note::DispatchRefused
                | Note::RefusedBlocked
                | Note::OutcomeUnknown
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
    match latest_attempt(&bead.notes) {
        Attempt::Claimed(at) if elapsed(at, now) > policy.claim_timeout => {
            return ReapAction::Release {
                note: notes::reaper_released(at, policy.claim_timeout),
            };
        }
        Attempt::Sent(at) if elapsed(at, now) > policy.claim_timeout => {
            return ReapAction::BlockUnknown {
                note: notes::reaper_outcome_unknown(at, policy.claim_timeout),
            };
        }
        Attempt::Claimed(_) | Attempt::Sent(_) => return ReapAction::Keep,
        Attempt::Settled | Attempt::Active => {}
    }
    let Some(updated_at) = bead.updated_at else {
        return ReapAction::Keep;
    };
    let age_min = elapsed(updated_at.and_utc(), now).as_secs() / 60;
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
            updated_at: Some(updated.naive_utc()),
            acceptance_criteria: ac.into(),
            notes: notes.into(),
        }
    }

    #[test]
    fn orders_by_priority_then_oldest_update_then_id() {
        let (got, _) = eligible(vec![
            cand("c", 2, t(9, 0, 0), "ok", ""),
            cand("b", 1, t(11, 0, 0), "ok", ""),
            cand("a", 1, t(11, 0, 0), "ok", ""),
            cand("d", 1, t(10, 0, 0), "ok", ""),
            cand("e", 0, t(11, 30, 0), "ok", ""),
        ]);
        let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["e", "d", "a", "b", "c"]);
    }

    #[test]
    fn blank_acceptance_criteria_is_not_eligible() {
        let (got, skipped) = eligible(vec![
            cand("a", 0, t(9, 0, 0), "  \n\t ", ""),
            cand("b", 0, t(9, 0, 0), "", ""),
            cand("c", 0, t(9, 0, 0), " x ", ""),
            // JavaScript's trim(): U+FEFF is blank, U+0085 is not.
            cand("d", 0, t(9, 0, 0), "\u{feff}\u{3000}", ""),
            cand("e", 0, t(9, 0, 0), "\u{85}", ""),
        ]);
        let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c", "e"]);
        assert_eq!(skipped.len(), 3);
        assert!(
            skipped
                .iter()
                .all(|(_, s)| *s == Skip::NoAcceptanceCriteria)
        );
    }

    #[test]
    fn full_notes_and_zero_dates_never_stop_the_others() {
        let full = "x".repeat(NOTES_LIMIT - 100);
        let mut zero = cand("z", 0, t(9, 0, 0), "ok", "");
        zero.updated_at = None;
        let (got, skipped) = eligible(vec![
            cand("f", 0, t(9, 0, 0), "ok", &full),
            zero,
            cand("a", 1, t(9, 0, 0), "ok", ""),
        ]);
        let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["z", "a"]);
        assert_eq!(skipped, [("f".to_string(), Skip::NotesFull)]);
    }

    #[test]
    fn retry_delays_double_and_cap() {
        let first = Duration::from_secs(120);
        let mins: Vec<u64> = (0..9)
            .map(|n| retry_delay(n, first).as_secs() / 60)
            .collect();
        assert_eq!(mins, [0, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX, first), MAX_RETRY_DELAY);
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
    fn the_whole_runner_pauses_after_a_transient_failure() {
        // Two failures on one bead → 4 minutes after its last attempt, for every bead.
        let n = format!(
            "{}\n{}",
            failed_attempt(t(10, 0, 0)),
            failed_attempt(t(10, 2, 0))
        );
        let c = [
            cand("a", 0, t(9, 0, 0), "ok", &n),
            cand("b", 0, t(9, 0, 0), "ok", ""),
        ];
        assert_eq!(
            paused_until(&c, Duration::from_secs(120)),
            Some(t(10, 6, 0))
        );
        assert_eq!(paused_until(&c[1..], Duration::from_secs(120)), None);
        // A block or a success resets it.
        let done = format!("{n}\n{}", notes::dispatched("j"));
        assert_eq!(
            paused_until(
                &[cand("a", 0, t(9, 0, 0), "ok", &done)],
                Duration::from_secs(120)
            ),
            None
        );
    }

    #[test]
    fn verdicts_never_reopen_an_unknown_outcome_or_block_for_an_outage() {
        let v = |a: Answer| verdict(&a, None);
        assert!(matches!(
            v(Answer::Accepted("j".into())),
            Verdict::Dispatched { .. }
        ));
        for a in [
            Answer::NotSent("refused".into()),
            Answer::Transient {
                status: 502,
                body: "fetch failed".into(),
            },
            Answer::Transient {
                status: 429,
                body: "".into(),
            },
        ] {
            assert!(matches!(v(a), Verdict::Release { outage: true, .. }));
        }
        assert!(
            matches!(v(Answer::Unknown("timed out".into())), Verdict::Block { note } if note.contains("outcome unknown"))
        );
        let not_found = Answer::Refused {
            status: 400,
            body: r#"{"error":"Bead x not found."}"#.into(),
        };
        assert!(matches!(
            verdict(&not_found, None),
            Verdict::Release { outage: false, .. }
        ));
        assert!(matches!(
            verdict(&not_found, Some("y")),
            Verdict::Block { .. }
        ));
        let no_ac = Answer::Refused {
            status: 400,
            body: r#"{"error":"Bead x is missing acceptance criteria."}"#.into(),
        };
        assert!(matches!(verdict(&no_ac, None), Verdict::Block { .. }));
        let blank_id = Answer::Refused {
            status: 400,
            body: r#"{"error":"taskId is required."}"#.into(),
        };
        assert!(matches!(verdict(&blank_id, None), Verdict::Block { .. }));
        let bad_json = Answer::Refused {
            status: 400,
            body: r#"{"error":"Invalid JSON body."}"#.into(),
        };
        assert!(matches!(
            verdict(&bad_json, None),
            Verdict::Release { outage: false, .. }
        ));
    }

    #[test]
    fn claims_are_checked_by_id() {
        let mine = notes::claimed_by(t(10, 0, 0), "r#1");
        let theirs = notes::claimed_by(t(10, 6, 0), "r#2");
        assert!(holds_claim(&mine, "r#1") && claim_pending(&mine, "r#1"));
        let released = format!(
            "{mine}\n{}",
            notes::reaper_released(t(10, 0, 0), Duration::from_secs(300))
        );
        assert!(holds_claim(&released, "r#1") && !claim_pending(&released, "r#1"));
        let reclaimed = format!("{released}\n{theirs}");
        assert!(!holds_claim(&reclaimed, "r#1") && !claim_pending(&reclaimed, "r#1"));
        assert!(!holds_claim(&notes::claimed(t(10, 0, 0)), "r#1"));
    }

    fn in_progress(updated: DateTime<Utc>, notes: &str) -> InProgress {
        InProgress {
            id: "b".into(),
            updated_at: Some(updated.naive_utc()),
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
                note: notes::reaper_released(t(11, 50, 0), Duration::from_secs(300))
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
