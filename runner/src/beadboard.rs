//! BeadBoard's two routes the dispatcher uses: `GET /api/agent-status` and
//! `POST /api/agent-dispatch`.

use serde::Deserialize;

use crate::config::BoardConfig;
use crate::decide::DispatchFailure;

/// Why BeadBoard's status could not be read.
#[derive(Debug, thiserror::Error)]
#[error("GET {url}: {reason}")]
pub struct StatusError {
    pub url: String,
    pub reason: String,
}

/// A BeadBoard client.
pub struct BeadBoard {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct AgentStatus {
    /// Absent counts as not busy, as the script's `jq '.busy // false'` did.
    #[serde(default)]
    busy: Option<bool>,
}

#[derive(Deserialize)]
struct DispatchReply {
    job_id: Option<serde_json::Value>,
}

impl BeadBoard {
    /// A client with the configured timeout per request.
    pub fn new(config: &BoardConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("beads-runner/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(BeadBoard {
            client,
            base: config.url.as_str().trim_end_matches('/').to_string(),
            token: config.token.clone(),
        })
    }

    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Whether the agent is busy. Anything but a 2xx JSON answer is an error.
    pub async fn busy(&self) -> Result<bool, StatusError> {
        let url = self.url("/api/agent-status");
        let fail = |reason: String| StatusError {
            url: url.clone(),
            reason,
        };
        let response = self
            .authorized(self.client.get(&url))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        let code = response.status();
        let body = response.text().await.map_err(|e| fail(describe(&e)))?;
        if !code.is_success() {
            return Err(fail(format!("HTTP {}: {}", code.as_u16(), excerpt(&body))));
        }
        let status: AgentStatus = serde_json::from_str(&body)
            .map_err(|e| fail(format!("unreadable answer ({e}): {}", excerpt(&body))))?;
        Ok(status.busy.unwrap_or(false))
    }

    /// Asks BeadBoard to dispatch a bead; returns the agent's job id.
    pub async fn dispatch(&self, bead_id: &str) -> Result<String, DispatchFailure> {
        let url = self.url("/api/agent-dispatch");
        let response = self
            .authorized(self.client.post(&url))
            .json(&serde_json::json!({ "taskId": bead_id }))
            .send()
            .await
            .map_err(|e| DispatchFailure::Transport(format!("POST {url}: {}", describe(&e))))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| DispatchFailure::Transport(format!("POST {url}: {}", describe(&e))))?;
        if !(200..300).contains(&status) {
            return Err(DispatchFailure::Http { status, body });
        }
        match serde_json::from_str::<DispatchReply>(&body) {
            Ok(DispatchReply {
                job_id: Some(serde_json::Value::String(job)),
            }) if !job.trim().is_empty() => Ok(job),
            Ok(DispatchReply {
                job_id: Some(serde_json::Value::Number(n)),
            }) => Ok(n.to_string()),
            _ => Err(DispatchFailure::Http { status, body }),
        }
    }
}

/// A transport error in one line, with the cause that matters (refused,
/// timed out, reset) rather than reqwest's generic wrapper text.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "unreadable response body"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_string(),
    }
}

fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}
