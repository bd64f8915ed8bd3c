//! The SQL of `beads-runner status`: reads only, no transaction, no Dolt call.
//!
//! The queue is one statement, so an empty queue costs what an idle dispatch
//! tick costs: one `SELECT` (plus the connection's `SET time_zone`). It also
//! reads `metadata._project_id`, so a wrong database is refused for free.

use chrono::NaiveDateTime;
use mysql_async::prelude::*;
use mysql_async::{FromValueError, Row};

use super::classify::{BeadRow, EventRow};
use crate::store::{Store, StoreError};
use beads_contract::labels;

/// Closed beads are done: the queue leaves them out, as `bd list` does by default.
const CLOSED: &str = "closed";

type Result<T> = std::result::Result<T, StoreError>;

/// Columns of a bead row, after the leading project id column of the queue query.
const COLUMNS: &str = "i.id, i.title, i.status, i.priority, i.assignee, i.updated_at, \
     i.acceptance_criteria, i.notes, i.is_template, \
     EXISTS (SELECT 1 FROM labels l WHERE l.issue_id = i.id AND l.label = ?)";

/// Every bead assigned to `assignee` that is not closed, and
/// `metadata._project_id`, in one statement: the derived one-row table keeps
/// the project id in the answer even when no bead matches.
pub async fn queue(
    store: &Store,
    assignee: &str,
    expected_project_id: Option<&str>,
) -> Result<Vec<BeadRow>> {
    let mut conn = store.conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT p.project_id, {COLUMNS} \
                 FROM (SELECT (SELECT value FROM metadata WHERE `key` = '_project_id') AS project_id) p \
                 LEFT JOIN issues i ON i.assignee = ? AND i.status <> ? \
                 ORDER BY i.priority, i.updated_at, i.id"
            ),
            (labels::BEAD_HIDDEN_FROM_BEADBOARD, assignee, CLOSED),
        )
        .await
        .map_err(|e| StoreError::sql("reading the sentinel's beads from issues", e))?;
    let mut beads = Vec::with_capacity(rows.len());
    for mut row in rows {
        let found: Option<String> = take_text(&mut row, 0)
            .map_err(|e| decode("reading metadata._project_id", &e))?
            .filter(|p| !p.is_empty());
        check_project(store, expected_project_id, found.as_deref())?;
        if let Some(bead) = bead_from(&mut row, 1)? {
            beads.push(bead);
        }
    }
    Ok(beads)
}

/// One bead by id, whoever it is assigned to.
pub async fn bead(store: &Store, id: &str) -> Result<Option<BeadRow>> {
    let mut conn = store.conn().await?;
    let row: Option<Row> = conn
        .exec_first(
            format!("SELECT {COLUMNS} FROM issues i WHERE i.id = ?"),
            (labels::BEAD_HIDDEN_FROM_BEADBOARD, id),
        )
        .await
        .map_err(|e| StoreError::sql(format!("reading bead {id}"), e))?;
    match row {
        None => Ok(None),
        Some(mut row) => bead_from(&mut row, 0),
    }
}

/// A bead's `events`, oldest first.
pub async fn events(store: &Store, id: &str) -> Result<Vec<EventRow>> {
    let mut conn = store.conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            "SELECT created_at, event_type, actor, old_value, new_value FROM events \
             WHERE issue_id = ? ORDER BY created_at",
            (id,),
        )
        .await
        .map_err(|e| StoreError::sql(format!("reading the events of bead {id}"), e))?;
    rows.into_iter()
        .map(|mut row| {
            let ctx = |e: FromValueError| decode(&format!("decoding an event of bead {id}"), &e);
            Ok(EventRow {
                created_at: take_time(&mut row, 0),
                event_type: take_text(&mut row, 1).map_err(ctx)?.unwrap_or_default(),
                actor: take_text(&mut row, 2).map_err(ctx)?.unwrap_or_default(),
                old_value: take_text(&mut row, 3).map_err(ctx)?,
                new_value: take_text(&mut row, 4).map_err(ctx)?,
            })
        })
        .collect()
}

/// As the store's own check: skipped when either side is empty, a refusal when they differ.
fn check_project(store: &Store, expected: Option<&str>, found: Option<&str>) -> Result<()> {
    match (expected.filter(|e| !e.is_empty()), found) {
        (Some(expected), Some(found)) if expected != found => Err(StoreError::Refused(format!(
            "project identity mismatch: metadata.json project_id is {expected:?} but database {} has metadata._project_id {found:?}; this runner is pointed at the wrong beads database",
            store.target()
        ))),
        _ => Ok(()),
    }
}

/// The bead columns from `start` on; `None` for the LEFT JOIN's empty side.
fn bead_from(row: &mut Row, start: usize) -> Result<Option<BeadRow>> {
    let ctx = |e: FromValueError| decode("decoding a bead row", &e);
    let Some(id) = take_text(row, start).map_err(ctx)? else {
        return Ok(None);
    };
    let text = |row: &mut Row, i: usize| -> Result<String> {
        Ok(take_text(row, start + i)
            .map_err(|e| decode(&format!("decoding bead {id}"), &e))?
            .unwrap_or_default())
    };
    let title = text(row, 1)?;
    let status = text(row, 2)?;
    let priority = row
        .take_opt::<Option<i64>, _>(start + 3)
        .and_then(std::result::Result::ok)
        .flatten()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(2);
    let assignee = take_text(row, start + 4).map_err(ctx)?;
    let updated_at = take_time(row, start + 5);
    let acceptance_criteria = text(row, 6)?;
    let notes = text(row, 7)?;
    let flag = |row: &mut Row, i: usize| {
        row.take_opt::<Option<i64>, _>(start + i)
            .and_then(std::result::Result::ok)
            .flatten()
            .unwrap_or(0)
            != 0
    };
    let is_template = flag(row, 8);
    let hidden = flag(row, 9);
    Ok(Some(BeadRow {
        id,
        title,
        status,
        priority,
        assignee,
        updated_at,
        acceptance_criteria,
        notes,
        is_template,
        hidden,
    }))
}

fn take_text(row: &mut Row, i: usize) -> std::result::Result<Option<String>, FromValueError> {
    Ok(row.take_opt::<Option<String>, _>(i).transpose()?.flatten())
}

/// A DATETIME, or `None` for NULL and for values no date can hold (`0000-00-00`).
fn take_time(row: &mut Row, i: usize) -> Option<NaiveDateTime> {
    row.take_opt::<Option<NaiveDateTime>, _>(i)
        .and_then(std::result::Result::ok)
        .flatten()
}

fn decode(context: &str, e: &FromValueError) -> StoreError {
    StoreError::Decode {
        context: context.to_string(),
        message: format!("{e:?}"),
    }
}
