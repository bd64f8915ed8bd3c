//! Named pauses for the fault suite: `BEADS_RUNNER_PAUSE_AT=<step>` makes the
//! runner log `paused at <step>` and sleep there (for `BEADS_RUNNER_PAUSE_FOR`,
//! default one hour), so a test can SIGKILL it, or kill its database
//! connection, at exactly that step. Unset, each check is one env lookup.

use std::time::Duration;

/// Variable naming the step to pause at.
pub const PAUSE_AT: &str = "BEADS_RUNNER_PAUSE_AT";
/// Variable with the pause length (a duration like `2s`).
pub const PAUSE_FOR: &str = "BEADS_RUNNER_PAUSE_FOR";

/// Inside the claim's transaction, before `COMMIT` (on Dolt: before `DOLT_ADD` and `DOLT_COMMIT`).
pub const BEFORE_CLAIM_COMMIT: &str = "before-claim-commit";
/// Inside the transaction of any other write (the marker, an outcome, a
/// reaper's release or block), before `COMMIT` (on Dolt: before `DOLT_ADD`
/// and `DOLT_COMMIT`).
pub const BEFORE_WRITE_COMMIT: &str = "before-write-commit";
/// The claim is committed; the dispatching marker is not written yet.
pub const CLAIMED: &str = "claimed";
/// The marker is written; the request is not sent yet.
pub const MARKED: &str = "marked";
/// BeadBoard answered; its outcome is not noted yet.
pub const POSTED: &str = "posted";

/// Pauses when the runner was asked to pause at `step`.
pub async fn pause(step: &str) {
    if std::env::var(PAUSE_AT).as_deref() != Ok(step) {
        return;
    }
    let length = std::env::var(PAUSE_FOR)
        .ok()
        .and_then(|v| beads_contract::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(3600));
    tracing::warn!(step, "paused at {step}");
    tokio::time::sleep(length).await;
}
