//! One dispatch tick and one reap tick: the order of I/O around the
//! decisions in [`crate::decide`].

use std::sync::atomic::{AtomicBool, Ordering};

use beads_contract::notes;
use chrono::Utc;

use crate::beadboard::BeadBoard;
use crate::decide::{self, Candidate, InProgress, ReapAction, ReapPolicy, status};
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

/// What a dispatch tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Eligible beads found (after acceptance criteria and backoff).
    pub eligible: usize,
    /// `(bead id, job id)` of each bead dispatched.
    pub dispatched: Vec<(String, String)>,
    /// Beads whose dispatch failed and were rolled back (or blocked).
    pub failed: Vec<String>,
    /// BeadBoard said busy.
    pub busy: bool,
    /// `max_in_flight` beads were already in progress.
    pub at_capacity: bool,
    /// Dry run: the beads that would have been dispatched.
    pub would_dispatch: Vec<String>,
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
}

impl DispatchTick<'_> {
    /// Runs the tick. The database is asked first; BeadBoard only when a bead
    /// is eligible, so an idle tick is one indexed query and nothing else.
    pub async fn run(&self) -> Result<DispatchReport, TickError> {
        let mut report = DispatchReport::default();
        let candidates = decide::eligible(self.store.candidates(self.assignee).await?, Utc::now());
        report.eligible = candidates.len();
        if candidates.is_empty() {
            tracing::info!(outcome = "idle", "no eligible bead");
            return Ok(report);
        }
        self.store.verify().await?;

        let mut slots = decide::free_slots(
            self.max_in_flight,
            self.store.count_in_progress(self.assignee).await?,
        );
        for candidate in candidates {
            if self.stop.load(Ordering::SeqCst) {
                tracing::info!(
                    outcome = "stopped",
                    "shutdown requested; no further beads this tick"
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
                    // Nothing of this bead is written yet: fail without a note.
                    return Err(TickError::Failed(format!("BeadBoard unreachable: {e}")));
                }
            }
            if self.dry_run {
                println!("would dispatch {}", candidate.id);
                report.would_dispatch.push(candidate.id);
                slots -= 1;
                continue;
            }
            match self.dispatch_one(&candidate).await? {
                Claim::Sent(Ok(job)) => {
                    report.dispatched.push((candidate.id, job));
                    slots -= 1;
                }
                Claim::Sent(Err(failure)) => {
                    report.failed.push(candidate.id.clone());
                    return Err(TickError::Failed(format!(
                        "dispatch of {} failed: {}",
                        candidate.id,
                        failure.note()
                    )));
                }
                Claim::Taken => {} // another runner took it first
                Claim::AtCapacity => {
                    report.at_capacity = true;
                    tracing::info!(
                        outcome = "at_capacity",
                        max_in_flight = self.max_in_flight,
                        "enough of the agent's beads are in progress"
                    );
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Claim, mark, send, record.
    async fn dispatch_one(&self, candidate: &Candidate) -> Result<Claim, TickError> {
        let id = candidate.id.as_str();
        let claimed_at = Utc::now();
        let assignee = self.assignee;
        let cap = InFlightCap {
            assignee,
            max_in_flight: self.max_in_flight,
        };
        let claim = self
            .store
            .claim(id, self.actor, claimed_at, cap, |bead| {
                claimable(bead, assignee, claimed_at).then(|| Change {
                    status: Some(status::IN_PROGRESS),
                    notes: vec![notes::claimed(claimed_at)],
                })
            })
            .await?;
        let before = match claim {
            Written::Done(before, _) => *before,
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
        tracing::info!(bead_id = id, outcome = "claimed", "claimed");
        failpoint::pause(failpoint::CLAIMED).await;

        // The marker lets the reaper tell a claim that never reached BeadBoard
        // (safe to reopen) from one whose outcome is unknown (must not be resent).
        let sending_at = Utc::now();
        let marked = self
            .store
            .write(id, self.actor, sending_at, |bead| {
                (bead.status == status::IN_PROGRESS).then(|| Change {
                    status: None,
                    notes: vec![notes::dispatching(sending_at)],
                })
            })
            .await;
        match marked {
            Ok(Some(_)) => {}
            Ok(None) => {
                // Someone moved it out of in_progress right after the claim.
                tracing::warn!(
                    bead_id = id,
                    outcome = "taken",
                    "bead changed after the claim; not sent"
                );
                return Ok(Claim::Taken);
            }
            Err(e) => {
                self.release_after_store_error(id, &before.notes, &e).await;
                return Err(e.into());
            }
        }

        failpoint::pause(failpoint::MARKED).await;
        let result = self.board.dispatch(id).await;
        failpoint::pause(failpoint::POSTED).await;
        match &result {
            Ok(job) => {
                let note = notes::dispatched(job);
                self.store
                    .write(id, self.actor, Utc::now(), |_| {
                        Some(Change {
                            status: None,
                            notes: vec![note.clone()],
                        })
                    })
                    .await
                    .map_err(|e| {
                        TickError::Failed(format!(
                            "bead {id} was dispatched as job {job} but the note could not be written: {e}"
                        ))
                    })?;
                tracing::info!(
                    bead_id = id,
                    job_id = job.as_str(),
                    outcome = "dispatched",
                    "dispatched"
                );
            }
            Err(failure) => {
                let new_status = self.roll_back(id, &before.notes, failure).await?;
                tracing::warn!(bead_id = id, outcome = "dispatch_failed", status = new_status, error = %failure.note(), "dispatch failed; claim rolled back");
            }
        }
        Ok(Claim::Sent(result))
    }

    /// Undoes a claim whose dispatch failed: the failure note, and back to
    /// `open` (or `blocked` after too many failures, per [`decide::after_failure`]).
    /// Returns the status set.
    async fn roll_back(
        &self,
        id: &str,
        notes_before_claim: &str,
        failure: &decide::DispatchFailure,
    ) -> Result<&'static str, StoreError> {
        let (new_status, lines) = decide::after_failure(notes_before_claim, failure);
        self.store
            .write(id, self.actor, Utc::now(), |bead| {
                (bead.status == status::IN_PROGRESS).then(|| Change {
                    status: Some(new_status),
                    notes: lines.clone(),
                })
            })
            .await?;
        Ok(new_status)
    }

    /// Best effort after the marker could not be written: the request was not
    /// sent, so the claim is rolled back. If the database is gone this fails
    /// too, and the reaper reopens the bead after the claim timeout.
    async fn release_after_store_error(&self, id: &str, notes_before: &str, error: &StoreError) {
        let failure = decide::DispatchFailure::Transport(format!("not sent: {error}"));
        if let Err(e) = self.roll_back(id, notes_before, &failure).await {
            tracing::error!(bead_id = id, error = %e, "could not roll back the claim; the reaper will reopen it after the claim timeout");
        }
    }
}

/// Whether the locked row may still be claimed: the same rules as the
/// candidate query and [`decide::check_candidate`], on the row as it is now.
fn claimable(bead: &Bead, assignee: &str, now: chrono::DateTime<Utc>) -> bool {
    bead.status == status::OPEN
        && bead.assignee.as_deref() == Some(assignee)
        && !bead
            .labels
            .iter()
            .any(|l| l == beads_contract::labels::BEAD_HIDDEN_FROM_BEADBOARD)
        && decide::check_candidate(
            &Candidate {
                id: bead.id.clone(),
                priority: bead.priority,
                updated_at: bead.updated_at,
                acceptance_criteria: bead.acceptance_criteria.clone(),
                notes: bead.notes.clone(),
            },
            now,
        )
        .is_ok()
}

/// How one bead's dispatch ended.
enum Claim {
    /// Claimed and sent; BeadBoard's answer.
    Sent(Result<String, decide::DispatchFailure>),
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
            let written = self
                .store
                .write(&bead.id, self.actor, now, |row| {
                    if row.status != status::IN_PROGRESS
                        || row.assignee.as_deref() != Some(assignee)
                    {
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
                .await?;
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

fn reap_change(action: &ReapAction) -> Option<Change> {
    Some(Change {
        status: Some(action.new_status()?),
        notes: vec![action.note()?.to_string()],
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
