//! The beads database, over the MySQL protocol (Dolt, MariaDB or MySQL).
//!
//! Reads are single indexed queries. Every write goes through
//! [`Store::write`]: one transaction that locks the bead's row, lets a pure
//! decision look at it, applies the change with a conditional `UPDATE`,
//! records `events` rows as `bd` does, commits to Dolt's history when the
//! server is Dolt, and commits. A write either happens whole or not at all.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts, TxOpts};
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::config::DbConfig;
use crate::decide::{Candidate, InProgress, status};
use beads_contract::labels;

/// Retries of a claim that keeps losing races before moving to the next bead.
const CLAIM_RETRIES: u32 = 5;
/// Retries of any other write: these record outcomes, so they try harder.
const WRITE_RETRIES: u32 = 20;

/// How long to wait for a connection (bd's DSN uses a 5 s connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// MySQL error codes the runner treats specially.
mod code {
    pub const BAD_FIELD: u16 = 1054;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_DB: u16 = 1049;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
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
                code::BAD_DB | code::ACCESS_DENIED | code::DB_ACCESS_DENIED => {
                    return StoreError::Refused(format!(
                        "{context}: {} (MySQL error {})",
                        e.message, e.code
                    ));
                }
                _ => {}
            }
        }
        StoreError::Sql { context, source }
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
/// `bd` stores in `events.old_value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub status: String,
    pub priority: i32,
    pub issue_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(with = "rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(with = "rfc3339")]
    pub updated_at: NaiveDateTime,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub started_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub closed_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Timestamps as bd's JSON writes them: RFC 3339, UTC, `Z`.
mod rfc3339 {
    use chrono::NaiveDateTime;
    pub fn serialize<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&beads_contract::notes::timestamp(t.and_utc()))
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
     priority, issue_type, assignee, owner, created_at, created_by, updated_at, started_at, closed_at";

impl Bead {
    fn from_row(
        mut row: mysql_async::Row,
    ) -> std::result::Result<Self, mysql_async::FromValueError> {
        fn text(
            row: &mut mysql_async::Row,
            i: usize,
        ) -> std::result::Result<String, mysql_async::FromValueError> {
            Ok(row
                .take_opt::<Option<String>, _>(i)
                .transpose()?
                .flatten()
                .unwrap_or_default())
        }
        Ok(Bead {
            id: text(&mut row, 0)?,
            title: text(&mut row, 1)?,
            description: text(&mut row, 2)?,
            design: text(&mut row, 3)?,
            acceptance_criteria: text(&mut row, 4)?,
            notes: text(&mut row, 5)?,
            status: text(&mut row, 6)?,
            priority: row.take_opt(7).transpose()?.unwrap_or(2),
            issue_type: text(&mut row, 8)?,
            assignee: row.take_opt::<Option<String>, _>(9).transpose()?.flatten(),
            owner: text(&mut row, 10)?,
            created_at: row.take_opt(11).transpose()?.unwrap_or_default(),
            created_by: text(&mut row, 12)?,
            updated_at: row.take_opt(13).transpose()?.unwrap_or_default(),
            started_at: row
                .take_opt::<Option<NaiveDateTime>, _>(14)
                .transpose()?
                .flatten(),
            closed_at: row
                .take_opt::<Option<NaiveDateTime>, _>(15)
                .transpose()?
                .flatten(),
            labels: Vec::new(),
        })
    }
}

/// A change to one bead, decided by a pure function over its current row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// New status, when it changes.
    pub status: Option<&'static str>,
    /// Note lines to append, in order.
    pub notes: Vec<String>,
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

/// `id, priority, updated_at, acceptance_criteria, notes`
type CandidateRow = (String, i32, NaiveDateTime, Option<String>, Option<String>);

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

    /// Closes the pool's connections.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }

    /// Open beads assigned to `assignee` that BeadBoard can see, in the
    /// dispatch order. One indexed query: the idle tick's only database work.
    pub async fn candidates(&self, assignee: &str) -> Result<Vec<Candidate>> {
        let mut conn = self.conn().await?;
        let rows: Vec<CandidateRow> = conn
            .exec(
                "SELECT i.id, i.priority, i.updated_at, i.acceptance_criteria, i.notes \
                 FROM issues i \
                 WHERE i.assignee = ? AND i.status = ? \
                   AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.issue_id = i.id AND l.label = ?) \
                 ORDER BY i.priority, i.updated_at, i.id",
                (assignee, status::OPEN, labels::BEAD_HIDDEN_FROM_BEADBOARD),
            )
            .await
            .map_err(|e| StoreError::sql("reading candidate beads from issues", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, priority, updated_at, ac, notes)| Candidate {
                id,
                priority,
                updated_at,
                acceptance_criteria: ac.unwrap_or_default(),
                notes: notes.unwrap_or_default(),
            })
            .collect())
    }

    /// The agent's `in_progress` beads.
    pub async fn in_progress(&self, assignee: &str) -> Result<Vec<InProgress>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, NaiveDateTime, Option<String>)> = conn
            .exec(
                "SELECT id, updated_at, notes FROM issues \
                 WHERE assignee = ? AND status = ? ORDER BY updated_at, id",
                (assignee, status::IN_PROGRESS),
            )
            .await
            .map_err(|e| StoreError::sql("reading in_progress beads from issues", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, updated_at, notes)| InProgress {
                id,
                updated_at,
                notes: notes.unwrap_or_default(),
            })
            .collect())
    }

    /// How many of the agent's beads are `in_progress`.
    pub async fn count_in_progress(&self, assignee: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let n: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM issues WHERE assignee = ? AND status = ?",
                (assignee, status::IN_PROGRESS),
            )
            .await
            .map_err(|e| StoreError::sql("counting in_progress beads", e))?;
        Ok(n.unwrap_or(0))
    }

    /// Checks the schema, the project identity and the server kind, once per
    /// store. Any mismatch is a refusal.
    pub async fn verify(&self) -> Result<&ServerInfo> {
        self.info.get_or_try_init(|| self.load_info()).await
    }

    async fn load_info(&self) -> Result<ServerInfo> {
        let mut conn = self.conn().await?;
        let present: Vec<(String, String)> = conn
            .exec(
                "SELECT table_name, column_name FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name IN ('issues','events','labels','metadata')",
                (),
            )
            .await
            .map_err(|e| StoreError::sql("reading the schema from information_schema", e))?;
        let missing: Vec<String> = REQUIRED_COLUMNS
            .iter()
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

        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| StoreError::sql("reading the server version", e))?;
        // bd's own detection: the function exists only on Dolt.
        let dolt_version: Option<String> = conn
            .query_first("SELECT dolt_version()")
            .await
            .ok()
            .flatten();

        let project_id: Option<String> = conn
            .query_first("SELECT value FROM metadata WHERE `key` = '_project_id'")
            .await
            .map_err(|e| StoreError::sql("reading metadata._project_id", e))?;
        let project_id = project_id.filter(|p| !p.is_empty());
        // As bd: skipped when either side is empty, fatal when they differ.
        if let (Some(expected), Some(found)) = (&self.project_id, &project_id)
            && expected != found
        {
            return Err(StoreError::Refused(format!(
                "project identity mismatch: metadata.json project_id is {expected:?} but database {} has metadata._project_id {found:?}; this runner is pointed at the wrong beads database",
                self.target
            )));
        }
        Ok(ServerInfo {
            version: version.unwrap_or_default(),
            dolt_version,
            project_id,
        })
    }

    /// Reads one bead (with labels).
    pub async fn bead(&self, id: &str) -> Result<Option<Bead>> {
        let mut conn = self.conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                format!("SELECT {BEAD_COLUMNS} FROM issues WHERE id = ?"),
                (id,),
            )
            .await
            .map_err(|e| StoreError::sql(format!("reading bead {id}"), e))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(Bead::from_row(row).map_err(|e| {
                StoreError::Decode {
                    context: format!("decoding bead {id}"),
                    message: e.to_string(),
                }
            })?)),
        }
    }

    /// Changes one bead in one transaction, the way `bd update` and `bd note`
    /// together would, but atomically.
    ///
    /// `decide` sees the row as locked by this transaction and returns the
    /// change, or `None` to leave the bead alone. The `UPDATE` is conditional
    /// on the status and assignee `decide` saw, so on Dolt (which merges at
    /// commit instead of locking) a concurrent writer makes it a no-op.
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
    /// bead's row is locked, the agent's `in_progress` beads are counted with
    /// a locking read, so racing runners on MariaDB/MySQL take turns and the
    /// cap holds. (Dolt takes no row locks; there the cap is per runner.)
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
                            < if cap.is_some() {
                                CLAIM_RETRIES
                            } else {
                                WRITE_RETRIES
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
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| StoreError::sql(ctx("starting a transaction for"), e))?;

        if let Some(cap) = cap {
            let in_progress: Option<u64> = tx
                .exec_first(
                    "SELECT COUNT(*) FROM issues WHERE assignee = ? AND status = ? FOR UPDATE",
                    (cap.assignee, status::IN_PROGRESS),
                )
                .await
                .map_err(|e| {
                    StoreError::sql(ctx("counting in_progress beads before claiming"), e)
                })?;
            if in_progress.unwrap_or(0) >= u64::from(cap.max_in_flight) {
                tx.rollback().await.ok();
                return Ok(Written::AtCapacity);
            }
        }

        let row: Option<mysql_async::Row> = tx
            .exec_first(
                format!("SELECT {BEAD_COLUMNS} FROM issues WHERE id = ? FOR UPDATE"),
                (id,),
            )
            .await
            .map_err(|e| StoreError::sql(ctx("locking"), e))?;
        let Some(row) = row else {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        };
        let mut old = Bead::from_row(row).map_err(|e| StoreError::Decode {
            context: ctx("decoding"),
            message: e.to_string(),
        })?;
        old.labels = tx
            .exec(
                "SELECT label FROM labels WHERE issue_id = ? ORDER BY label",
                (id,),
            )
            .await
            .map_err(|e| StoreError::sql(ctx("reading labels of"), e))?;

        let Some(change) = decide(&old) else {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        };

        let appended = change.notes.join("\n");
        let new_status = change.status.unwrap_or(old.status.as_str()).to_string();
        tx.exec_drop(
            "UPDATE issues SET updated_at = ?, status = ?, \
               started_at = CASE WHEN ? = 'in_progress' AND started_at IS NULL THEN ? ELSE started_at END, \
               notes = CASE WHEN ? = '' THEN notes WHEN notes = '' THEN ? ELSE CONCAT(notes, '\n', ?) END \
             WHERE id = ? AND status = ? AND assignee <=> ?",
            (
                now,
                &new_status,
                &new_status,
                now,
                &appended,
                &appended,
                &appended,
                id,
                &old.status,
                &old.assignee,
            ),
        )
        .await
        .map_err(|e| StoreError::sql(ctx("updating"), e))?;
        if tx.affected_rows() != 1 {
            tx.rollback().await.ok();
            return Ok(Written::Declined);
        }

        // One event per logical change, as `bd update -s` then `bd note` write them.
        let mut before = old.clone();
        if let Some(s) = change.status {
            self.event(
                &mut tx,
                id,
                event_type(&old.status, s),
                actor,
                &before,
                &serde_json::json!({ "status": s }),
            )
            .await?;
            before.status = s.to_string();
            before.updated_at = now;
        }
        if !appended.is_empty() {
            let notes: Option<String> = tx
                .exec_first("SELECT notes FROM issues WHERE id = ?", (id,))
                .await
                .map_err(|e| StoreError::sql(ctx("re-reading notes of"), e))?;
            self.event(
                &mut tx,
                id,
                "updated",
                actor,
                &before,
                &serde_json::json!({ "notes": notes.unwrap_or_default() }),
            )
            .await?;
        }

        if dolt {
            // Staged and committed on the same connection, inside the
            // transaction, as bd does; DOLT_ADD errors are ignored as in bd.
            tx.query_drop("CALL DOLT_ADD('issues')").await.ok();
            tx.query_drop("CALL DOLT_ADD('events')").await.ok();
            let message = format!("bd: update {id}");
            if let Err(e) = tx
                .exec_drop(
                    "CALL DOLT_COMMIT('-m', ?, '--author', ?)",
                    (&message, &self.commit_author),
                )
                .await
                && !e.to_string().contains("nothing to commit")
            {
                return Err(StoreError::sql(ctx("committing to Dolt history"), e));
            }
        }
        if change.status == Some(status::IN_PROGRESS) {
            crate::failpoint::pause(crate::failpoint::BEFORE_CLAIM_COMMIT).await;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::sql(ctx("committing the change to"), e))?;
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
        tx.exec_drop(
            "INSERT INTO events (id, issue_id, event_type, actor, old_value, new_value) \
             VALUES (UUID(), ?, ?, ?, ?, ?)",
            (id, event_type, actor, old_value, new_value),
        )
        .await
        .map_err(|e| StoreError::sql(format!("recording an event for bead {id}"), e))
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
