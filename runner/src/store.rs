//! The beads database, over the MySQL protocol (Dolt, MariaDB or MySQL).
//!
//! Reads are single indexed queries. Every write goes through
//! [`Store::write`]: one transaction that reads (on MariaDB/MySQL: locks)
//! the bead's row, lets a pure decision look at it, applies the change with
//! a conditional `UPDATE`, records `events` rows as `bd` does, commits to
//! Dolt's history when the server is Dolt, and commits. A write either
//! happens whole or not at all.
//!
//! On Dolt nothing is locked: each transaction reads a snapshot and
//! concurrent transactions are merged cell by cell when they commit, so two
//! writers' conditional `UPDATE`s can both report one row. Every write the
//! runner makes puts a value no other writer puts into a cell that any
//! competing writer also writes (the bead's `notes`, whose appended line
//! carries a time and, for a claim, a claim id; for a claim also the shared
//! [`CLAIM_LOCK_KEY`] cell), so of two overlapping writes the second to
//! commit fails with error 1213 at `DOLT_COMMIT` (which commits the SQL
//! transaction) and is retried on the row as it is then: a lost race,
//! nothing written.

use std::time::Duration;

use std::future::Future;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use mysql_async::prelude::*;
use mysql_async::{
    Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, SslOpts, TxOpts, Value,
};
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::config::DbConfig;
use crate::decide::{Candidate, InProgress, status};
use beads_contract::labels;

/// Retries of a claim that keeps losing races before moving to the next bead.
const CLAIM_RETRIES: u32 = 5;
/// The same on Dolt, where every claim also writes the shared claim lock
/// ([`CLAIM_LOCK_KEY`]): any two claims that overlap in time collide there,
/// even for different beads, and a loss only means another claim went first.
const DOLT_CLAIM_RETRIES: u32 = 30;

/// The `local_metadata` key whose value every claim on Dolt sets to a fresh
/// `UUID()`. Dolt takes no locks and merges concurrent transactions cell by
/// cell at commit; two claims that both wrote this cell cannot both commit
/// (the second gets error 1213 and retries on the row as it is then), so the
/// in-progress count a claim checks cannot be stale when it commits, and
/// the in-flight cap holds across runners. `local_metadata` is bd's table
/// that its migration 0028 keeps out of Dolt's history (`dolt_ignore`): the
/// cell never shows in `dolt_status`, a commit, or `bd`'s output.
pub const CLAIM_LOCK_KEY: &str = "beads_runner_claim_lock";
/// Retries of any other write: these record outcomes, so they try harder.
const WRITE_RETRIES: u32 = 20;

/// How long to wait for a connection (bd's DSN uses a 5 s connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may take (bd's DSN: 10 s read and write timeouts).
const STATEMENT_TIMEOUT: Duration = beads_contract::defaults::STATEMENT_TIMEOUT;

/// Runs one statement, giving up after [`STATEMENT_TIMEOUT`]: a table lock
/// held elsewhere, a long migration or a stalled network never hangs a tick.
/// The connection of a statement given up on is dropped, not reused.
async fn bounded<T>(
    context: impl FnOnce() -> String,
    statement: impl Future<Output = std::result::Result<T, mysql_async::Error>>,
) -> Result<T> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::sql(context(), e)),
        Err(_) => Err(StoreError::Timeout {
            context: context(),
            after: STATEMENT_TIMEOUT,
        }),
    }
}
/// MySQL error codes the runner treats specially.
mod code {
    pub const BAD_FIELD: u16 = 1054;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_DB: u16 = 1049;
    pub const ACCESS_DENIED: u16 = 1045;
    /// MariaDB's "Access denied" for a user authenticated by a plugin (unix_socket).
    pub const ACCESS_DENIED_PLUGIN: u16 = 1698;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    /// ER_UNKNOWN_ERROR: Dolt's answer for many errors MySQL numbers.
    pub const UNKNOWN: u16 = 1105;
}

/// Columns the runner reads or writes, per table. `check` and the first write
/// of a tick verify them, so a schema drift is a clear refusal, not a half-write.
pub const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "issues",
        &[
            "id",
            "title",
            "description",
            "design",
            "acceptance_criteria",
            "notes",
            "status",
            "priority",
            "issue_type",
            "assignee",
            "owner",
            "created_at",
            "created_by",
            "updated_at",
            "started_at",
            "closed_at",
            "spec_id",
            "estimated_minutes",
            "close_reason",
            "closed_by_session",
            "due_at",
            "defer_until",
            "external_ref",
            "source_system",
            "metadata",
            "compaction_level",
            "compacted_at",
            "compacted_at_commit",
            "original_size",
            "sender",
            "ephemeral",
            "no_history",
            "wisp_type",
            "pinned",
            "is_template",
            "mol_type",
            "work_type",
            "event_kind",
            "actor",
            "target",
            "payload",
        ],
    ),
    (
        "events",
        &[
            "id",
            "issue_id",
            "event_type",
            "actor",
            "old_value",
            "new_value",
            "created_at",
        ],
    ),
    ("labels", &["issue_id", "label"]),
    ("metadata", &["key", "value"]),
];

/// Columns the runner needs only on Dolt: the claim lock's table.
pub const DOLT_REQUIRED_COLUMNS: &[(&str, &[&str])] = &[("local_metadata", &["key", "value"])];

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The runner must not run against this database (exit 2, nothing written).
    #[error("{0}")]
    Refused(String),
    /// The database could not be reached or a statement failed (exit 1).
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// A value in the database is not what the schema promises.
    #[error("{context}: {message}")]
    Decode { context: String, message: String },
    #[error("connecting to {target}: timed out after {}s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout { target: String },
    /// A statement did not finish within its timeout.
    #[error("{context}: no answer within {}s", after.as_secs())]
    Timeout { context: String, after: Duration },
}

impl StoreError {
    pub(crate) fn sql(context: impl Into<String>, source: mysql_async::Error) -> Self {
        let context = context.into();
        // Errors that no retry fixes are a refusal, named precisely.
        if let mysql_async::Error::Server(e) = &source {
            match e.code {
                code::BAD_FIELD | code::NO_SUCH_TABLE => {
                    return StoreError::Refused(format!(
                        "{context}: the beads schema is not what this runner needs: {} (MySQL error {})",
                        e.message, e.code
                    ));
                }
                code::BAD_DB
                | code::ACCESS_DENIED
                | code::ACCESS_DENIED_PLUGIN
                | code::DB_ACCESS_DENIED => {
                    return StoreError::Refused(format!(
                        "{context}: {} (MySQL error {})",
                        e.message, e.code
                    ));
                }
                // Dolt names schema errors in the generic 1105 (observed
                // with Dolt 1.83.2: `table "i" does not have column "x"`).
                code::UNKNOWN
                    if e.message.contains("does not have column")
                        || e.message.contains("table not found") =>
                {
                    return StoreError::Refused(format!(
                        "{context}: the beads schema is not what this runner needs: {} (Dolt error {})",
                        e.message, e.code
                    ));
                }
                _ => {}
            }
        }
        StoreError::Sql { context, source }
    }

    /// True for a refusal (wrong database, schema, credentials): no retry helps.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::Refused(_))
    }

    /// True when another writer won a race for the same row (Dolt merge
    /// conflict, lock wait timeout, deadlock): move on, nothing was written.
    pub fn is_lost_race(&self) -> bool {
        matches!(self, StoreError::Sql { source: mysql_async::Error::Server(e), .. }
            if e.code == code::DEADLOCK || e.code == code::LOCK_WAIT_TIMEOUT
                || e.message.contains("serialization failure"))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// What `check` found, and what the first write of a tick relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `SELECT VERSION()`.
    pub version: String,
    /// `SELECT dolt_version()`, when the server is Dolt.
    pub dolt_version: Option<String>,
    /// `metadata._project_id`, when set.
    pub project_id: Option<String>,
}

/// One bead row, as much of it as the runner reads, and the JSON shape
/// `bd` stores in `events.old_value`: bd's `types.Issue`, field order and
/// `omitempty` rules included, for every column the beads schema has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Bead {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub design: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub acceptance_criteria: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spec_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    pub priority: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issue_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_minutes: Option<i64>,
    #[serde(with = "rfc3339_zero")]
    pub created_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(with = "rfc3339_zero")]
    pub updated_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub started_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub closed_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub close_reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub closed_by_session: String,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub due_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub defer_until: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source_system: String,
    /// Omitted when the stored value is `{}` or empty, as bd does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub compaction_level: i64,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub compacted_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compacted_at_commit: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub original_size: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sender: String,
    #[serde(skip_serializing_if = "is_false")]
    pub ephemeral: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub no_history: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wisp_type: String,
    #[serde(skip_serializing_if = "is_false")]
    pub pinned: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub is_template: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mol_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub work_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub actor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub payload: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Timestamps as bd's JSON writes them: RFC 3339, UTC, `Z`.
mod rfc3339 {
    use chrono::NaiveDateTime;
    pub fn serialize<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&beads_contract::notes::timestamp(t.and_utc()))
    }
}

/// A required timestamp; a stored zero date is Go's zero time, as bd prints it.
mod rfc3339_zero {
    use chrono::NaiveDateTime;
    pub fn serialize<S: serde::Serializer>(
        t: &Option<NaiveDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_str("0001-01-01T00:00:00Z"),
        }
    }
}

mod rfc3339_opt {
    use chrono::NaiveDateTime;
    pub fn serialize<S: serde::Serializer>(
        t: &Option<NaiveDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

const BEAD_COLUMNS: &str = "id, title, description, design, acceptance_criteria, notes, status, \
     priority, issue_type, assignee, owner, created_at, created_by, updated_at, started_at, closed_at, \
     spec_id, estimated_minutes, close_reason, closed_by_session, due_at, defer_until, external_ref, \
     source_system, metadata, compaction_level, compacted_at, compacted_at_commit, original_size, \
     sender, ephemeral, no_history, wisp_type, pinned, is_template, mol_type, work_type, event_kind, \
     actor, target, payload";

/// Column values decoded leniently: whatever the database holds, a value
/// of the wrong kind becomes "absent" instead of a panic or a failed tick.
struct Cells(Vec<Value>);

impl Cells {
    fn new(row: Row) -> Self {
        Cells(row.unwrap())
    }
    fn take(&mut self, i: usize) -> Value {
        self.0
            .get_mut(i)
            .map(|v| std::mem::replace(v, Value::NULL))
            .unwrap_or(Value::NULL)
    }
    fn text_opt(&mut self, i: usize) -> Option<String> {
        match self.take(i) {
            Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Value::NULL => None,
            other => Some(other.as_sql(true).trim_matches('\'').to_string()),
        }
    }
    fn text(&mut self, i: usize) -> String {
        self.text_opt(i).unwrap_or_default()
    }
    fn int_opt(&mut self, i: usize) -> Option<i64> {
        mysql_async::from_value_opt::<Option<i64>>(self.take(i))
            .ok()
            .flatten()
    }
    fn int(&mut self, i: usize) -> i64 {
        self.int_opt(i).unwrap_or(0)
    }
    /// `None` for NULL and for values that are no date (`0000-00-00 00:00:00`).
    fn datetime(&mut self, i: usize) -> Option<NaiveDateTime> {
        match self.take(i) {
            Value::NULL => None,
            v => mysql_async::from_value_opt::<NaiveDateTime>(v).ok(),
        }
    }
}

impl Bead {
    fn from_row(row: Row) -> Self {
        let mut c = Cells::new(row);
        let metadata = c
            .text_opt(24)
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|v| !matches!(v, serde_json::Value::Object(m) if m.is_empty()));
        Bead {
            id: c.text(0),
            title: c.text(1),
            description: c.text(2),
            design: c.text(3),
            acceptance_criteria: c.text(4),
            notes: c.text(5),
            status: c.text(6),
            priority: c
                .int_opt(7)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(2),
            issue_type: c.text(8),
            assignee: c.text_opt(9),
            owner: c.text(10),
            created_at: c.datetime(11),
            created_by: c.text(12),
            updated_at: c.datetime(13),
            started_at: c.datetime(14),
            closed_at: c.datetime(15),
            spec_id: c.text(16),
            estimated_minutes: c.int_opt(17),
            close_reason: c.text(18),
            closed_by_session: c.text(19),
            due_at: c.datetime(20),
            defer_until: c.datetime(21),
            external_ref: c.text_opt(22),
            source_system: c.text(23),
            metadata,
            compaction_level: c.int(25),
            compacted_at: c.datetime(26),
            compacted_at_commit: c.text_opt(27),
            original_size: c.int(28),
            sender: c.text(29),
            ephemeral: c.int(30) != 0,
            no_history: c.int(31) != 0,
            wisp_type: c.text(32),
            pinned: c.int(33) != 0,
            is_template: c.int(34) != 0,
            mol_type: c.text(35),
            work_type: c.text(36),
            event_kind: c.text(37),
            actor: c.text(38),
            target: c.text(39),
            payload: c.text(40),
            labels: Vec::new(),
        }
    }
}

/// A change to one bead, decided by a pure function over its current row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// New status, when it changes.
    pub status: Option<&'static str>,
    /// Note lines to append, in order.
    pub notes: Vec<String>,
    /// Record the note's event before the status's, as the reaper script
    /// ran `bd note` before `bd update -s` (the dispatcher ran them the other way).
    pub note_first: bool,
}

/// What a guarded write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The change was committed; the row as it was before.
    Done(Box<Bead>, Change),
    /// Nothing written: the bead is gone, changed, or the decision declined.
    Declined,
    /// Nothing written: enough of the agent's beads are already in progress.
    AtCapacity,
}

/// The limit a claim checks inside its transaction.
#[derive(Debug, Clone, Copy)]
pub struct InFlightCap<'a> {
    pub assignee: &'a str,
    pub max_in_flight: u32,
}

/// Which bead a write touches, and how.
struct Target<'a> {
    id: &'a str,
    actor: &'a str,
    now: DateTime<Utc>,
    cap: Option<InFlightCap<'a>>,
    dolt: bool,
}

/// What the candidate query found: the candidates, and rows it could not read.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub beads: Vec<Candidate>,
    /// `(bead id, problem)` of rows skipped because a value could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// The beads database.
pub struct Store {
    pool: Pool,
    target: String,
    project_id: Option<String>,
    commit_author: String,
    info: OnceCell<ServerInfo>,
}

impl Store {
    /// Sets up a connection pool; nothing is connected until the first query.
    pub fn new(db: &DbConfig, commit_author: &str) -> Self {
        let mut builder = OptsBuilder::default()
            .ip_or_hostname(db.host.clone())
            .tcp_port(db.port)
            .user(Some(db.user.clone()))
            .pass(db.password.clone())
            .db_name(Some(db.database.clone()))
            .prefer_socket(false)
            .wait_timeout(Some(600))
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(PoolConstraints::new(0, 4).unwrap_or_default())
                    .with_inactive_connection_ttl(Duration::from_secs(60)),
            )
            // bd's driver default: a client-supplied UTC, never the server's zone.
            .init(vec!["SET time_zone = '+00:00'"]);
        if db.tls {
            builder = builder.ssl_opts(Some(SslOpts::default()));
        }
        Store {
            pool: Pool::new(Opts::from(builder)),
            target: db.to_string(),
            project_id: db.project_id.clone(),
            commit_author: commit_author.to_string(),
            info: OnceCell::new(),
        }
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub(crate) async fn conn(&self) -> Result<Conn> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(StoreError::sql(format!("connecting to {}", self.target), e)),
            Err(_) => Err(StoreError::ConnectTimeout {
                target: self.target.clone(),
            }),
        }
    }

    /// Closes the pool's connections, waiting at most a second: a
    /// connection abandoned mid-statement must not hold the exit.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.pool.disconnect()).await;
    }

    /// Open beads assigned to `assignee` that BeadBoard can see and `bd`
    /// would let the runner change (no templates), in the dispatch order.
    ///
    /// One query, the idle tick's only database work, which also proves the
    /// identity and the schema every tick: it reads `metadata._project_id`
    /// (compared with metadata.json's `project_id`) and names every column
    /// the runner needs in empty subqueries, so a wrong database or a schema
    /// drift is a refusal even when nothing is eligible.
    pub async fn candidates(&self, assignee: &str) -> Result<Candidates> {
        let mut conn = self.conn().await?;
        let probes: String = REQUIRED_COLUMNS
            .iter()
            .enumerate()
            .map(|(n, (table, cols))| {
                let cols: Vec<String> = cols.iter().map(|c| format!("p{n}.`{c}`")).collect();
                format!(
                    "(SELECT COUNT(*) FROM (SELECT {} FROM `{table}` p{n} WHERE 1 = 0) q{n}) AS probe{n}",
                    cols.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT m.pid, c.id, c.priority, c.updated_at, c.acceptance_criteria, c.notes, {probes} \
             FROM (SELECT (SELECT value FROM metadata WHERE `key` = '_project_id') AS pid) m \
             LEFT JOIN (SELECT i.id, i.priority, i.updated_at, i.acceptance_criteria, i.notes FROM issues i \
               WHERE i.assignee = ? AND i.status = ? \
               AND (i.is_template = 0 OR i.is_template IS NULL) \
               AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.issue_id = i.id AND l.label = ?)) c ON 1 = 1 \
             ORDER BY c.priority, c.updated_at, c.id"
        );
        let rows: Vec<Row> = match bounded(
            || "reading candidate beads from issues".into(),
            conn.exec(
                sql,
                (assignee, status::OPEN, labels::BEAD_HIDDEN_FROM_BEADBOARD),
            ),
        )
        .await
        {
            Ok(rows) => rows,
            // Name the missing column precisely before refusing.
            Err(e @ StoreError::Refused(_)) => {
                drop(conn);
                self.load_info().await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut found = Candidates::default();
        let mut project_id = None;
        for row in rows {
            let mut c = Cells::new(row);
            project_id = c.text_opt(0).filter(|p| !p.is_empty());
            let Some(id) = c.text_opt(1) else {
                continue; // the one row of an empty result
            };
            let Some(priority) = c.int_opt(2).and_then(|p| i32::try_from(p).ok()) else {
                found
                    .unreadable
                    .push((id, "priority is not a number".into()));
                continue;
            };
            let updated_at = c.datetime(3);
            found.beads.push(Candidate {
                id,
                priority,
                updated_at,
                acceptance_criteria: c.text(4),
                notes: c.text(5),
            });
        }
        self.check_identity(project_id.as_deref())?;
        Ok(found)
    }

    /// As bd: skipped when either side is empty, a refusal when they differ.
    fn check_identity(&self, found: Option<&str>) -> Result<()> {
        if let (Some(expected), Some(found)) = (&self.project_id, found)
            && expected != found
        {
            return Err(StoreError::Refused(format!(
                "project identity mismatch: metadata.json project_id is {expected:?} but database {} has metadata._project_id {found:?}; this runner is pointed at the wrong beads database",
                self.target
            )));
        }
        Ok(())
    }

    /// The agent's `in_progress` beads.
    pub async fn in_progress(&self, assignee: &str) -> Result<Vec<InProgress>> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = bounded(
            || "reading in_progress beads from issues".into(),
            conn.exec(
                "SELECT id, updated_at, notes FROM issues \
                 WHERE assignee = ? AND status = ? ORDER BY updated_at, id",
                (assignee, status::IN_PROGRESS),
            ),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = Cells::new(row);
                InProgress {
                    id: c.text(0),
                    updated_at: c.datetime(1),
                    notes: c.text(2),
                }
            })
            .collect())
    }

    /// How many of the agent's beads are `in_progress`.
    pub async fn count_in_progress(&self, assignee: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let n: Option<u64> = bounded(
            || "counting in_progress beads".into(),
            conn.exec_first(
                "SELECT COUNT(*) FROM issues WHERE assignee = ? AND status = ?",
                (assignee, status::IN_PROGRESS),
            ),
        )
        .await?;
        Ok(n.unwrap_or(0))
    }

    /// Checks the schema, the project identity and the server kind, once per
    /// store. Any mismatch is a refusal.
    pub async fn verify(&self) -> Result<&ServerInfo> {
        self.info.get_or_try_init(|| self.load_info()).await
    }

    async fn load_info(&self) -> Result<ServerInfo> {
        let mut conn = self.conn().await?;
        // bd's own detection: the function exists only on Dolt.
        let dolt_version: Option<String> = bounded(|| "asking for dolt_version()".into(), async {
            Ok(conn
                .query_first::<String, _>("SELECT dolt_version()")
                .await
                .ok()
                .flatten())
        })
        .await?;
        let dolt_only: &[(&str, &[&str])] = if dolt_version.is_some() {
            DOLT_REQUIRED_COLUMNS
        } else {
            &[]
        };
        // Each table's own columns, not information_schema: on Dolt that
        // resolves every database on the server, and fails while another
        // database is being created or dropped.
        let mut present: Vec<(String, String)> = Vec::new();
        for (table, _) in REQUIRED_COLUMNS.iter().chain(dolt_only) {
            let columns: std::result::Result<Vec<Row>, StoreError> = bounded(
                || format!("reading the columns of table {table}"),
                conn.query(format!("SHOW COLUMNS FROM `{table}`")),
            )
            .await;
            match columns {
                Ok(rows) => present.extend(rows.into_iter().map(|row| {
                    let mut c = Cells::new(row);
                    (table.to_string(), c.text(0))
                })),
                // A missing table: all its columns are named below.
                Err(e) if e.is_refusal() => {}
                Err(e) => return Err(e),
            }
        }
        let missing: Vec<String> = REQUIRED_COLUMNS
            .iter()
            .chain(dolt_only)
            .flat_map(|(table, cols)| cols.iter().map(move |c| (*table, *c)))
            .filter(|(t, c)| {
                !present
                    .iter()
                    .any(|(pt, pc)| pt.eq_ignore_ascii_case(t) && pc.eq_ignore_ascii_case(c))
            })
            .map(|(t, c)| format!("{t}.{c}"))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Refused(format!(
                "database {} is missing column(s) the runner needs: {} (is this a beads database at bd 1.0.1 or later?)",
                self.target,
                missing.join(", ")
            )));
        }

        let version: Option<String> = bounded(
            || "reading the server version".into(),
            conn.query_first("SELECT VERSION()"),
        )
        .await?;

        let project_id: Option<String> = bounded(
            || "reading metadata._project_id".into(),
            conn.query_first("SELECT value FROM metadata WHERE `key` = '_project_id'"),
        )
        .await?;
        let project_id = project_id.filter(|p| !p.is_empty());
        self.check_identity(project_id.as_deref())?;
        Ok(ServerInfo {
            version: version.unwrap_or_default(),
            dolt_version,
            project_id,
        })
    }

    /// Reads one bead (with labels).
    pub async fn bead(&self, id: &str) -> Result<Option<Bead>> {
        let mut conn = self.conn().await?;
        let row: Option<Row> = bounded(
            || format!("reading bead {id}"),
            conn.exec_first(
                format!("SELECT {BEAD_COLUMNS} FROM issues WHERE id = ?"),
                (id,),
            ),
        )
        .await?;
        Ok(row.map(Bead::from_row))
    }

    /// Changes one bead in one transaction, the way `bd update` and `bd note`
    /// together would, but atomically.
    ///
    /// `decide` sees the row as locked by this transaction (on Dolt: as of
    /// the transaction's snapshot) and returns the change, or `None` to
    /// leave the bead alone. The `UPDATE` is conditional on the status and
    /// assignee `decide` saw; on Dolt a concurrent writer that committed
    /// first makes this write fail at `DOLT_COMMIT` with 1213 (both wrote
    /// `notes`), and it is decided again on the row as it is then.
    /// Templates are never changed (bd refuses: "cannot modify template").
    /// Returns the row as it was and the change applied, or `None` when
    /// nothing was written (bead gone, `decide` declined, or a lost race).
    pub async fn write<F>(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<Option<(Bead, Change)>>
    where
        F: Fn(&Bead) -> Option<Change>,
    {
        Ok(
            match self.guarded_write(id, actor, now, None, decide).await? {
                Written::Done(bead, change) => Some((*bead, change)),
                Written::Declined | Written::AtCapacity => None,
            },
        )
    }

    /// [`Store::write`] for a claim: in the same transaction, and before the
    /// bead's row is read, the agent's `in_progress` beads are counted. On
    /// MariaDB/MySQL the count is a locking read, so racing runners take
    /// turns. On Dolt, which takes no locks, the claim first sets the shared
    /// [`CLAIM_LOCK_KEY`] cell to a fresh value, so of two overlapping claims
    /// the second fails at commit and counts again. Either way the cap holds
    /// across runners.
    pub async fn claim<F>(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
        cap: InFlightCap<'_>,
        decide: F,
    ) -> Result<Written>
    where
        F: Fn(&Bead) -> Option<Change>,
    {
        self.guarded_write(id, actor, now, Some(cap), decide).await
    }

    async fn guarded_write<F>(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
        cap: Option<InFlightCap<'_>>,
        decide: F,
    ) -> Result<Written>
    where
        F: Fn(&Bead) -> Option<Change>,
    {
        let dolt = self.verify().await?.dolt_version.is_some();
        let mut conn = self.conn().await?;
        let mut attempt = 0;
        loop {
            let target = Target {
                id,
                actor,
                now,
                cap,
                dolt,
            };
            match self.write_tx(&mut conn, target, &decide).await {
                // A deadlock or merge conflict rolled the whole transaction
                // back; trying again decides afresh on the row as it is now.
                Err(e)
                    if e.is_lost_race()
                        && attempt
                            < match (cap.is_some(), dolt) {
                                (true, false) => CLAIM_RETRIES,
                                (true, true) => DOLT_CLAIM_RETRIES,
                                (false, _) => WRITE_RETRIES,
                            } =>
                {
                    attempt += 1;
                    tracing::debug!(bead_id = id, error = %e, attempt, "write raced another writer; retrying");
                    // Growing, jittered pauses so racing runners fall out of step.
                    let jitter = u64::from(Utc::now().timestamp_subsec_micros() % 20);
                    let pause = (10 * u64::from(attempt)).min(200) + jitter;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                // A claim that keeps losing simply goes to the next bead.
                Err(e) if e.is_lost_race() && cap.is_some() => {
                    tracing::info!(bead_id = id, error = %e, "other runners keep claiming; skipped");
                    return Ok(Written::Declined);
                }
                other => return other,
            }
        }
    }

    async fn write_tx<F>(&self, conn: &mut Conn, target: Target<'_>, decide: &F) -> Result<Written>
    where
        F: Fn(&Bead) -> Option<Change>,
    {
        let Target {
            id,
            actor,
            now,
            cap,
            dolt,
        } = target;
        let ctx = |what: &str| format!("{what} bead {id}");
        // DATETIME holds whole seconds; the note and the row must name the same instant.
        let now = now
            .naive_utc()
            .with_nanosecond(0)
            .unwrap_or(now.naive_utc());
        let mut tx = bounded(
            || ctx("starting a transaction for"),
            conn.start_transaction(TxOpts::default()),
        )
        .await?;

        if let Some(cap) = cap {
            if dolt {
                bounded(
                    || ctx("setting the claim lock (local_metadata) before claiming"),
                    tx.exec_drop(
                        "INSERT INTO local_metadata (`key`, value) VALUES (?, UUID()) \
                         ON DUPLICATE KEY UPDATE value = UUID()",
                        (CLAIM_LOCK_KEY,),
                    ),
                )
                .await?;
            }
            let in_progress: Option<u64> = bounded(
                || ctx("counting in_progress beads before claiming"),
                tx.exec_first(
                    "SELECT COUNT(*) FROM issues WHERE assignee = ? AND status = ? FOR UPDATE",
                    (cap.assignee, status::IN_PROGRESS),
                ),
            )
            .await?;
            if in_progress.unwrap_or(0) >= u64::from(cap.max_in_flight) {
                tx.rollback().await.ok();
                return Ok(Written::AtCapacity);
            }
        }

        let row: Option<Row> = bounded(
            || ctx("locking"),
            tx.exec_first(
                format!("SELECT {BEAD_COLUMNS} FROM issues WHERE id = ? FOR UPDATE"),
                (id,),
            ),
        )
        .await?;
        let Some(row) = row else {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        };
        let mut old = Bead::from_row(row);
        old.labels = bounded(
            || ctx("reading labels of"),
            tx.exec(
                "SELECT label FROM labels WHERE issue_id = ? ORDER BY label",
                (id,),
            ),
        )
        .await?;

        let change = if old.is_template { None } else { decide(&old) };
        let Some(change) = change else {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        };

        let appended = change.notes.join("\n");
        let new_status = change.status.unwrap_or(old.status.as_str()).to_string();
        // bd's UpdateIssue: a status change unpins a pinned bead (unless the
        // new status is `pinned`); started_at is set once, on entering
        // in_progress, and never cleared (a release keeps it).
        let unpin = change.status.is_some_and(|s| s != "pinned") && old.pinned;
        bounded(
            || ctx("updating"),
            tx.exec_drop(
                "UPDATE issues SET updated_at = ?, status = ?, \
                   started_at = CASE WHEN ? = 'in_progress' AND started_at IS NULL THEN ? ELSE started_at END, \
                   pinned = CASE WHEN ? THEN 0 ELSE pinned END, \
                   notes = CASE WHEN ? = '' THEN notes WHEN notes = '' THEN ? ELSE CONCAT(notes, '\n', ?) END \
                 WHERE id = ? AND status = ? AND assignee <=> ?",
                (
                    now,
                    &new_status,
                    &new_status,
                    now,
                    unpin,
                    &appended,
                    &appended,
                    &appended,
                    id,
                    &old.status,
                    &old.assignee,
                ),
            ),
        )
        .await?;
        if tx.affected_rows() != 1 {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        }

        // One event per logical change, in the order the scripts' `bd`
        // commands wrote them, each with the row as that command saw it.
        let mut before = old.clone();
        let mut steps: Vec<bool> = Vec::new(); // true: the status step
        if change.status.is_some() {
            steps.push(true);
        }
        if !appended.is_empty() {
            steps.push(false);
        }
        if change.note_first {
            steps.reverse();
        }
        for is_status in steps {
            if is_status {
                let Some(s) = change.status else { continue };
                self.event(
                    &mut tx,
                    id,
                    event_type(&before.status, s),
                    actor,
                    &before,
                    &serde_json::json!({ "status": s }),
                )
                .await?;
                before.status = s.to_string();
                if unpin {
                    before.pinned = false;
                }
                if s == status::IN_PROGRESS && before.started_at.is_none() {
                    before.started_at = Some(now);
                }
            } else {
                let notes = beads_contract::notes::append(&before.notes, &appended);
                self.event(
                    &mut tx,
                    id,
                    "updated",
                    actor,
                    &before,
                    &serde_json::json!({ "notes": &notes }),
                )
                .await?;
                before.notes = notes;
            }
            before.updated_at = Some(now);
        }

        crate::failpoint::pause(if cap.is_some() {
            crate::failpoint::BEFORE_CLAIM_COMMIT
        } else {
            crate::failpoint::BEFORE_WRITE_COMMIT
        })
        .await;
        if dolt {
            // Staged and committed on the same connection, inside the
            // transaction, as bd does; DOLT_ADD errors are ignored as in bd.
            // DOLT_COMMIT commits the SQL transaction too: a concurrent
            // transaction that wrote a cell this one wrote makes it fail
            // here, with 1213, and roll back whole (the COMMIT below then
            // has nothing left to merge).
            let _ = bounded(|| ctx("staging"), tx.query_drop("CALL DOLT_ADD('issues')")).await;
            let _ = bounded(|| ctx("staging"), tx.query_drop("CALL DOLT_ADD('events')")).await;
            let message = format!("bd: update {id}");
            match tokio::time::timeout(
                STATEMENT_TIMEOUT,
                tx.exec_drop(
                    "CALL DOLT_COMMIT('-m', ?, '--author', ?)",
                    (&message, &self.commit_author),
                ),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.to_string().contains("nothing to commit") => {}
                Ok(Err(e)) => return Err(StoreError::sql(ctx("committing to Dolt history"), e)),
                Err(_) => {
                    return Err(StoreError::Timeout {
                        context: ctx("committing to Dolt history"),
                        after: STATEMENT_TIMEOUT,
                    });
                }
            }
        }
        bounded(|| ctx("committing the change to"), tx.commit()).await?;
        Ok(Written::Done(Box::new(old), change))
    }

    async fn event(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        id: &str,
        event_type: &str,
        actor: &str,
        old: &Bead,
        new_value: &serde_json::Value,
    ) -> Result<()> {
        let old_value = go_json(old);
        let new_value = go_json(new_value);
        bounded(
            || format!("recording an event for bead {id}"),
            tx.exec_drop(
                "INSERT INTO events (id, issue_id, event_type, actor, old_value, new_value) \
                 VALUES (UUID(), ?, ?, ?, ?, ?)",
                (id, event_type, actor, old_value, new_value),
            ),
        )
        .await
    }
}

/// bd's `DetermineEventType` for a status change.
fn event_type(old: &str, new: &str) -> &'static str {
    if new == "closed" {
        "closed"
    } else if old == "closed" {
        "reopened"
    } else {
        "status_changed"
    }
}

/// Compact JSON with Go's HTML escaping of `<`, `>` and `&`, as bd stores it.
fn go_json<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_follow_bd() {
        assert_eq!(event_type("open", "in_progress"), "status_changed");
        assert_eq!(event_type("in_progress", "closed"), "closed");
        assert_eq!(event_type("closed", "open"), "reopened");
    }

    #[test]
    fn json_escapes_like_go() {
        assert_eq!(
            go_json(&serde_json::json!({"notes": "a<b>&c"})),
            r#"{"notes":"a\u003cb\u003e\u0026c"}"#
        );
    }
}
