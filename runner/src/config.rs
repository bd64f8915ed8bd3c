//! Turns flags, environment and `metadata.json` into one checked [`Config`].
//! Every failure here means "refuse to run" (exit 2), and its message names
//! the flag, variable, file or field at fault.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use beads_contract::urls::{self, Url};
use beads_contract::{Metadata, defaults, env, metadata, parse_duration};

use crate::cli::{CommonArgs, LogFormat};

/// Why the runner refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read metadata file {path}: {source}")]
    MetadataUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata file {path}: {source}")]
    MetadataInvalid {
        path: String,
        source: beads_contract::MetadataError,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{what} is required")]
    Missing { what: String },
}

fn invalid(what: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: what.into(),
        message: message.into(),
    }
}

/// How to reach the beads database.
#[derive(Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// From `BEADS_DOLT_PASSWORD` only; never printed (see the `Debug` impl).
    pub password: Option<String>,
    pub database: String,
    pub tls: bool,
    /// `project_id` from metadata.json, checked against the database's `_project_id`.
    pub project_id: Option<String>,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}{}",
            self.user,
            self.host,
            self.port,
            self.database,
            if self.tls { " (tls)" } else { "" }
        )
    }
}

/// How to reach BeadBoard.
#[derive(Clone)]
pub struct BoardConfig {
    pub url: Url,
    /// From `BEADBOARD_TOKEN`; never printed.
    pub token: Option<String>,
    pub timeout: Duration,
}

impl fmt::Debug for BoardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoardConfig")
            .field("url", &urls::redact(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Everything a tick needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbConfig,
    /// Required by `dispatch` and `run`; `reap` and `check` do without.
    pub board: Option<BoardConfig>,
    pub actor: String,
    pub assignee: String,
    pub stale_after: Duration,
    pub claim_timeout: Duration,
    pub max_in_flight: u32,
    pub log_format: LogFormat,
    /// Dolt commit author, `name <email>`, as `bd` builds it.
    pub commit_author: String,
    /// Whole-tick deadline.
    pub tick_deadline: Duration,
    /// First runner-wide pause after a transient BeadBoard failure.
    pub retry_delay: Duration,
}

/// Settings of `beads-runner run`.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub interval: Duration,
    pub reap_interval: Duration,
    pub listen: SocketAddr,
    /// Failed or overdue ticks in a row after which /healthz answers 503.
    pub unhealthy_after: u32,
}

/// A source of environment variables, so tests need not touch the process env.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl Env for &[(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn duration_arg(
    value: Option<&str>,
    flag: &str,
    var: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let what = || format!("--{flag} / {var}");
    let d = match value {
        None => default,
        Some(text) => parse_duration(text).map_err(|e| invalid(what(), e.to_string()))?,
    };
    // Timers and date arithmetic overflow long before u64 seconds do.
    if d > defaults::MAX_DURATION {
        return Err(invalid(
            what(),
            format!(
                "is too large (at most {})",
                beads_contract::format_duration(defaults::MAX_DURATION)
            ),
        ));
    }
    Ok(d)
}

/// Builds the configuration. `needs_board` is true for `dispatch` and `run`.
pub fn resolve(
    args: &CommonArgs,
    env_vars: &dyn Env,
    default_actor: &str,
    needs_board: bool,
) -> Result<Config, ConfigError> {
    let path = args
        .metadata
        .clone()
        .unwrap_or_else(|| defaults::METADATA_PATH.to_string());
    let text =
        std::fs::read_to_string(&path).map_err(|source| ConfigError::MetadataUnreadable {
            path: path.clone(),
            source,
        })?;
    let meta = Metadata::parse(&text).map_err(|source| ConfigError::MetadataInvalid {
        path: path.clone(),
        source,
    })?;
    let db = db_config(&meta, env_vars)?;

    let board = match args.beadboard_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => Some(BoardConfig {
            url: urls::parse_http_url(url).map_err(|e| {
                invalid(
                    format!("--beadboard-url / {}", env::BEADBOARD_URL),
                    e.to_string(),
                )
            })?,
            token: env_vars
                .var(env::BEADBOARD_TOKEN)
                .filter(|t| !t.trim().is_empty()),
            timeout: duration_arg(
                args.http_timeout.as_deref(),
                "http-timeout",
                env::HTTP_TIMEOUT,
                defaults::HTTP_TIMEOUT,
            )?,
        }),
        _ if needs_board => {
            return Err(ConfigError::Missing {
                what: format!("--beadboard-url / {}", env::BEADBOARD_URL),
            });
        }
        _ => None,
    };

    let stale_after = duration_arg(
        args.stale_after.as_deref(),
        "stale-after",
        env::REAP_STALE_AFTER,
        defaults::STALE_AFTER,
    )?;
    if stale_after < Duration::from_secs(60) {
        return Err(invalid(
            format!("--stale-after / {}", env::REAP_STALE_AFTER),
            "must be at least 1m (the reaper counts whole minutes)",
        ));
    }
    let claim_timeout = duration_arg(
        args.claim_timeout.as_deref(),
        "claim-timeout",
        env::CLAIM_TIMEOUT,
        defaults::CLAIM_TIMEOUT,
    )?;
    let max_in_flight = match args.max_in_flight.as_deref() {
        None => defaults::MAX_IN_FLIGHT,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(invalid(
                    format!("--max-in-flight / {}", env::MAX_IN_FLIGHT),
                    format!("{text:?} is not a whole number of at least 1"),
                ));
            }
        },
    };
    let assignee = non_empty(args.assignee.as_deref(), "--assignee", env::AGENT_ASSIGNEE)?
        .unwrap_or_else(|| defaults::ASSIGNEE.to_string());
    let actor = non_empty(args.actor.as_deref(), "--actor", env::ACTOR)?
        .unwrap_or_else(|| default_actor.to_string());
    let name = env_vars
        .var(env::GIT_AUTHOR_NAME)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| defaults::COMMIT_AUTHOR_NAME.to_string());
    let email = env_vars
        .var(env::GIT_AUTHOR_EMAIL)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| defaults::COMMIT_AUTHOR_EMAIL.to_string());

    let tick_deadline = duration_arg(
        args.tick_deadline.as_deref(),
        "tick-deadline",
        env::TICK_DEADLINE,
        defaults::TICK_DEADLINE,
    )?;
    let retry_delay = duration_arg(
        args.retry_delay.as_deref(),
        "retry-delay",
        env::RETRY_DELAY,
        defaults::RETRY_DELAY,
    )?;
    if let Some(b) = &board
        && b.token.is_some()
        && b.url.scheme() == "http"
        && !urls::is_loopback(&b.url)
    {
        tracing::warn!(
            url = %urls::redact(&b.url),
            "{} is sent over plain http to a host that is not loopback; BeadBoard itself checks no token, only a proxy in front of it does, and anyone on the path can read it",
            env::BEADBOARD_TOKEN
        );
    }

    Ok(Config {
        tick_deadline,
        retry_delay,
        db,
        board,
        actor,
        assignee,
        stale_after,
        claim_timeout,
        max_in_flight,
        log_format: args.log_format,
        commit_author: format!("{name} <{email}>"),
    })
}

fn non_empty(value: Option<&str>, flag: &str, var: &str) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Err(invalid(format!("{flag} / {var}"), "is empty")),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// Connection settings with `bd`'s precedence: environment over metadata.json over defaults.
fn db_config(meta: &Metadata, env_vars: &dyn Env) -> Result<DbConfig, ConfigError> {
    let host = match env_vars.var(env::DOLT_SERVER_HOST) {
        Some(h) if h.trim().is_empty() => return Err(invalid(env::DOLT_SERVER_HOST, "is empty")),
        Some(h) => h.trim().to_string(),
        None => meta.host().to_string(),
    };
    let port = match env_vars.var(env::DOLT_SERVER_PORT) {
        Some(p) => match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(invalid(
                    env::DOLT_SERVER_PORT,
                    format!("{p:?} is not a port number (1-65535)"),
                ));
            }
        },
        None => meta.port(),
    };
    let user = match env_vars.var(env::DOLT_SERVER_USER) {
        Some(u) if u.is_empty() => return Err(invalid(env::DOLT_SERVER_USER, "is empty")),
        Some(u) => u,
        None => meta.user().to_string(),
    };
    let database = match env_vars.var(env::DOLT_SERVER_DATABASE) {
        Some(d) => {
            metadata::check_database_name(&d).map_err(|m| invalid(env::DOLT_SERVER_DATABASE, m))?;
            d
        }
        None => meta.database_name().to_string(),
    };
    let tls = match env_vars.var(env::DOLT_SERVER_TLS) {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" | "" => false,
            _ => {
                return Err(invalid(
                    env::DOLT_SERVER_TLS,
                    format!("{v:?} is not one of 1, true, 0, false"),
                ));
            }
        },
        None => meta.dolt_server_tls.unwrap_or(false),
    };
    Ok(DbConfig {
        host,
        port,
        user,
        password: env_vars.var(env::DOLT_PASSWORD).filter(|p| !p.is_empty()),
        database,
        tls,
        project_id: meta.project_id.clone().filter(|p| !p.is_empty()),
    })
}

/// Settings of `run`.
pub fn resolve_run(
    interval: Option<&str>,
    reap_interval: Option<&str>,
    listen: Option<&str>,
    unhealthy_after: Option<&str>,
) -> Result<RunConfig, ConfigError> {
    let listen_text = listen.unwrap_or(defaults::LISTEN);
    let unhealthy_after = match unhealthy_after {
        None => defaults::UNHEALTHY_AFTER,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(invalid(
                    format!("--unhealthy-after / {}", env::UNHEALTHY_AFTER),
                    format!("{text:?} is not a whole number of at least 1"),
                ));
            }
        },
    };
    Ok(RunConfig {
        unhealthy_after,
        interval: duration_arg(
            interval,
            "interval",
            env::RUN_INTERVAL,
            defaults::RUN_INTERVAL,
        )?,
        reap_interval: duration_arg(
            reap_interval,
            "reap-interval",
            env::REAP_INTERVAL,
            defaults::REAP_INTERVAL,
        )?,
        listen: listen_text.parse().map_err(|_| {
            invalid(
                format!("--listen / {}", env::LISTEN),
                format!("{listen_text:?} is not an address like 0.0.0.0:9090"),
            )
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str], metadata_text: &str) -> (tempfile::TempDir, CommonArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.json");
        std::fs::write(&path, metadata_text).unwrap();
        let mut argv = vec!["beads-runner", "--metadata", path.to_str().unwrap()];
        argv.extend_from_slice(extra);
        argv.push("check");
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        (dir, cli.common)
    }

    const META: &str = r#"{"dolt_mode":"server","dolt_server_host":"dolt","dolt_server_port":3307,
        "dolt_server_user":"beads","dolt_database":"code","project_id":"p1"}"#;

    #[test]
    fn environment_overrides_metadata() {
        let (_d, a) = args(&[], META);
        let c = resolve(
            &a,
            &[
                ("BEADS_DOLT_SERVER_PORT", "4000"),
                ("BEADS_DOLT_PASSWORD", "s3cret"),
            ],
            "x",
            false,
        )
        .unwrap();
        assert_eq!(
            (c.db.host.as_str(), c.db.port, c.db.user.as_str()),
            ("dolt", 4000, "beads")
        );
        assert_eq!(c.db.password.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.commit_author, "beads <beads@local>");
        assert_eq!(c.assignee, "agent");
        assert_eq!(c.actor, "x");
    }

    #[test]
    fn host_is_trimmed_and_url_credentials_redacted() {
        let (_d, a) = args(&["--beadboard-url", "http://u:secret@board:3000"], META);
        let c = resolve(
            &a,
            &[("BEADS_DOLT_SERVER_HOST", " dolt.svc \n")],
            "x",
            false,
        )
        .unwrap();
        assert_eq!(c.db.host, "dolt.svc");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn overflowing_durations_are_refused() {
        let (_d, a) = args(&["--claim-timeout", "5124095576030431h"], META);
        let err = resolve(&a, &NO_VARS, "x", false).unwrap_err().to_string();
        assert!(
            err.contains("--claim-timeout") && err.contains("too large"),
            "{err}"
        );
        let err = resolve_run(Some("5124095576030431h"), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--interval"), "{err}");
        assert!(resolve_run(None, None, None, Some("0")).is_err());
    }

    #[test]
    fn errors_name_the_fault() {
        struct Case {
            flags: &'static [&'static str],
            vars: &'static [(&'static str, &'static str)],
            names: &'static str,
        }
        let cases = [
            Case {
                flags: &["--stale-after", "30"],
                vars: &[],
                names: "--stale-after / BEADS_REAP_STALE_AFTER",
            },
            Case {
                flags: &["--max-in-flight", "0"],
                vars: &[],
                names: "--max-in-flight / BEADS_MAX_IN_FLIGHT",
            },
            Case {
                flags: &["--beadboard-url", "ftp://x"],
                vars: &[],
                names: "--beadboard-url / BEADBOARD_URL",
            },
            Case {
                flags: &[],
                vars: &[("BEADS_DOLT_SERVER_PORT", "http")],
                names: "BEADS_DOLT_SERVER_PORT",
            },
            Case {
                flags: &[],
                vars: &[("BEADS_DOLT_SERVER_TLS", "yes")],
                names: "BEADS_DOLT_SERVER_TLS",
            },
            Case {
                flags: &[],
                vars: &[("BEADS_DOLT_SERVER_DATABASE", "a;b")],
                names: "BEADS_DOLT_SERVER_DATABASE",
            },
            Case {
                flags: &["--actor", " "],
                vars: &[],
                names: "--actor / BEADS_ACTOR",
            },
        ];
        for case in cases {
            let (_d, a) = args(case.flags, META);
            let err = resolve(&a, &case.vars, "x", false).unwrap_err().to_string();
            assert!(
                err.contains(case.names),
                "{err:?} should name {}",
                case.names
            );
        }
    }

    const NO_VARS: [(&str, &str); 0] = [];

    #[test]
    fn dispatch_needs_beadboard_url() {
        let (_d, a) = args(&[], META);
        let err = resolve(&a, &NO_VARS, "x", true).unwrap_err().to_string();
        assert!(err.contains("BEADBOARD_URL"), "{err}");
    }

    #[test]
    fn bad_metadata_names_file_and_field() {
        let (d, a) = args(&[], r#"{"dolt_server_port": "x"}"#);
        let err = resolve(&a, &NO_VARS, "x", false).unwrap_err().to_string();
        assert!(
            err.contains("metadata.json") && err.contains("dolt_server_port"),
            "{err}"
        );
        drop(d);
        let err = resolve(&a, &NO_VARS, "x", false).unwrap_err().to_string();
        assert!(err.contains("cannot read metadata file"), "{err}");
    }
}
