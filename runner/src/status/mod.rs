//! `beads-runner status`: the sentinel's queue at a glance, or one bead's
//! dispatch history. Read-only: no writes, no transaction, no Dolt commit.
//!
//! [`query`] reads, [`classify`] decides where each bead stands (with the
//! dispatch tick's own functions), [`render`] prints.

pub mod classify;
pub mod query;
pub mod render;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};
use classify::Placed;

/// What to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// One bead's history instead of the queue.
    pub bead: Option<String>,
    /// JSON instead of a table.
    pub json: bool,
    /// ANSI colours in the table.
    pub color: bool,
}

/// Why `status` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no bead {id} in {target}")]
    NotFound { id: String, target: String },
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything
/// but the empty string (no-color.org).
pub fn use_color(stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
    stdout_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Reads and renders; the text to print on stdout. `retry_delay` is the
/// runner's first pause after a failure, as the dispatch tick uses it.
pub async fn run(
    store: &Store,
    assignee: &str,
    project_id: Option<&str>,
    request: &Request,
    retry_delay: Duration,
    now: DateTime<Utc>,
) -> Result<String, StatusError> {
    let queue = classify::place_all(
        query::queue(store, assignee, project_id).await?,
        now,
        retry_delay,
    );
    let Some(id) = &request.bead else {
        return Ok(if request.json {
            json_text(&render::queue_json(&queue, assignee, now))
        } else {
            render::queue_table(&queue, assignee, now, request.color)
        });
    };
    let bead = query::bead(store, id)
        .await?
        .ok_or_else(|| StatusError::NotFound {
            id: id.clone(),
            target: store.target().to_string(),
        })?;
    let events = query::events(store, id).await?;
    let steps = classify::timeline(&bead.notes, &events);
    let paused = queue.paused;
    let queued = queue.placed.into_iter().find(|p| p.bead.id == bead.id);
    let in_queue = queued.is_some();
    let placed = queued.unwrap_or_else(|| Placed {
        stage: classify::stage(&bead, &[]),
        bead,
    });
    // The pause holds back only the beads that would otherwise be dispatched.
    let paused = paused.filter(|_| in_queue && placed.stage.group() == classify::Group::Waiting);
    let history = render::History {
        placed: &placed,
        in_queue,
        paused: paused.as_ref(),
        steps: &steps,
    };
    Ok(if request.json {
        json_text(&render::history_json(&history, now))
    } else {
        render::history_table(&history, assignee, now, request.color)
    })
}

fn json_text(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_color(true, None));
        assert!(use_color(true, Some("")));
        assert!(!use_color(true, Some("1")));
        assert!(!use_color(false, None));
    }
}
