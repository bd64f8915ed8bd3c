//! The notes the runner appends to a bead, and how to recognise them again.
//!
//! Notes are the audit trail operators read (`bd show`), and the runner's
//! own memory: the runner-wide pause after failures and the claim timeout
//! are worked out from them, so the texts below are both written and parsed here.

use chrono::{DateTime, NaiveDateTime, Utc};

const CLAIMED_PREFIX: &str = "auto-dispatcher claimed at ";
const DISPATCHING_PREFIX: &str = "dispatching to BeadBoard at ";
const DISPATCHED_PREFIX: &str = "dispatched: job=";
const FAILED_PREFIX: &str = "dispatch failed";
const STALE_PREFIX: &str = "reaper: no progress for ";
const RELEASED_PREFIX: &str = "reaper: claimed at ";
const UNKNOWN_PREFIX: &str = "reaper: dispatch outcome unknown since ";
const REFUSED_PREFIX: &str = "dispatch refused HTTP ";
const REFUSED_BLOCKED_PREFIX: &str = "auto-dispatcher: refused by BeadBoard";
const OUTCOME_UNKNOWN_PREFIX: &str = "dispatch outcome unknown: ";
const CLAIMED_BY: &str = " by ";
const BACKOFF_PREFIX: &str = "auto-dispatcher: ";
const BACKOFF_SUFFIX: &str = " consecutive dispatch failures — blocking";
/// Timestamp format of notes: RFC 3339, UTC, whole seconds, `Z` (as `date -u +%Y-%m-%dT%H:%M:%SZ`).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";
/// Longest response body quoted in a failure note; the rest is cut.
pub const MAX_QUOTED_BODY: usize = 500;

/// Formats a note timestamp.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format(TIMESTAMP_FORMAT).to_string()
}

/// `auto-dispatcher claimed at 2026-04-18T22:35:46Z` (the scripts' claim
/// note; still recognised, no longer written).
pub fn claimed(at: DateTime<Utc>) -> String {
    format!("{CLAIMED_PREFIX}{}", timestamp(at))
}

/// `auto-dispatcher claimed at 2026-04-18T22:35:46Z by <claim id>`: the
/// claim id names this one claim, so every later write can check the claim
/// is still this runner's, and two runners claiming in the same second on
/// Dolt write different rows (a conflict) instead of identical ones.
pub fn claimed_by(at: DateTime<Utc>, claim_id: &str) -> String {
    format!(
        "{CLAIMED_PREFIX}{}{CLAIMED_BY}{}",
        timestamp(at),
        one_line(claim_id, 100)
    )
}

/// Written just before the dispatch request, after the claim committed. With
/// it the reaper can tell "claimed, never sent" (safe to reopen) from "sent,
/// outcome never recorded" (reopening could dispatch the bead twice).
pub fn dispatching(at: DateTime<Utc>) -> String {
    format!("{DISPATCHING_PREFIX}{}", timestamp(at))
}

/// `dispatched: job=<job_id>`
pub fn dispatched(job_id: &str) -> String {
    format!("{DISPATCHED_PREFIX}{}", one_line(job_id, MAX_QUOTED_BODY))
}

/// `dispatch failed HTTP <code>: <body>`; the body is put on one line and cut
/// at [`MAX_QUOTED_BODY`] characters so a note never spans several lines.
pub fn dispatch_failed_http(status: u16, body: &str) -> String {
    format!(
        "{FAILED_PREFIX} HTTP {status}: {}",
        one_line(body, MAX_QUOTED_BODY)
    )
}

/// `dispatch failed: <transport error>`: the request never reached BeadBoard
/// (connection refused, DNS).
pub fn dispatch_failed_transport(error: &str) -> String {
    format!("{FAILED_PREFIX}: {}", one_line(error, MAX_QUOTED_BODY))
}

/// `dispatch refused HTTP 400: <body>`: BeadBoard refused the bead, and
/// nothing shows yet that the refusal is about this bead (BeadBoard answers
/// "not found" for every bead when its own database read fails).
pub fn dispatch_refused(status: u16, body: &str) -> String {
    format!(
        "{REFUSED_PREFIX}{status}: {}",
        one_line(body, MAX_QUOTED_BODY)
    )
}

/// The note that blocks a bead BeadBoard refused for a reason of its own
/// (`why`: its answer, or that it accepted another bead meanwhile).
pub fn refused_blocked(why: &str) -> String {
    format!(
        "{REFUSED_BLOCKED_PREFIX} ({}) — blocking; fix the bead, then reopen it",
        one_line(why, MAX_QUOTED_BODY)
    )
}

/// The note that blocks a bead whose request may have reached BeadBoard but
/// whose answer was lost (timeout or reset after sending, an unreadable 2xx,
/// a 2xx without `job_id`).
pub fn outcome_unknown(reason: &str) -> String {
    format!(
        "{OUTCOME_UNKNOWN_PREFIX}{} — blocking so it is not dispatched twice; check the agent before reopening",
        one_line(reason, MAX_QUOTED_BODY)
    )
}
/// `reaper: no progress for <N>m (threshold <T>m) — blocking` (U+2014, as the script wrote it).
pub fn reaper_stale(age_minutes: u64, threshold_minutes: u64) -> String {
    format!("{STALE_PREFIX}{age_minutes}m (threshold {threshold_minutes}m) — blocking")
}

/// The reaper's note when a bead was claimed but never dispatched. The
/// timeout is written as a duration (`5m`, `30s`), never rounded to `0m`.
pub fn reaper_released(claimed_at: DateTime<Utc>, timeout: std::time::Duration) -> String {
    format!(
        "{RELEASED_PREFIX}{} but never dispatched within {} — returning to open",
        timestamp(claimed_at),
        crate::format_duration(timeout)
    )
}

/// The reaper's note when a dispatch request was sent but its outcome was
/// never recorded (the runner died or lost the database mid-dispatch).
pub fn reaper_outcome_unknown(sent_at: DateTime<Utc>, timeout: std::time::Duration) -> String {
    format!(
        "{UNKNOWN_PREFIX}{} (claim timeout {}) — blocking so it is not dispatched twice; check the agent before reopening",
        timestamp(sent_at),
        crate::format_duration(timeout)
    )
}

/// The scripts' note when they gave up on a bead after repeated failures.
/// No longer written; kept so old notes are recognised (and tested).
pub fn backoff_blocked(failures: u32) -> String {
    format!("{BACKOFF_PREFIX}{failures}{BACKOFF_SUFFIX}")
}

/// What a single note line is, as far as the runner is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A claim, with its claim id (absent in the scripts' claim notes).
    Claimed(DateTime<Utc>, Option<String>),
    Dispatching(DateTime<Utc>),
    Dispatched(String),
    /// A transient failure or a request that was never sent.
    DispatchFailed,
    /// BeadBoard refused the bead; the bead went back to `open`.
    DispatchRefused,
    /// Blocked because BeadBoard refused it for a reason of its own.
    RefusedBlocked,
    /// Blocked by the dispatcher because the request's outcome is unknown.
    OutcomeUnknown,
    ReaperStale,
    ReaperReleased,
    ReaperOutcomeUnknown,
    BackoffBlocked,
    /// Anything else: a person's note, the agent's progress notes.
    Other,
}

/// Recognises one line of a bead's `notes`.
pub fn classify(line: &str) -> Note {
    if let Some(rest) = line.strip_prefix(CLAIMED_PREFIX) {
        let (at, by) = match rest.split_once(CLAIMED_BY) {
            Some((at, by)) => (at, Some(by.trim().to_string())),
            None => (rest, None),
        };
        return match NaiveDateTime::parse_from_str(at.trim(), TIMESTAMP_FORMAT) {
            Ok(t) => Note::Claimed(t.and_utc(), by),
            Err(_) => Note::Other,
        };
    }
    if let Some(rest) = line.strip_prefix(DISPATCHING_PREFIX) {
        return match NaiveDateTime::parse_from_str(rest.trim(), TIMESTAMP_FORMAT) {
            Ok(t) => Note::Dispatching(t.and_utc()),
            Err(_) => Note::Other,
        };
    }
    if let Some(job) = line.strip_prefix(DISPATCHED_PREFIX) {
        return Note::Dispatched(job.to_string());
    }
    if line.starts_with(FAILED_PREFIX) {
        return Note::DispatchFailed;
    }
    if line.starts_with(REFUSED_PREFIX) {
        return Note::DispatchRefused;
    }
    if line.starts_with(REFUSED_BLOCKED_PREFIX) {
        return Note::RefusedBlocked;
    }
    if line.starts_with(OUTCOME_UNKNOWN_PREFIX) {
        return Note::OutcomeUnknown;
    }
    if line.starts_with(STALE_PREFIX) {
        return Note::ReaperStale;
    }
    if line.starts_with(UNKNOWN_PREFIX) {
        return Note::ReaperOutcomeUnknown;
    }
    if line.starts_with(RELEASED_PREFIX) {
        return Note::ReaperReleased;
    }
    if line.starts_with(BACKOFF_PREFIX) && line.ends_with(BACKOFF_SUFFIX) {
        return Note::BackoffBlocked;
    }
    Note::Other
}

/// Every line of a `notes` column, classified, oldest first.
pub fn history(notes: &str) -> Vec<Note> {
    notes.lines().map(classify).collect()
}

/// `notes` with `note` appended the way `bd note` does: a single `\n`
/// separator, none before the first note.
pub fn append(notes: &str, note: &str) -> String {
    if notes.is_empty() {
        note.to_string()
    } else {
        format!("{notes}\n{note}")
    }
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max_chars {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

// ---------------------------------------------------------------------------
// Reading notes back for `beads-runner status`.
//
// `status` shows history written by this runner, by older runners, by the
// shell scripts and by newer runners, so these helpers are tolerant: a note
// may gain trailing words (a claim note ` by <runner>`), and a note kind this
// version does not know is still attributed by its prefix.

/// Which part of auto-dispatch wrote a note line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The dispatch tick (claims, markers, outcomes, refusals, blocks).
    Dispatcher,
    /// The reap tick.
    Reaper,
}

/// Who wrote `line`, judged by the prefixes the runner writes (`reaper: `,
/// `auto-dispatcher`, `dispatch…`); `None` for a person's or the agent's note.
pub fn writer(line: &str) -> Option<Writer> {
    if line.starts_with("reaper: ") {
        Some(Writer::Reaper)
    } else if line.starts_with("auto-dispatcher")
        || line.starts_with(DISPATCHING_PREFIX)
        || line.starts_with(DISPATCHED_PREFIX)
        || line.starts_with(FAILED_PREFIX)
        || line.starts_with(REFUSED_PREFIX)
        || line.starts_with(OUTCOME_UNKNOWN_PREFIX)
    {
        Some(Writer::Dispatcher)
    } else {
        None
    }
}

/// The time a claim note was written, tolerating trailing words after the
/// timestamp (`auto-dispatcher claimed at <ts> by <runner>`).
pub fn claimed_at(line: &str) -> Option<DateTime<Utc>> {
    first_timestamp(line.strip_prefix(CLAIMED_PREFIX)?)
}

/// The time a "dispatching" marker was written, tolerating trailing words.
pub fn dispatching_at(line: &str) -> Option<DateTime<Utc>> {
    first_timestamp(line.strip_prefix(DISPATCHING_PREFIX)?)
}

/// The job id of a `dispatched: job=<id>` note.
pub fn dispatched_job(line: &str) -> Option<&str> {
    line.strip_prefix(DISPATCHED_PREFIX)
}

/// Whether a runner's note says it blocked the bead: the reaper's notes, the
/// dispatcher's refusal and unknown-outcome notes, the scripts' old backoff
/// note, and any later runner note this version does not know that says
/// "blocking". A known note that does not block (a refusal that reopened the
/// bead) never counts, whatever the quoted body says.
pub fn is_block(line: &str) -> bool {
    match classify(line) {
        Note::ReaperStale
        | Note::ReaperOutcomeUnknown
        | Note::RefusedBlocked
        | Note::OutcomeUnknown
        | Note::BackoffBlocked => true,
        Note::Other => writer(line).is_some() && line.contains("blocking"),
        _ => false,
    }
}

fn first_timestamp(rest: &str) -> Option<DateTime<Utc>> {
    let token = rest.split_whitespace().next()?;
    NaiveDateTime::parse_from_str(token, TIMESTAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn texts_match_the_shell_scripts() {
        let at = Utc.with_ymd_and_hms(2026, 4, 18, 22, 35, 46).unwrap();
        assert_eq!(
            claimed(at),
            "auto-dispatcher claimed at 2026-04-18T22:35:46Z"
        );
        assert_eq!(dispatched("abc123"), "dispatched: job=abc123");
        assert_eq!(
            dispatch_failed_http(500, "{\"error\":\n\"x\"}"),
            "dispatch failed HTTP 500: {\"error\": \"x\"}"
        );
        assert_eq!(
            reaper_stale(31, 30),
            "reaper: no progress for 31m (threshold 30m) \u{2014} blocking"
        );
    }

    #[test]
    fn every_written_note_is_recognised() {
        let at = Utc.with_ymd_and_hms(2026, 4, 18, 22, 35, 46).unwrap();
        assert_eq!(classify(&claimed(at)), Note::Claimed(at, None));
        assert_eq!(
            classify(&claimed_by(at, "beads-runner#1f2e")),
            Note::Claimed(at, Some("beads-runner#1f2e".into()))
        );
        assert_eq!(
            claimed_by(at, "r#1"),
            "auto-dispatcher claimed at 2026-04-18T22:35:46Z by r#1"
        );
        assert_eq!(classify(&dispatch_refused(400, "x")), Note::DispatchRefused);
        assert_eq!(classify(&refused_blocked("x")), Note::RefusedBlocked);
        assert_eq!(
            classify(&outcome_unknown("timed out")),
            Note::OutcomeUnknown
        );
        assert_eq!(classify(&dispatched("j1")), Note::Dispatched("j1".into()));
        assert_eq!(classify(&dispatching(at)), Note::Dispatching(at));
        assert_eq!(
            classify(&reaper_outcome_unknown(
                at,
                std::time::Duration::from_secs(300)
            )),
            Note::ReaperOutcomeUnknown
        );
        assert_eq!(
            classify(&dispatch_failed_http(502, "x")),
            Note::DispatchFailed
        );
        assert_eq!(
            classify(&dispatch_failed_transport("refused")),
            Note::DispatchFailed
        );
        assert_eq!(classify(&reaper_stale(40, 30)), Note::ReaperStale);
        assert_eq!(
            classify(&reaper_released(at, std::time::Duration::from_secs(300))),
            Note::ReaperReleased
        );
        assert!(
            reaper_released(at, std::time::Duration::from_secs(30)).contains("within 30s"),
            "a sub-minute timeout is not rounded to 0m"
        );
        assert_eq!(classify(&backoff_blocked(5)), Note::BackoffBlocked);
        assert_eq!(classify("claimed by agent 1234"), Note::Other);
        assert_eq!(
            classify("auto-dispatcher claimed at yesterday"),
            Note::Other
        );
    }

    #[test]
    fn long_bodies_are_cut_to_one_line() {
        let note = dispatch_failed_http(500, &"x\n".repeat(2000));
        assert!(!note.contains('\n'));
        assert!(note.chars().count() < MAX_QUOTED_BODY + 40);
    }

    #[test]
    fn append_matches_bd_note() {
        assert_eq!(append("", "a"), "a");
        assert_eq!(append("a", "b"), "a\nb");
    }

    #[test]
    fn status_helpers_tolerate_suffixes_and_new_kinds() {
        let at = Utc.with_ymd_and_hms(2026, 4, 18, 22, 35, 46).unwrap();
        assert_eq!(claimed_at(&claimed(at)), Some(at));
        assert_eq!(
            claimed_at(&format!("{} by runner-7f3a", claimed(at))),
            Some(at)
        );
        assert_eq!(claimed_at("auto-dispatcher claimed at yesterday"), None);
        assert_eq!(dispatching_at(&dispatching(at)), Some(at));
        assert_eq!(dispatched_job(&dispatched("j-9")), Some("j-9"));
        assert_eq!(writer(&reaper_stale(31, 30)), Some(Writer::Reaper));
        assert_eq!(writer(&backoff_blocked(5)), Some(Writer::Dispatcher));
        assert_eq!(
            writer(&dispatch_failed_transport("x")),
            Some(Writer::Dispatcher)
        );
        assert_eq!(writer("agent: halfway there"), None);
        assert!(is_block(&reaper_stale(31, 30)));
        assert!(is_block(&reaper_outcome_unknown(
            at,
            std::time::Duration::from_secs(300)
        )));
        assert!(is_block(&refused_blocked(
            "HTTP 400: missing acceptance criteria"
        )));
        assert!(is_block(&outcome_unknown("timed out after sending")));
        assert_eq!(writer(&outcome_unknown("x")), Some(Writer::Dispatcher));
        assert_eq!(
            writer(&dispatch_refused(400, "x")),
            Some(Writer::Dispatcher)
        );
        // Reopened, not blocked, even when BeadBoard's body says "blocking".
        assert!(!is_block(&dispatch_refused(400, "blocking")));
        assert!(!is_block(&dispatch_failed_http(502, "blocking")));
        assert!(is_block(&backoff_blocked(5)));
        assert!(is_block(
            "auto-dispatcher: BeadBoard refused this bead — blocking"
        ));
        assert!(!is_block(&dispatched("j")));
        assert!(!is_block("person: blocking on review"));
    }
}
