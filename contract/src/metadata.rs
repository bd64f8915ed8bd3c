//! Beads' `.beads/metadata.json`, the subset a server-mode client reads.
//!
//! The provider writes it into a ConfigMap; the runner reads it from the
//! mount. Fields and defaults follow `bd` (`internal/configfile`). Fields
//! this project does not use are kept out of the struct but tolerated on
//! input, because operators may mount a file `bd init` wrote.

use serde::{Deserialize, Serialize};

use crate::defaults;

/// The server-mode fields of `metadata.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_server_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_server_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_server_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dolt_server_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Why a `metadata.json` text was rejected. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("not valid JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("the top level must be a JSON object")]
    NotAnObject,
}

impl Metadata {
    /// The file the provider renders for a Dolt SQL server.
    pub fn for_server(
        host: &str,
        port: u16,
        user: &str,
        database: &str,
        project_id: Option<&str>,
        tls: Option<bool>,
    ) -> Self {
        Metadata {
            database: Some("dolt".into()),
            backend: Some("dolt".into()),
            dolt_mode: Some("server".into()),
            dolt_server_host: Some(host.into()),
            dolt_server_port: Some(port),
            dolt_server_user: Some(user.into()),
            dolt_database: Some(database.into()),
            dolt_server_tls: tls,
            project_id: project_id.map(str::to_string),
        }
    }

    /// Parses and validates the text of a `metadata.json`.
    pub fn parse(text: &str) -> Result<Self, MetadataError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| MetadataError::Json {
                line: e.line(),
                column: e.column(),
                message: strip_position(&e.to_string()),
            })?;
        if !value.is_object() {
            return Err(MetadataError::NotAnObject);
        }
        let meta: Metadata =
            serde_path_to_error::deserialize(value).map_err(|e| MetadataError::Field {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        meta.validate()?;
        Ok(meta)
    }

    /// Checks the values `bd` would refuse.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let field = |name: &str, message: String| MetadataError::Field {
            field: name.to_string(),
            message,
        };
        if let Some(mode) = &self.dolt_mode
            && mode != "server"
        {
            return Err(field(
                "dolt_mode",
                format!("is {mode:?}; the runner needs a Dolt SQL server (\"server\")"),
            ));
        }
        if let Some(host) = &self.dolt_server_host
            && host.trim().is_empty()
        {
            return Err(field("dolt_server_host", "is empty".into()));
        }
        if self.dolt_server_port == Some(0) {
            return Err(field(
                "dolt_server_port",
                "must be between 1 and 65535".into(),
            ));
        }
        if let Some(user) = &self.dolt_server_user
            && user.is_empty()
        {
            return Err(field("dolt_server_user", "is empty".into()));
        }
        if let Some(db) = &self.dolt_database {
            check_database_name(db).map_err(|m| field("dolt_database", m))?;
        }
        Ok(())
    }

    /// Host with `bd`'s default.
    pub fn host(&self) -> &str {
        self.dolt_server_host
            .as_deref()
            .unwrap_or(defaults::DOLT_HOST)
    }
    /// Port with `bd`'s default.
    pub fn port(&self) -> u16 {
        self.dolt_server_port.unwrap_or(defaults::DOLT_PORT)
    }
    /// User with `bd`'s default.
    pub fn user(&self) -> &str {
        self.dolt_server_user
            .as_deref()
            .unwrap_or(defaults::DOLT_USER)
    }
    /// Database with `bd`'s default.
    pub fn database_name(&self) -> &str {
        self.dolt_database
            .as_deref()
            .unwrap_or(defaults::DOLT_DATABASE)
    }

    /// The JSON text the provider stores in the ConfigMap (stable key order, trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and bools cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `bd`'s rule for database names: `^[a-zA-Z_][a-zA-Z0-9_\-]*$`, at most 64 characters.
pub fn check_database_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !first_ok || !rest_ok {
        return Err(format!(
            "{name:?} is not a valid database name (letters, digits, '_' and '-', not starting with a digit or '-')"
        ));
    }
    if name.len() > 64 {
        return Err(format!("{name:?} is longer than 64 characters"));
    }
    Ok(())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bd_written_file_with_extra_fields() {
        let text = r#"{"database":"dolt","backend":"dolt","dolt_mode":"server",
            "dolt_server_host":"dolt.beads-server.svc.cluster.local","dolt_server_port":3306,
            "dolt_server_user":"beads","dolt_database":"code",
            "project_id":"a8f8bae7-ce65-4145-a5db-a13d11d297da","last_bd_version":"1.0.2"}"#;
        let m = Metadata::parse(text).unwrap();
        assert_eq!(m.host(), "dolt.beads-server.svc.cluster.local");
        assert_eq!(m.port(), 3306);
        assert_eq!(m.user(), "beads");
        assert_eq!(m.database_name(), "code");
    }

    #[test]
    fn defaults_follow_bd() {
        let m = Metadata::parse("{}").unwrap();
        assert_eq!(
            (m.host(), m.port(), m.user(), m.database_name()),
            ("127.0.0.1", 3306, "root", "beads")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = Metadata::parse(r#"{"dolt_server_port":"abc"}"#).unwrap_err();
        assert!(
            matches!(&err, MetadataError::Field { field, .. } if field == "dolt_server_port"),
            "{err}"
        );
        let err = Metadata::parse(r#"{"dolt_server_port":70000}"#).unwrap_err();
        assert!(err.to_string().contains("dolt_server_port"), "{err}");
        let err = Metadata::parse(r#"{"dolt_database":"1bad;drop"}"#).unwrap_err();
        assert!(err.to_string().contains("dolt_database"), "{err}");
        let err = Metadata::parse(r#"{"dolt_mode":"embedded"}"#).unwrap_err();
        assert!(err.to_string().contains("dolt_mode"), "{err}");
        let err = Metadata::parse("[1]").unwrap_err();
        assert_eq!(err, MetadataError::NotAnObject);
        let err = Metadata::parse("{\"a\":").unwrap_err();
        assert!(matches!(err, MetadataError::Json { line: 1, .. }), "{err}");
    }

    #[test]
    fn rendered_file_round_trips() {
        let m = Metadata::for_server("dolt", 3307, "beads", "code", Some("p"), None);
        let text = m.to_json();
        assert!(!text.contains("dolt_server_tls"));
        assert_eq!(Metadata::parse(&text).unwrap(), m);
    }
}
