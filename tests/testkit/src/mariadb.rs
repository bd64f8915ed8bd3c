//! A fresh beads database per test on the suite's MariaDB server.
//!
//! `scripts/test` starts one throwaway server (`scripts/mariadb-throwaway`)
//! and exports `BEADS_TEST_MYSQL_URL`; each test then creates its own
//! database with the beads schema and `utf8mb4_bin`, Dolt's case-sensitive
//! comparison, and drops it when done.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::prelude::*;
use mysql_async::{Opts, Pool};

/// The variable `scripts/test` exports.
pub const URL_VAR: &str = "BEADS_TEST_MYSQL_URL";

const SCHEMA: &str = include_str!("../sql/beads-schema.sql");

/// The server's base URL, e.g. `mysql://root@127.0.0.1:PORT`.
pub fn server_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set. Run the tests with scripts/test, which starts a throwaway \
             MariaDB; or start one yourself: eval \"$(scripts/mariadb-throwaway start)\""
        )
    })
}

/// A MariaDB server of one test's own (for restarting it), started and
/// stopped with `scripts/mariadb-throwaway`.
pub struct PrivateServer {
    /// `mysql://root@127.0.0.1:PORT`
    pub url: String,
    dir: String,
}

fn throwaway_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mariadb-throwaway")
}

fn run_script(args: &[&str]) -> String {
    let out = std::process::Command::new(throwaway_script())
        .args(args)
        .output()
        .expect("run scripts/mariadb-throwaway");
    assert!(
        out.status.success(),
        "mariadb-throwaway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrivateServer {
    /// Starts a fresh server on a free port.
    pub fn start() -> Self {
        let exports = run_script(&["start"]);
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
            url: value("BEADS_TEST_MYSQL_URL"),
            dir: value("BEADS_TEST_MARIADB_DIR"),
        }
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&self) {
        run_script(&["restart", &self.dir]);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(throwaway_script())
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
    pool: Pool,
    admin: Pool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl BeadsDb {
    /// Creates `beads_test_<pid>_<n>` with the beads schema on the suite's server.
    pub async fn create() -> Self {
        Self::create_on(&server_url()).await
    }

    /// Creates a beads database on the server at `base` (`mysql://root@host:port`).
    pub async fn create_on(base: &str) -> Self {
        let opts = Opts::from_url(base).expect("a mysql:// URL");
        let host = opts.ip_or_hostname().to_string();
        let port = opts.tcp_port();
        let user = opts.user().unwrap_or("root").to_string();
        let name = format!(
            "beads_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = Pool::new(opts.clone());
        let mut conn = admin.get_conn().await.expect("connect to the test MariaDB");
        conn.query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .expect("create test database");
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
            pool,
            admin,
        };
        // Comment lines go first: they may hold semicolons.
        let sql: String = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            db.exec(statement).await;
        }
        db
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
    }

    /// Inserts beads.
    pub async fn seed(&self, beads: &[Seed]) {
        let mut c = self.conn().await;
        for b in beads {
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
                    b.updated_at.naive_utc(),
                    b.updated_at.naive_utc(),
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

impl Drop for BeadsDb {
    fn drop(&mut self) {
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
