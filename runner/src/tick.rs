//! One dispatch tick and one reap tick: the order of I/O around the
//! decisions in [`crate::decide`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use beads_contract::notes;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::beadboard::BeadBoard;
use crate::decide::{self, Answer, Candidate, InProgress, ReapAction, ReapPolicy, Verdict, status};
use crate::failpoint;
use crate::store::{Bead, Change, InFlightCap, Store, StoreError, Written};

/// How a tick ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// Refused to run; nothing was written (exit 2).
    #[error("{0}")]
    Refused(String),
    /// The tick failed; whatever it claimed was rolled back or noted (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for TickError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(m) => TickError::Refused(m),
            other => TickError::Failed(other.to_string()),
        }
    }
}

/// Runs a tick, abandoning it at the deadline: a hung statement or request
/// then fails the tick instead of holding the process (and, under a
/// CronJob's `concurrencyPolicy: Forbid`, every later tick). Here, beside
/// the ticks, since both [`crate::app`] (one tick a process) and
/// [`crate::serve`] (ticks on a timer) run them through it.
pub async fn within_deadline<T>(
    deadline: Instant,
    length: Duration,
    tick: impl std::future::Future<Output = Result<T, TickError>>,
) -> Result<T, TickError> {
    match tokio::time::timeout_at(deadline, tick).await {
        Ok(result) => result,
        Err(_) => Err(TickError::Failed(format!(
            "the tick did not finish within its deadline of {}; abandoned",
            beads_contract::format_duration(length)
        ))),
    }
}

/// What a dispatch tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Eligible beads found (acceptance criteria present, room in notes).
    pub eligible: usize,
    /// `(bead id, job id)` of each bead dispatched.
    pub dispatched: Vec<(String, String)>,
    /// Beads whose dispatch was attempted and did not succeed.
    pub failed: Vec<String>,
    /// Beads blocked this tick (refused for their own reason, or outcome unknown).
    pub blocked: Vec<String>,
    /// `(bead id, reason)` of candidates skipped without a request.
    pub skipped: Vec<(String, String)>,
    /// Errors on single beads; the tick went on past each of them.
    pub errors: Vec<String>,
    /// BeadBoard (or the agent service behind it) is down: what ended the tick.
    pub outage: Option<String>,
    /// The runner is pausing after transient failures, until then.
    pub paused_until: Option<DateTime<Utc>>,
    /// BeadBoard said busy.
    pub busy: bool,
    /// `max_in_flight` beads were already in progress.
    pub at_capacity: bool,
    /// Dry run: the beads that would have been dispatched.
    pub would_dispatch: Vec<String>,
}

impl DispatchReport {
    /// Dispatch requests actually sent, successful or not.
    pub fn attempts(&self) -> usize {
        self.dispatched.len() + self.failed.len()
    }

    /// Whether the tick counts as failed (exit 1): an outage, a failed
    /// attempt, or an error on a bead.
    pub fn is_failure(&self) -> bool {
        self.outage.is_some() || !self.failed.is_empty() || !self.errors.is_empty()
    }

    /// One line saying why the tick failed.
    pub fn failure(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.outage {
            parts.push(o.clone());
        }
        if !self.failed.is_empty() {
            parts.push(format!("not dispatched: {}", self.failed.join(", ")));
        }
        parts.extend(self.errors.iter().cloned());
        parts.join("; ")
    }
}

/// Settings of a dispatch tick.
pub struct DispatchTick<'a> {
    pub store: &'a Store,
    pub board: &'a BeadBoard,
    pub actor: &'a str,
    pub assignee: &'a str,
    pub max_in_flight: u32,
    pub dry_run: bool,
    /// Set on SIGTERM: finish the bead in hand, start no other.
    pub stop: &'a AtomicBool,
    /// First runner-wide pause after a transient failure.
    pub retry_delay: Duration,
    /// No new bead is started after it; outcome writes retry until it.
    pub deadline: Instant,
}

/// A claim id: the actor and 48 random bits, unique per claim.
fn new_claim_id(actor: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter and clock
    // make each claim of this process differ too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(Utc::now().timestamp_nanos_opt().unwrap_or_default());
    format!("{actor}#{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A refusal not yet known to be about its bead.
struct PendingRefusal {
    id: String,
    claim_id: String,
    note: String,
}

impl DispatchTick<'_> {
    /// Runs the tick. The database is asked first; BeadBoard only when a bead
    /// is eligible and the runner is not pausing, so an idle tick is one
    /// query and nothing else. Errors on one bead never end the tick.
    pub async fn run(&self) -> Result<DispatchReport, TickError> {
        let mut report = DispatchReport::default();
        let found = self.store.candidates(self.assignee).await?;
        for (id, problem) in found.unreadable {
            tracing::warn!(
                bead_id = id.as_str(),
                outcome = "unreadable",
                "{problem}; skipped"
            );
            report.skipped.push((id, problem));
        }
        let (candidates, skipped) = decide::eligible(found.beads);
        for (id, skip) in skipped {
            if skip == decide::Skip::NotesFull {
                tracing::warn!(
                    bead_id = id.as_str(),
                    outcome = "notes_full",
                    "notes have no room for another attempt's notes; skipped"
                );
            }
            report.skipped.push((id, format!("{skip:?}")));
        }
        report.eligible = candidates.len();
        if candidates.is_empty() {
            tracing::info!(outcome = "idle", "no eligible bead");
            return Ok(report);
        }
        let now = Utc::now();
        if let Some(until) = decide::paused_until(&candidates, self.retry_delay)
            && now < until
        {
            tracing::info!(outcome = "paused", until = %notes::timestamp(until), "BeadBoard failed recently; pausing");
            report.paused_until = Some(until);
            return Ok(report);
        }
        self.store.verify().await?;

        let mut slots = decide::free_slots(
            self.max_in_flight,
            self.store.count_in_progress(self.assignee).await?,
        );
        let mut accepted: Option<String> = None;
        let mut pending: Vec<PendingRefusal> = Vec::new();
        for candidate in candidates {
            if self.stop.load(Ordering::SeqCst) {
                tracing::info!(
                    outcome = "stopped",
                    "shutdown requested; no further beads this tick"
                );
                break;
            }
            if Instant::now() >= self.deadline {
                tracing::warn!(
                    outcome = "deadline",
                    "tick deadline reached; no further beads"
                );
                break;
            }
            if slots == 0 {
                report.at_capacity = true;
                tracing::info!(
                    outcome = "at_capacity",
                    max_in_flight = self.max_in_flight,
                    "enough of the agent's beads are in progress"
                );
                break;
            }
            match self.board.busy().await {
                Ok(false) => {}
                Ok(true) => {
                    report.busy = true;
                    tracing::info!(outcome = "busy", "agent busy; skipping");
                    break;
                }
                Err(e) => {
                    // Nothing of this bead is written yet: no note.
                    report.outage = Some(format!("BeadBoard unreachable: {e}"));
                    break;
                }
            }
            if self.dry_run {
                println!("would dispatch {}", candidate.id);
                report.would_dispatch.push(candidate.id);
                slots -= 1;
                continue;
            }
            let id = candidate.id.clone();
            match self.dispatch_one(&candidate, accepted.as_deref()).await {
                Err(TickError::Refused(m)) => return Err(TickError::Refused(m)),
                Err(TickError::Failed(m)) => {
                    tracing::error!(bead_id = id.as_str(), outcome = "error", error = %m, "error on this bead; going on");
                    report.errors.push(m);
                }
                Ok(Claim::Taken) => {}
                Ok(Claim::AtCapacity) => {
                    report.at_capacity = true;
                    tracing::info!(
                        outcome = "at_capacity",
                        max_in_flight = self.max_in_flight,
                        "enough of the agent's beads are in progress"
                    );
                    break;
                }
                Ok(Claim::Sent { verdict, claim_id }) => match verdict {
                    Verdict::Dispatched { note } => {
                        let job = note.trim_start_matches("dispatched: job=").to_string();
                        report.dispatched.push((id.clone(), job));
                        slots -= 1;
                        // BeadBoard takes other beads: earlier refusals were about theirs.
                        for p in pending.drain(..) {
                            self.block_refused(&p, &id, &mut report).await;
                        }
                        accepted = Some(id);
                    }
                    Verdict::Block { .. } => {
                        report.failed.push(id.clone());
                        report.blocked.push(id);
                    }
                    Verdict::Release { note, outage: true } => {
                        report.failed.push(id);
                        report.outage = Some(note);
                        break;
                    }
                    Verdict::Release {
                        note,
                        outage: false,
                    } => {
                        report.failed.push(id.clone());
                        pending.push(PendingRefusal { id, claim_id, note });
                        if pending.len() >= 2 {
                            report.outage = Some(format!(
                                "BeadBoard refused every bead it was offered ({}); treated as an outage, nothing blocked",
                                pending
                                    .iter()
                                    .map(|p| p.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            break;
                        }
                    }
                },
            }
        }
        Ok(report)
    }

    /// Claim, mark, send, record.
    async fn dispatch_one(
        &self,
        candidate: &Candidate,
        accepted_other: Option<&str>,
    ) -> Result<Claim, TickError> {
        let id = candidate.id.as_str();
        let claimed_at = Utc::now();
        let claim_id = new_claim_id(self.actor);
        let assignee = self.assignee;
        let cap = InFlightCap {
            assignee,
            max_in_flight: self.max_in_flight,
        };
        let claim_note = notes::claimed_by(claimed_at, &claim_id);
        let claim = self
            .store
            .claim(id, self.actor, claimed_at, cap, |bead| {
                claimable(bead, assignee).then(|| Change {
                    status: Some(status::IN_PROGRESS),
                    notes: vec![claim_note.clone()],
                    note_first: false,
                })
            })
            .await?;
        match claim {
            Written::Done(..) => {}
            Written::Declined => {
                tracing::info!(
                    bead_id = id,
                    outcome = "taken",
                    "bead changed before the claim; next"
                );
                return Ok(Claim::Taken);
            }
            Written::AtCapacity => return Ok(Claim::AtCapacity),
        };
        tracing::info!(
            bead_id = id,
            claim_id = claim_id.as_str(),
            outcome = "claimed",
            "claimed"
        );
        failpoint::pause(failpoint::CLAIMED).await;

        // The marker lets the reaper tell a claim that never reached BeadBoard
        // (safe to reopen) from one whose outcome is unknown (must not be
        // resent). Written only while the claim is still this runner's and
        // pending: a runner paused past the claim timeout finds the reaper's
        // release (or another runner's claim) here and sends nothing.
        let sending_at = Utc::now();
        let marked = self
            .store
            .write(id, self.actor, sending_at, |bead| {
                (bead.status == status::IN_PROGRESS
                    && decide::claim_pending(&bead.notes, &claim_id))
                .then(|| Change {
                    notes: vec![notes::dispatching(sending_at)],
                    ..Change::default()
                })
            })
            .await;
        match marked {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(
                    bead_id = id,
                    outcome = "taken",
                    "the claim is no longer this runner's; not sent"
                );
                return Ok(Claim::Taken);
            }
            Err(e) => {
                // Not sent: give the claim back (best effort; otherwise the
                // reaper reopens it after the claim timeout).
                let verdict = Verdict::Release {
                    note: notes::dispatch_failed_transport(&format!("not sent: {e}")),
                    outage: true,
                };
                if let Err(e2) = self.record(id, &claim_id, &verdict).await {
                    tracing::error!(bead_id = id, error = %e2, "could not give the claim back; the reaper will reopen it after the claim timeout");
                }
                return Err(e.into());
            }
        }

        failpoint::pause(failpoint::MARKED).await;
        let answer = self.board.dispatch(id).await;
        failpoint::pause(failpoint::POSTED).await;
        let verdict = decide::verdict(&answer, accepted_other);
        match self.record(id, &claim_id, &verdict).await {
            Ok(written) => {
                let (outcome, status_set) = match &verdict {
                    Verdict::Dispatched { .. } => ("dispatched", status::IN_PROGRESS),
                    Verdict::Release { outage: true, .. } => ("dispatch_failed", status::OPEN),
                    Verdict::Release { outage: false, .. } => ("dispatch_refused", status::OPEN),
                    Verdict::Block { .. } => match answer {
                        Answer::Unknown(_) => ("outcome_unknown", status::BLOCKED),
                        _ => ("refused_blocked", status::BLOCKED),
                    },
                };
                let job = match &answer {
                    Answer::Accepted(job) => job.as_str(),
                    _ => "",
                };
                if written {
                    tracing::info!(
                        bead_id = id,
                        job_id = job,
                        outcome,
                        status = status_set,
                        "{}",
                        verdict_note(&verdict)
                    );
                } else {
                    tracing::warn!(
                        bead_id = id,
                        job_id = job,
                        outcome,
                        "the claim is no longer this runner's; outcome not written: {}",
                        verdict_note(&verdict)
                    );
                }
            }
            Err(e) => {
                return Err(TickError::Failed(format!(
                    "bead {id}: BeadBoard answered ({}) but it could not be written: {e}",
                    verdict_note(&verdict)
                )));
            }
        }
        Ok(Claim::Sent { verdict, claim_id })
    }

    /// Writes a verdict, conditional on the claim still being this
    /// runner's, retrying across lost connections until the tick deadline
    /// (the job id must not be lost to one dropped connection). Returns
    /// false when the claim was no longer this runner's.
    async fn record(
        &self,
        id: &str,
        claim_id: &str,
        verdict: &Verdict,
    ) -> Result<bool, StoreError> {
        let (new_status, note) = match verdict {
            Verdict::Dispatched { note } => (None, note),
            Verdict::Release { note, .. } => (Some(status::OPEN), note),
            Verdict::Block { note } => (Some(status::BLOCKED), note),
        };
        let mut pause = Duration::from_millis(100);
        loop {
            let result = self
                .store
                .write(id, self.actor, Utc::now(), |bead| {
                    let mine = decide::holds_claim(&bead.notes, claim_id);
                    // A job note is worth keeping even if the reaper already
                    // blocked the bead; a status change needs the claim live.
                    let ok = match new_status {
                        None => mine,
                        Some(_) => mine && bead.status == status::IN_PROGRESS,
                    };
                    ok.then(|| Change {
                        status: new_status,
                        notes: vec![note.clone()],
                        note_first: false,
                    })
                })
                .await;
            match result {
                Ok(written) => return Ok(written.is_some()),
                Err(e) if e.is_refusal() => return Err(e),
                Err(e) if Instant::now() + pause < self.deadline => {
                    tracing::warn!(bead_id = id, error = %e, "could not record the outcome; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Blocks a bead BeadBoard refused earlier in this tick, now that it
    /// accepted `other`: the refusal was about that bead.
    async fn block_refused(&self, p: &PendingRefusal, other: &str, report: &mut DispatchReport) {
        let note = notes::refused_blocked(&format!(
            "{}; it accepted {other} in the same tick",
            p.note.trim_start_matches("dispatch refused ")
        ));
        let result = self
            .store
            .write(&p.id, self.actor, Utc::now(), |bead| {
                (bead.status == status::OPEN
                    && decide::holds_claim(&bead.notes, &p.claim_id)
                    && bead.notes.lines().last() == Some(p.note.as_str()))
                .then(|| Change {
                    status: Some(status::BLOCKED),
                    notes: vec![note.clone()],
                    note_first: false,
                })
            })
            .await;
        match result {
            Ok(Some(_)) => {
                tracing::warn!(
                    bead_id = p.id.as_str(),
                    outcome = "refused_blocked",
                    "{note}"
                );
                report.blocked.push(p.id.clone());
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(bead_id = p.id.as_str(), error = %e, "could not block a refused bead");
                report.errors.push(format!("bead {}: {e}", p.id));
            }
        }
    }
}

fn verdict_note(v: &Verdict) -> &str {
    match v {
        Verdict::Dispatched { note } | Verdict::Release { note, .. } | Verdict::Block { note } => {
            note
        }
    }
}

/// Whether the locked row may still be claimed: the same rules as the
/// candidate query and [`decide::check_candidate`], on the row as it is now.
fn claimable(bead: &Bead, assignee: &str) -> bool {
    bead.status == status::OPEN
        && bead.assignee.as_deref() == Some(assignee)
        && !bead.is_template
        && !bead
            .labels
            .iter()
            .any(|l| l == beads_contract::labels::BEAD_HIDDEN_FROM_BEADBOARD)
        && decide::check_candidate(&Candidate {
            id: bead.id.clone(),
            priority: bead.priority,
            updated_at: bead.updated_at,
            acceptance_criteria: bead.acceptance_criteria.clone(),
            notes: bead.notes.clone(),
        })
        .is_ok()
}

/// How one bead's dispatch ended.
enum Claim {
    /// Claimed and sent; what became of it.
    Sent { verdict: Verdict, claim_id: String },
    /// Someone else changed or claimed it first.
    Taken,
    /// Another runner filled the last slot first.
    AtCapacity,
}

/// What a reap tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReapReport {
    /// `in_progress` beads looked at.
    pub examined: usize,
    /// `(bead id, status set)` for each bead changed (or, in a dry run, to be changed).
    pub changed: Vec<(String, &'static str)>,
    /// Errors on single beads; the tick went on past each of them.
    pub errors: Vec<String>,
}

/// Settings of a reap tick.
pub struct ReapTick<'a> {
    pub store: &'a Store,
    pub actor: &'a str,
    pub assignee: &'a str,
    pub policy: ReapPolicy,
    pub dry_run: bool,
}

impl ReapTick<'_> {
    /// Runs the tick: one query, then one transaction per bead to change,
    /// each re-deciding on the locked row.
    pub async fn run(&self) -> Result<ReapReport, TickError> {
        let beads = self.store.in_progress(self.assignee).await?;
        let mut report = ReapReport {
            examined: beads.len(),
            ..ReapReport::default()
        };
        let now = Utc::now();
        for bead in beads {
            let action = decide::reap(&bead, now, self.policy);
            let (Some(new_status), Some(note)) = (action.new_status(), action.note()) else {
                continue;
            };
            if self.dry_run {
                println!("would set {} to {new_status}: {note}", bead.id);
                report.changed.push((bead.id, new_status));
                continue;
            }
            self.store.verify().await?;
            let assignee = self.assignee;
            let policy = self.policy;
            let written = match self
                .store
                .write(&bead.id, self.actor, now, |row| {
                    if row.status != status::IN_PROGRESS
                        || row.assignee.as_deref() != Some(assignee)
                    {
                        return None;
                    }
                    if row.is_template {
                        return None;
                    }
                    let current = InProgress {
                        id: row.id.clone(),
                        updated_at: row.updated_at,
                        notes: row.notes.clone(),
                    };
                    let action = decide::reap(&current, now, policy);
                    reap_change(&action)
                })
                .await
            {
                Ok(w) => w,
                Err(e) if e.is_refusal() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(bead_id = bead.id.as_str(), outcome = "error", error = %e, "error on this bead; going on");
                    report.errors.push(format!("bead {}: {e}", bead.id));
                    continue;
                }
            };
            if let Some((_, change)) = written {
                let set = change.status.unwrap_or(status::IN_PROGRESS);
                tracing::info!(
                    bead_id = bead.id.as_str(),
                    outcome = reap_outcome(&action),
                    status = set,
                    "reaped"
                );
                report.changed.push((bead.id, set));
            }
        }
        if report.changed.is_empty() {
            tracing::info!(
                outcome = "idle",
                examined = report.examined,
                "nothing to reap"
            );
        }
        Ok(report)
    }
}

/// The reaper's change: its note first, then the status, as the script ran
/// `bd note` before `bd update -s`.
fn reap_change(action: &ReapAction) -> Option<Change> {
    Some(Change {
        status: Some(action.new_status()?),
        notes: vec![action.note()?.to_string()],
        note_first: true,
    })
}

fn reap_outcome(action: &ReapAction) -> &'static str {
    match action {
        ReapAction::Keep => "kept",
        ReapAction::Block { .. } => "blocked_stale",
        ReapAction::Release { .. } => "released",
        ReapAction::BlockUnknown { .. } => "blocked_unknown",
    }
}
