//! How `beads-runner status` prints: a table for people (aligned columns,
//! relative times, colour only when asked for), or JSON for scripts.
//!
//! The table follows `kubectl get`: upper-case headers, columns three spaces
//! apart, the last column never padded, one bead per line.

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use super::classify::{BlockedBy, Group, Pause, Phase, Placed, Queue, Stage, Step, What};

/// Longest title the queue table prints, in terminal columns; the rest is cut with `…`.
pub const TITLE_WIDTH: usize = 40;
/// Columns between two table columns (as `kubectl get`).
const GAP: &str = "   ";

/// `3m ago`, `in 4m`, `just now`: whole seconds, minutes, hours (under two
/// days) or days, rounded down, as `kubectl get` prints ages.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    if secs == 0 {
        return "just now".into();
    }
    let span = span(secs.unsigned_abs());
    if secs > 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn stage_style(group: Group) -> Style {
    let color = match group {
        Group::Waiting => AnsiColor::Green,
        Group::InFlight => AnsiColor::Cyan,
        Group::Blocked => AnsiColor::Red,
        Group::Skipped => return Style::new().dimmed(),
    };
    Style::new().fg_color(Some(color.into()))
}

/// One table cell: its text and, when colour is on, its style.
struct Cell {
    text: String,
    style: Style,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text,
            style: Style::new(),
        }
    }
}

/// Aligns rows into columns by display width (so wide characters line up).
fn table(headers: &[&str], rows: Vec<Vec<Cell>>, color: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.width());
        }
    }
    let header_cells = headers
        .iter()
        .map(|h| Cell::from((*h).to_string()))
        .collect();
    let mut out = String::new();
    for row in std::iter::once(header_cells).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            if color && cell.style != Style::new() {
                line.push_str(&format!(
                    "{}{}{}",
                    cell.style.render(),
                    cell.text,
                    cell.style.render_reset()
                ));
            } else {
                line.push_str(&cell.text);
            }
            if i < last {
                line.push_str(&" ".repeat(widths[i].saturating_sub(cell.text.width())));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Cuts `text` to `max` display columns, ending it with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) + 1 > max {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// What the DETAIL column says about a bead's stage.
pub fn detail(stage: &Stage, status: &str, now: DateTime<Utc>) -> String {
    match stage {
        Stage::Waiting { position } => format!("#{position} in dispatch order"),
        Stage::InFlight {
            since,
            job_id,
            phase,
        } => {
            let since = since.map_or_else(
                || "since an unknown time".into(),
                |s| format!("since {}", relative(s, now)),
            );
            match (phase, job_id) {
                (Phase::Dispatched, Some(job)) => format!("{since}, job {job}"),
                (Phase::Sent, _) => format!("{since}, sent; no answer recorded yet"),
                (Phase::Claimed, _) => format!("{since}, claimed; not sent yet"),
                _ => format!("{since}, set in_progress without a runner claim"),
            }
        }
        Stage::Blocked { by, reason } => {
            let by = match by {
                BlockedBy::Reaper => "by the reaper",
                BlockedBy::Dispatcher => "by the dispatcher",
                BlockedBy::Other => "not by the runner",
            };
            match reason {
                Some(r) => format!("{by}: {r}"),
                None => by.to_string(),
            }
        }
        Stage::Skipped { reason } => reason.describe(status),
    }
}

/// The runner-wide pause as one line: until when, after how many failures
/// on which bead, and the last failure note.
pub fn pause_line(pause: &Pause, now: DateTime<Utc>) -> String {
    let plural = if pause.failures == 1 { "" } else { "s" };
    let mut text = format!(
        "dispatching paused until {} ({}) after {} transient failure{plural} on {}",
        beads_contract::notes::timestamp(pause.until),
        relative(pause.until, now),
        pause.failures,
        pause.bead_id,
    );
    if let Some(reason) = &pause.last_reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

/// The queue as a table, after the pause line when the runner is pausing; a
/// sentence when the queue is empty.
pub fn queue_table(queue: &Queue, assignee: &str, now: DateTime<Utc>, color: bool) -> String {
    let placed = &queue.placed;
    if placed.is_empty() {
        return format!("No beads assigned to {assignee}.\n");
    }
    let mut out = String::new();
    if let Some(pause) = &queue.paused {
        out.push_str(&pause_line(pause, now));
        out.push_str("\n\n");
    }
    let rows = placed
        .iter()
        .map(|p| {
            let group = p.stage.group();
            vec![
                Cell {
                    text: group.label().to_string(),
                    style: stage_style(group),
                },
                Cell::from(p.bead.id.clone()),
                Cell::from(format!("P{}", p.bead.priority)),
                Cell::from(truncate(&p.bead.title, TITLE_WIDTH)),
                Cell::from(
                    p.bead
                        .updated_at
                        .map_or_else(|| "-".into(), |t| relative(t.and_utc(), now)),
                ),
                Cell::from(detail(&p.stage, &p.bead.status, now)),
            ]
        })
        .collect();
    out.push_str(&table(
        &["STAGE", "ID", "PRI", "TITLE", "UPDATED", "DETAIL"],
        rows,
        color,
    ));
    out
}

/// One bead in the JSON output: its row and its stage's fields.
#[derive(Serialize)]
struct BeadJson<'a> {
    id: &'a str,
    title: &'a str,
    priority: i32,
    status: &'a str,
    #[serde(with = "super::classify::rfc3339_opt")]
    updated_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    stage: &'a Stage,
}

impl<'a> BeadJson<'a> {
    fn new(p: &'a Placed) -> Self {
        BeadJson {
            id: &p.bead.id,
            title: &p.bead.title,
            priority: p.bead.priority,
            status: &p.bead.status,
            updated_at: p.bead.updated_at.map(|t| t.and_utc()),
            stage: &p.stage,
        }
    }
}

/// The queue as JSON: `paused` (an object or `null`), then every group
/// always present, each a list in print order.
pub fn queue_json(queue: &Queue, assignee: &str, now: DateTime<Utc>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("assignee".into(), assignee.into());
    out.insert(
        "generated_at".into(),
        beads_contract::notes::timestamp(now).into(),
    );
    out.insert(
        "paused".into(),
        serde_json::to_value(&queue.paused).unwrap_or_default(),
    );
    for group in Group::ALL {
        let beads: Vec<serde_json::Value> = queue
            .placed
            .iter()
            .filter(|p| p.stage.group() == group)
            .map(|p| serde_json::to_value(BeadJson::new(p)).unwrap_or_default())
            .collect();
        let key = serde_json::to_value(group)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.insert(key, beads.into());
    }
    out.into()
}

/// One bead's history and where it stands.
pub struct History<'a> {
    pub placed: &'a Placed,
    /// Whether the bead is in the sentinel's queue (else it has no stage).
    pub in_queue: bool,
    /// The runner-wide pause, when it holds this bead back.
    pub paused: Option<&'a Pause>,
    pub steps: &'a [Step],
}

/// One bead's history as text: a heading, where it stands (and the pause
/// holding it back), then the timeline.
pub fn history_table(
    history: &History<'_>,
    assignee: &str,
    now: DateTime<Utc>,
    color: bool,
) -> String {
    let History {
        placed,
        in_queue,
        paused,
        steps,
    } = *history;
    let bead = &placed.bead;
    let mut out = format!("{}   {}\n", bead.id, bead.title);
    let owner = bead.assignee.as_deref().filter(|a| !a.is_empty());
    let whose = match owner {
        Some(a) => format!("assigned to {a}"),
        None => "unassigned".to_string(),
    };
    if in_queue {
        let group = placed.stage.group();
        let label = if color {
            let style = stage_style(group);
            format!(
                "{}{}{}",
                style.render(),
                group.label(),
                style.render_reset()
            )
        } else {
            group.label().to_string()
        };
        out.push_str(&format!(
            "status {}, {whose}: {label}, {}\n",
            bead.status,
            detail(&placed.stage, &bead.status, now)
        ));
    } else {
        out.push_str(&format!(
            "status {}, {whose}: not in {assignee}'s queue\n",
            bead.status
        ));
    }
    if let Some(pause) = paused {
        out.push_str(&pause_line(pause, now));
        out.push('\n');
    }
    out.push('\n');
    if steps.is_empty() {
        out.push_str("No dispatch history: no notes and no events.\n");
        return out;
    }
    let rows = steps
        .iter()
        .map(|s| {
            vec![
                Cell::from(s.at.map_or_else(|| "-".into(), beads_contract::notes::timestamp)),
                Cell::from(s.at.map_or_else(|| "-".into(), |t| relative(t, now))),
                Cell::from(s.actor.clone().unwrap_or_else(|| "-".into())),
                Cell::from(match &s.what {
                    What::Status { from, to } => {
                        format!("status {} → {to}", from.as_deref().unwrap_or("?"))
                    }
                    What::Assignee { from, to } => format!(
                        "assignee {} → {}",
                        from.as_deref()
                            .filter(|a| !a.is_empty())
                            .unwrap_or("(none)"),
                        to.as_deref().filter(|a| !a.is_empty()).unwrap_or("(none)")
                    ),
                    What::Note { text, .. } => format!("note: {text}"),
                    What::Other { event_type } => format!("event {event_type}"),
                }),
            ]
        })
        .collect();
    out.push_str(&table(&["TIME", "AGE", "ACTOR", "WHAT"], rows, color));
    out
}

/// One bead's history as JSON.
pub fn history_json(history: &History<'_>, now: DateTime<Utc>) -> serde_json::Value {
    let History {
        placed,
        in_queue,
        paused,
        steps,
    } = *history;
    let bead = &placed.bead;
    serde_json::json!({
        "id": bead.id,
        "title": bead.title,
        "status": bead.status,
        "assignee": bead.assignee,
        "priority": bead.priority,
        "updated_at": bead.updated_at.map(|t| beads_contract::notes::timestamp(t.and_utc())),
        "generated_at": beads_contract::notes::timestamp(now),
        "stage": if in_queue { serde_json::to_value(&placed.stage).unwrap_or_default() } else { serde_json::Value::Null },
        "paused": serde_json::to_value(paused).unwrap_or_default(),
        "timeline": steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::classify::{BeadRow, SkipReason};
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 18, h, m, s).unwrap()
    }

    #[test]
    fn relative_times_read_like_kubectl_ages() {
        let now = t(12, 0, 0);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(t(11, 59, 15), now), "45s ago");
        assert_eq!(relative(t(11, 57, 1), now), "2m ago");
        assert_eq!(relative(t(9, 0, 0), now), "3h ago");
        assert_eq!(relative(t(12, 4, 0), now), "in 4m");
        assert_eq!(relative(now - chrono::Duration::days(3), now), "3d ago");
    }

    #[test]
    fn titles_are_cut_by_display_width() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijk", 5), "abcd…");
        // Each of these takes two columns.
        assert_eq!(truncate("文字文字文字", 5), "文字…");
    }

    fn placed(id: &str, title: &str, stage: Stage) -> Placed {
        Placed {
            bead: BeadRow {
                id: id.into(),
                title: title.into(),
                status: "open".into(),
                priority: 1,
                assignee: Some("agent".into()),
                updated_at: Some(t(11, 0, 0).naive_utc()),
                acceptance_criteria: "ac".into(),
                notes: String::new(),
                is_template: false,
                hidden: false,
            },
            stage,
        }
    }

    #[test]
    fn the_queue_table_aligns_columns_and_colours_only_when_asked() {
        let now = t(12, 0, 0);
        let mut rows = Queue {
            placed: vec![
                placed("bd-1", "文字 wide", Stage::Waiting { position: 1 }),
                placed("bd-22", "retrying", Stage::Waiting { position: 2 }),
                placed(
                    "bd-3",
                    "no ac",
                    Stage::Skipped {
                        reason: SkipReason::NoAcceptanceCriteria,
                    },
                ),
            ],
            paused: None,
        };
        let table = "STAGE     ID      PRI   TITLE       UPDATED   DETAIL\n\
             waiting   bd-1    P1    文字 wide   1h ago    #1 in dispatch order\n\
             waiting   bd-22   P1    retrying    1h ago    #2 in dispatch order\n\
             skipped   bd-3    P1    no ac       1h ago    no acceptance criteria\n";
        let text = queue_table(&rows, "agent", now, false);
        assert_eq!(text, table);
        assert!(!text.contains('\u{1b}'));
        let coloured = queue_table(&rows, "agent", now, true);
        assert!(
            coloured.contains("\u{1b}[32mwaiting\u{1b}[0m"),
            "{coloured:?}"
        );
        // A pause is one line above the table, once, however many beads wait.
        rows.paused = Some(Pause {
            until: t(12, 4, 0),
            failures: 2,
            last_reason: Some("dispatch failed HTTP 502: Queue full".into()),
            bead_id: "bd-22".into(),
        });
        assert_eq!(
            queue_table(&rows, "agent", now, false),
            format!(
                "dispatching paused until 2026-04-18T12:04:00Z (in 4m) after 2 transient failures \
                 on bd-22: dispatch failed HTTP 502: Queue full\n\n{table}"
            )
        );
        let empty = Queue {
            placed: vec![],
            paused: None,
        };
        assert_eq!(
            queue_table(&empty, "agent", now, true),
            "No beads assigned to agent.\n"
        );
    }

    #[test]
    fn queue_json_has_every_group_even_when_empty() {
        let now = t(12, 0, 0);
        let mut queue = Queue {
            placed: vec![placed("bd-1", "x", Stage::Waiting { position: 1 })],
            paused: None,
        };
        let v = queue_json(&queue, "agent", now);
        assert_eq!(
            v,
            serde_json::json!({
                "assignee": "agent",
                "generated_at": "2026-04-18T12:00:00Z",
                "paused": null,
                "waiting": [{
                    "id": "bd-1", "title": "x", "priority": 1, "status": "open",
                    "updated_at": "2026-04-18T11:00:00Z", "stage": "waiting", "position": 1
                }],
                "in_flight": [], "blocked": [], "skipped": []
            })
        );
        queue.paused = Some(Pause {
            until: t(12, 1, 30),
            failures: 1,
            last_reason: None,
            bead_id: "bd-1".into(),
        });
        assert_eq!(
            queue_json(&queue, "agent", now)["paused"],
            serde_json::json!({
                "until": "2026-04-18T12:01:30Z", "failures": 1,
                "last_reason": null, "bead_id": "bd-1"
            })
        );
    }

    #[test]
    fn details_name_every_phase_blocker_and_skip() {
        let now = t(12, 0, 0);
        let flight = |phase, job: Option<&str>| Stage::InFlight {
            since: Some(t(11, 50, 0)),
            job_id: job.map(Into::into),
            phase,
        };
        assert_eq!(
            detail(&flight(Phase::Dispatched, Some("j")), "in_progress", now),
            "since 10m ago, job j"
        );
        assert_eq!(
            detail(&flight(Phase::Claimed, None), "in_progress", now),
            "since 10m ago, claimed; not sent yet"
        );
        assert_eq!(
            detail(&flight(Phase::Sent, None), "in_progress", now),
            "since 10m ago, sent; no answer recorded yet"
        );
        assert_eq!(
            detail(&flight(Phase::Manual, None), "in_progress", now),
            "since 10m ago, set in_progress without a runner claim"
        );
        let blocked = Stage::Blocked {
            by: BlockedBy::Dispatcher,
            reason: Some("dispatch outcome unknown: timed out — blocking".into()),
        };
        assert_eq!(
            detail(&blocked, "blocked", now),
            "by the dispatcher: dispatch outcome unknown: timed out — blocking"
        );
        let full = Stage::Skipped {
            reason: SkipReason::NotesFull,
        };
        assert_eq!(
            detail(&full, "open", now),
            "notes full: no room for another attempt's notes"
        );
        let deferred = Stage::Skipped {
            reason: SkipReason::Status,
        };
        assert_eq!(
            detail(&deferred, "deferred", now),
            "status deferred: only open beads are dispatched"
        );
    }

    #[test]
    fn long_titles_are_cut_at_forty_columns() {
        let long = "x".repeat(60);
        let queue = Queue {
            placed: vec![placed("bd-1", &long, Stage::Waiting { position: 1 })],
            paused: None,
        };
        let text = queue_table(&queue, "agent", t(12, 0, 0), false);
        let cut = format!("{}…", "x".repeat(TITLE_WIDTH - 1));
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains(&format!("{cut}   1h ago")),
            "{text}"
        );
    }

    /// The example in docs/runner.md is what the renderer prints for it.
    #[test]
    fn the_documented_queue_example_is_real_output() {
        let docs = include_str!("../../../docs/runner.md");
        let start = docs.find("$ beads-runner status\n").unwrap() + "$ beads-runner status\n".len();
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        let now = t(12, 0, 0);
        let mut rows = vec![
            placed(
                "bd-a1",
                "Fix the upload retry",
                Stage::Waiting { position: 1 },
            ),
            placed("bd-b2", "Flaky export", Stage::Waiting { position: 2 }),
            placed(
                "bd-c3",
                "Settings page speed",
                Stage::Waiting { position: 3 },
            ),
            placed(
                "bd-d4",
                "Login page",
                Stage::InFlight {
                    since: Some(t(11, 50, 0)),
                    job_id: Some("job-42".into()),
                    phase: Phase::Dispatched,
                },
            ),
            placed(
                "bd-e5",
                "Search index",
                Stage::Blocked {
                    by: BlockedBy::Reaper,
                    reason: Some(beads_contract::notes::reaper_stale(31, 30)),
                },
            ),
            placed(
                "bd-e7",
                "Bulk import",
                Stage::Blocked {
                    by: BlockedBy::Dispatcher,
                    reason: Some(beads_contract::notes::outcome_unknown(
                        "timed out after sending",
                    )),
                },
            ),
            placed(
                "bd-f6",
                "Agent registry",
                Stage::Skipped {
                    reason: SkipReason::AgentLabel,
                },
            ),
        ];
        for (row, p) in rows.iter_mut().zip([0, 1, 2, 2, 2, 2, 2]) {
            row.bead.priority = p;
        }
        rows[3].bead.updated_at = Some(t(11, 50, 0).naive_utc());
        let rows = Queue {
            placed: rows,
            paused: Some(Pause {
                until: t(12, 1, 30),
                failures: 1,
                last_reason: Some(beads_contract::notes::dispatch_failed_http(
                    502,
                    "Queue full",
                )),
                bead_id: "bd-b2".into(),
            }),
        };
        assert_eq!(queue_table(&rows, "agent", now, false), example);
    }

    /// The history example in docs/runner.md is what the renderer prints for it.
    #[test]
    fn the_documented_history_example_is_real_output() {
        let docs = include_str!("../../../docs/runner.md");
        let marker = "$ beads-runner status bd-d4\n";
        let start = docs.find(marker).unwrap() + marker.len();
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        let now = t(12, 0, 0);
        let mut bead = placed(
            "bd-d4",
            "Login page",
            Stage::InFlight {
                since: Some(t(11, 50, 0)),
                job_id: Some("job-42".into()),
                phase: Phase::Dispatched,
            },
        );
        bead.bead.status = "in_progress".into();
        let step = |at: Option<DateTime<Utc>>, what: What| Step {
            at,
            actor: at.map(|_| "beads-dispatcher".to_string()),
            what,
        };
        let note = |text: &str| What::Note {
            kind: "other",
            text: text.into(),
        };
        let steps = [
            step(None, note("context from a person")),
            step(
                Some(t(11, 50, 0)),
                What::Status {
                    from: Some("open".into()),
                    to: "in_progress".into(),
                },
            ),
            step(
                Some(t(11, 50, 0)),
                note(
                    "auto-dispatcher claimed at 2026-04-18T11:50:00Z by beads-dispatcher#3f9c0a1b2d4e",
                ),
            ),
            step(
                Some(t(11, 50, 0)),
                note("dispatching to BeadBoard at 2026-04-18T11:50:00Z"),
            ),
            step(Some(t(11, 50, 1)), note("dispatched: job=job-42")),
        ];
        let history = History {
            placed: &bead,
            in_queue: true,
            paused: None,
            steps: &steps,
        };
        assert_eq!(history_table(&history, "agent", now, false), example);
    }
}
