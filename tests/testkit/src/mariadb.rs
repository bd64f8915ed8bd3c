//! A fresh beads database per test on the suite's MariaDB or Dolt server.
//!
//! `scripts/test` starts one throwaway server of each
//! (`scripts/mariadb-throwaway`, `scripts/dolt-throwaway`) and exports
//! `BEADS_TEST_MYSQL_URL` and `BEADS_TEST_DOLT_URL`; each test then creates
//! its own database with the beads schema and drops it when done. On
//! MariaDB the database is `utf8mb4_bin`, Dolt's case-sensitive comparison;
//! on Dolt it is a Dolt database whose schema and seeds are Dolt commits, so
//! a test sees exactly the commits and working set the runner leaves.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use mysql_async::prelude::*;
use mysql_async::{Opts, Pool};

/// The variable `scripts/test` exports for MariaDB.
pub const URL_VAR: &str = "BEADS_TEST_MYSQL_URL";
/// The variable `scripts/test` exports for Dolt.
pub const DOLT_URL_VAR: &str = "BEADS_TEST_DOLT_URL";

const SCHEMA: &str = include_str!("../sql/beads-schema.sql");

/// Which server a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB (`scripts/mariadb-throwaway`): row locks.
    MariaDb,
    /// A real `dolt sql-server` (`scripts/dolt-throwaway`): snapshots merged at commit.
    Dolt,
}

impl Backend {
    /// The variable holding the suite's server URL.
    pub fn url_var(self) -> &'static str {
        match self {
            Backend::MariaDb => URL_VAR,
            Backend::Dolt => DOLT_URL_VAR,
        }
    }

    fn script(self) -> &'static str {
        match self {
            Backend::MariaDb => "mariadb-throwaway",
            Backend::Dolt => "dolt-throwaway",
        }
    }

    fn dir_var(self) -> &'static str {
        match self {
            Backend::MariaDb => "BEADS_TEST_MARIADB_DIR",
            Backend::Dolt => "BEADS_TEST_DOLT_DIR",
        }
    }

    /// The suite's server URL, e.g. `mysql://root@127.0.0.1:PORT`. Panics,
    /// naming the variable and the script, when it is unset: a test for one
    /// backend never runs silently against the other, nor skips.
    pub fn server_url(self) -> String {
        let var = self.url_var();
        std::env::var(var).unwrap_or_else(|_| {
            panic!(
                "{var} is not set. Run the tests with scripts/test, which starts a throwaway \
                 MariaDB and a throwaway Dolt; or start one yourself: eval \"$(scripts/{} start)\"",
                self.script()
            )
        })
    }
}

/// The MariaDB server's base URL, e.g. `mysql://root@127.0.0.1:PORT`.
pub fn server_url() -> String {
    Backend::MariaDb.server_url()
}

/// A server of one test's own (for restarting it), started and stopped
/// with `scripts/mariadb-throwaway` or `scripts/dolt-throwaway`.
pub struct PrivateServer {
    /// `mysql://root@127.0.0.1:PORT`
    pub url: String,
    dir: String,
    backend: Backend,
}

fn throwaway_script(backend: Backend) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(backend.script())
}

fn run_script(backend: Backend, args: &[&str]) -> String {
    let out = std::process::Command::new(throwaway_script(backend))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{}: {e}", backend.script()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        backend.script(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrivateServer {
    /// Starts a fresh MariaDB server on a free port.
    pub fn start() -> Self {
        Self::start_for(Backend::MariaDb)
    }

    /// Starts a fresh server of `backend` on a free port.
    pub fn start_for(backend: Backend) -> Self {
        let exports = run_script(backend, &["start"]);
        let value = |name: &str| {
            exports
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("export {name}='"))?
                        .strip_suffix('\'')
                })
                .map(String::from)
                .unwrap_or_else(|| panic!("no {name} in {exports}"))
        };
        PrivateServer {
            url: value(backend.url_var()),
            dir: value(backend.dir_var()),
            backend,
        }
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&self) {
        run_script(self.backend, &["restart", &self.dir]);
    }

    /// Kills the server with SIGKILL and starts it again on the same data.
    pub fn crash(&self) {
        run_script(self.backend, &["crash", &self.dir]);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(throwaway_script(self.backend))
            .args(["stop", &self.dir])
            .output();
    }
}

/// A bead to insert.
#[derive(Debug, Clone)]
pub struct Seed {
    pub id: String,
    pub title: String,
    pub status: String,
    pub priority: i32,
    pub assignee: Option<String>,
    pub acceptance_criteria: String,
    pub notes: String,
    pub updated_at: DateTime<Utc>,
    pub labels: Vec<String>,
}

impl Seed {
    /// An open bead for the agent, with acceptance criteria, updated an hour ago.
    pub fn agent(id: &str) -> Self {
        Seed {
            id: id.into(),
            title: format!("bead {id}"),
            status: "open".into(),
            priority: 2,
            assignee: Some("agent".into()),
            acceptance_criteria: "it works".into(),
            notes: String::new(),
            updated_at: Utc::now() - chrono::Duration::hours(1),
            labels: Vec::new(),
        }
    }
    pub fn status(mut self, s: &str) -> Self {
        self.status = s.into();
        self
    }
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    pub fn assignee(mut self, a: Option<&str>) -> Self {
        self.assignee = a.map(Into::into);
        self
    }
    pub fn acceptance(mut self, ac: &str) -> Self {
        self.acceptance_criteria = ac.into();
        self
    }
    pub fn notes(mut self, n: &str) -> Self {
        self.notes = n.into();
        self
    }
    pub fn updated(mut self, at: DateTime<Utc>) -> Self {
        self.updated_at = at;
        self
    }
    pub fn updated_minutes_ago(self, minutes: i64) -> Self {
        self.updated(Utc::now() - chrono::Duration::minutes(minutes))
    }
    pub fn label(mut self, l: &str) -> Self {
        self.labels.push(l.into());
        self
    }
}

/// `id, status, assignee, notes, updated_at, started_at`
type BeadTuple = (
    String,
    String,
    Option<String>,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

/// A bead as stored, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeadRow {
    pub id: String,
    pub status: String,
    pub assignee: Option<String>,
    pub notes: String,
    pub updated_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
}

impl BeadRow {
    /// The note lines, in order.
    pub fn note_lines(&self) -> Vec<&str> {
        self.notes.lines().collect()
    }
}

/// An `events` row, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub event_type: String,
    pub actor: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// A beads database of its own, dropped with this value.
pub struct BeadsDb {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The server it lives on.
    pub backend: Backend,
    pool: Pool,
    admin: Pool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A Dolt commit, for assertions (`dolt_log`, newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoltCommit {
    pub message: String,
    pub committer: String,
    pub email: String,
}

impl BeadsDb {
    /// Creates `beads_test_<pid>_<n>` with the beads schema on the suite's MariaDB.
    pub async fn create() -> Self {
        Self::create_for(Backend::MariaDb).await
    }

    /// Creates a beads database on the suite's server of `backend`.
    pub async fn create_for(backend: Backend) -> Self {
        Self::create_on_backend(&backend.server_url(), backend).await
    }

    /// Creates a beads database on the MariaDB server at `base` (`mysql://root@host:port`).
    pub async fn create_on(base: &str) -> Self {
        Self::create_on_backend(base, Backend::MariaDb).await
    }

    /// Creates a beads database on the `backend` server at `base`.
    pub async fn create_on_backend(base: &str, backend: Backend) -> Self {
        let opts = Opts::from_url(base).expect("a mysql:// URL");
        let host = opts.ip_or_hostname().to_string();
        let port = opts.tcp_port();
        let user = opts.user().unwrap_or("root").to_string();
        // The clock too: process ids come round again, and a database left
        // by an earlier run (never dropped on Dolt) must not be hit.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
        let name = format!(
            "beads_test_{}_{}_{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = Pool::new(opts.clone());
        let mut conn = admin
            .get_conn()
            .await
            .unwrap_or_else(|e| panic!("connect to the test {backend:?} server at {base}: {e}"));
        // Dolt's default collation, utf8mb4_0900_bin, is already case-sensitive.
        let create = match backend {
            Backend::MariaDb => {
                format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            Backend::Dolt => format!("CREATE DATABASE `{name}`"),
        };
        conn.query_drop(create).await.expect("create test database");
        drop(conn);
        let pool = Pool::new(
            mysql_async::OptsBuilder::from_opts(opts)
                .db_name(Some(name.clone()))
                .init(vec!["SET time_zone = '+00:00'"]),
        );
        let db = BeadsDb {
            name,
            host,
            port,
            user,
            backend,
            pool,
            admin,
        };
        // Comment lines go first: they may hold semicolons.
        let sql: String = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if backend == Backend::Dolt {
            // As bd's migration 0028, before 0029 creates the table:
            // local_metadata never enters history.
            db.exec("INSERT INTO dolt_ignore VALUES ('local_metadata', 1)")
                .await;
        }
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            db.exec(statement).await;
        }
        db
    }

    /// On Dolt, commits whatever the test's own setup left in the working
    /// set (`test setup`, by the SQL user), as `bd`'s migrations and writes
    /// leave none: what the runner then commits is only its own.
    async fn commit_setup(&self, c: &mut mysql_async::Conn) {
        if self.backend != Backend::Dolt {
            return;
        }
        let dirty: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM dolt_status")
            .await
            .expect("read dolt_status");
        if dirty.unwrap_or(0) > 0 {
            c.query_drop("CALL DOLT_COMMIT('-Am', 'test setup')")
                .await
                .expect("commit the test setup to Dolt");
        }
    }

    /// On Dolt, asserts that nothing is left out of a Dolt commit
    /// (`dolt_status` is empty); nothing to check on MariaDB.
    pub async fn assert_committed(&self) {
        if self.backend == Backend::Dolt {
            let status = self.dolt_status().await;
            assert!(
                status.is_empty(),
                "left uncommitted in Dolt's working set: {status:?}"
            );
        }
    }

    /// Dolt's history of this database, newest first (`dolt_log`).
    pub async fn dolt_log(&self) -> Vec<DoltCommit> {
        assert_eq!(
            self.backend,
            Backend::Dolt,
            "dolt_log on {:?}",
            self.backend
        );
        let mut c = self.conn().await;
        let rows: Vec<(String, String, String)> = c
            .query("SELECT message, committer, email FROM dolt_log")
            .await
            .expect("read dolt_log");
        rows.into_iter()
            .map(|(message, committer, email)| DoltCommit {
                message,
                committer,
                email,
            })
            .collect()
    }

    /// Tables with changes not in a Dolt commit (`dolt_status`), as
    /// `table (status, staged)`.
    pub async fn dolt_status(&self) -> Vec<String> {
        assert_eq!(
            self.backend,
            Backend::Dolt,
            "dolt_status on {:?}",
            self.backend
        );
        let mut c = self.conn().await;
        let rows: Vec<(String, String, String)> = c
            .query("SELECT table_name, CAST(staged AS CHAR), status FROM dolt_status")
            .await
            .expect("read dolt_status");
        rows.into_iter()
            .map(|(t, staged, status)| format!("{t} ({status}, staged {staged})"))
            .collect()
    }

    /// metadata.json for this database, as `bd init` writes it in server mode.
    pub fn metadata_json(&self, project_id: Option<&str>) -> String {
        beads_contract::Metadata::for_server(
            &self.host, self.port, &self.user, &self.name, project_id, None,
        )
        .to_json()
    }

    /// Sets `metadata._project_id`.
    pub async fn set_project_id(&self, id: &str) {
        let mut c = self.conn().await;
        c.exec_drop(
            "REPLACE INTO metadata (`key`, value) VALUES ('_project_id', ?)",
            (id,),
        )
        .await
        .expect("set _project_id");
        self.commit_setup(&mut c).await;
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        self.pool
            .get_conn()
            .await
            .expect("connect to test database")
    }

    /// Runs one statement, panicking with it on error.
    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        if let Err(e) = c.query_drop(sql).await {
            panic!("{sql}: {e}");
        }
        self.commit_setup(&mut c).await;
    }

    /// Inserts beads. Times are cut to whole seconds first: MariaDB
    /// truncates a fraction sent into a `DATETIME`, Dolt rounds it (observed
    /// with 1.83.2: a bead seeded 45 minutes ago read as 44 whole minutes).
    pub async fn seed(&self, beads: &[Seed]) {
        let mut c = self.conn().await;
        for b in beads {
            let at = b.updated_at.naive_utc();
            let at = at.with_nanosecond(0).unwrap_or(at);
            c.exec_drop(
                "INSERT INTO issues (id, title, description, design, acceptance_criteria, notes, \
                 status, priority, assignee, created_at, updated_at) \
                 VALUES (?, ?, '', '', ?, ?, ?, ?, ?, ?, ?)",
                (
                    &b.id,
                    &b.title,
                    &b.acceptance_criteria,
                    &b.notes,
                    &b.status,
                    b.priority,
                    &b.assignee,
                    at,
                    at,
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("seed {}: {e}", b.id));
            for l in &b.labels {
                c.exec_drop(
                    "INSERT INTO labels (issue_id, label) VALUES (?, ?)",
                    (&b.id, l),
                )
                .await
                .expect("seed label");
            }
        }
        self.commit_setup(&mut c).await;
    }

    /// Inserts many closed beads quickly (for scale tests and benchmarks).
    pub async fn seed_closed(&self, count: usize, assignee: Option<&str>) {
        let mut c = self.conn().await;
        let mut start = 0;
        while start < count {
            let end = (start + 5000).min(count);
            let values: Vec<String> = (start..end)
                .map(|i| {
                    format!(
                        "('closed-{i}', 'done {i}', '', '', 'ac', '', 'closed', {}, {}, NOW(), NOW(), NOW())",
                        i % 5,
                        match assignee {
                            Some(a) => format!("'{a}'"),
                            None => "NULL".into(),
                        }
                    )
                })
                .collect();
            c.query_drop(format!(
                "INSERT INTO issues (id, title, description, design, acceptance_criteria, notes, \
                 status, priority, assignee, created_at, updated_at, closed_at) VALUES {}",
                values.join(",")
            ))
            .await
            .expect("seed closed beads");
            start = end;
        }
        c.query_drop("ANALYZE TABLE issues").await.expect("analyze");
        self.commit_setup(&mut c).await;
    }

    /// One bead as stored.
    pub async fn bead(&self, id: &str) -> BeadRow {
        let mut c = self.conn().await;
        let row: Option<BeadTuple> = c
            .exec_first(
                "SELECT id, status, assignee, notes, updated_at, started_at FROM issues WHERE id = ?",
                (id,),
            )
            .await
            .expect("read bead");
        let (id, status, assignee, notes, updated_at, started_at) =
            row.unwrap_or_else(|| panic!("no bead {id}"));
        BeadRow {
            id,
            status,
            assignee,
            notes,
            updated_at,
            started_at,
        }
    }

    /// All beads, by id.
    pub async fn beads(&self) -> Vec<BeadRow> {
        let mut c = self.conn().await;
        let ids: Vec<String> = c
            .query("SELECT id FROM issues ORDER BY id")
            .await
            .expect("list beads");
        drop(c);
        let mut out = Vec::new();
        for id in ids {
            out.push(self.bead(&id).await);
        }
        out
    }

    /// A bead's events, oldest first.
    pub async fn events(&self, id: &str) -> Vec<EventRow> {
        if self.backend == Backend::Dolt {
            return self.dolt_events(id).await;
        }
        let mut c = self.conn().await;
        let rows: Vec<(String, String, Option<String>, Option<String>)> = c
            .exec(
                "SELECT event_type, actor, old_value, new_value FROM events \
                 WHERE issue_id = ? ORDER BY created_at",
                (id,),
            )
            .await
            .expect("read events");
        rows.into_iter()
            .map(|(event_type, actor, old_value, new_value)| EventRow {
                event_type,
                actor,
                old_value,
                new_value,
            })
            .collect()
    }

    /// A bead's events on Dolt, oldest first. `created_at` has whole
    /// seconds and Dolt's `UUID()` keys are random, so rows of one second
    /// have no order in the table; the order is the Dolt commit that added
    /// each row (`dolt_diff_events`, ranked by `dolt_log`), and within one
    /// commit the order the rows themselves record: the later event's
    /// `old_value` already holds the earlier one's `new_value`.
    async fn dolt_events(&self, id: &str) -> Vec<EventRow> {
        let mut c = self.conn().await;
        let log: Vec<String> = c
            .query("SELECT commit_hash FROM dolt_log")
            .await
            .expect("read dolt_log");
        type Row = (String, String, Option<String>, Option<String>, String);
        let rows: Vec<Row> = c
            .exec(
                "SELECT e.event_type, e.actor, e.old_value, e.new_value, \
                        COALESCE(d.to_commit, 'WORKING') \
                 FROM events e LEFT JOIN dolt_diff_events d \
                   ON d.to_id = e.id AND d.diff_type = 'added' \
                 WHERE e.issue_id = ?",
                (id,),
            )
            .await
            .expect("read events with the commits that added them");
        // Oldest commit first; rows not committed yet last.
        let rank = |commit: &str| {
            log.iter()
                .position(|h| h == commit)
                .map_or(0, |p| log.len() - p)
        };
        let mut rows: Vec<(usize, EventRow)> = rows
            .into_iter()
            .map(|(event_type, actor, old_value, new_value, commit)| {
                let r = if commit == "WORKING" {
                    usize::MAX
                } else {
                    rank(&commit)
                };
                (
                    r,
                    EventRow {
                        event_type,
                        actor,
                        old_value,
                        new_value,
                    },
                )
            })
            .collect();
        rows.sort_by_key(|(r, _)| *r);
        let mut events: Vec<EventRow> = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let end = i + rows[i..]
                .iter()
                .take_while(|(r, _)| *r == rows[i].0)
                .count();
            let mut group: Vec<EventRow> = rows[i..end].iter().map(|(_, e)| e.clone()).collect();
            // Repeatedly take the event no other in the group precedes.
            while !group.is_empty() {
                let first = (0..group.len())
                    .find(|&a| !(0..group.len()).any(|b| b != a && precedes(&group[b], &group[a])))
                    .unwrap_or(0);
                events.push(group.remove(first));
            }
            i = end;
        }
        events
    }

    /// Kills every connection open on this database but the one asking,
    /// as a database restart or a network cut would drop a runner's, and
    /// returns how many there were. A test pauses the runner at a failpoint
    /// first, so that its connection is among them; the idle connections of
    /// this handle's own pool are killed too and reconnect when next used.
    pub async fn kill_other_connections(&self) -> usize {
        let mut c = self.conn().await;
        let ids: Vec<u64> = c
            .exec(
                "SELECT id FROM information_schema.processlist \
                 WHERE db = ? AND id <> CONNECTION_ID()",
                (&self.name,),
            )
            .await
            .expect("list the database's connections");
        for id in &ids {
            // A connection may close by itself between the list and its KILL
            // ("Unknown thread id"); it is gone either way.
            c.query_drop(format!("KILL {id}")).await.ok();
        }
        ids.len()
    }

    /// Number of rows in `events`.
    pub async fn event_count(&self) -> u64 {
        let mut c = self.conn().await;
        c.query_first("SELECT COUNT(*) FROM events")
            .await
            .expect("count events")
            .unwrap_or(0)
    }
}

/// Whether `a` was written before `b` in one transaction: every key `a`
/// changed already has `a`'s new value in the row `b` saw.
fn precedes(a: &EventRow, b: &EventRow) -> bool {
    let json = |v: &Option<String>| -> serde_json::Value {
        v.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let (a_old, a_new, b_old) = (json(&a.old_value), json(&a.new_value), json(&b.old_value));
    let Some(changed) = a_new.as_object() else {
        return false;
    };
    !changed.is_empty()
        && changed
            .iter()
            .all(|(k, v)| a_old.get(k) != Some(v) && b_old.get(k) == Some(v))
}

impl Drop for BeadsDb {
    fn drop(&mut self) {
        // Not on Dolt: a DROP DATABASE while other tests' sessions are open
        // deadlocked dolt sql-server 1.83.2 here (DoltDatabaseProvider's
        // invalidateDbStateInAllSessions waiting on a session's lock; every
        // later statement hung). The throwaway server and its folder are
        // removed at the end of the run instead.
        if self.backend == Backend::Dolt {
            let pool = self.pool.clone();
            let admin = self.admin.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = pool.disconnect().await;
                    let _ = admin.disconnect().await;
                });
            }
            return;
        }
        // Best effort: the throwaway server is removed at the end of the run anyway.
        let name = self.name.clone();
        let admin = self.admin.clone();
        let pool = self.pool.clone();
        let drop_db = async move {
            let _ = pool.disconnect().await;
            if let Ok(mut c) = admin.get_conn().await {
                let _ = c
                    .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await;
            }
            let _ = admin.disconnect().await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(drop_db);
            }
            Err(_) => {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_db);
                }
            }
        }
    }
}
