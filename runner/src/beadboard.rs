//! BeadBoard's two routes the dispatcher uses: `GET /api/agent-status` and
//! `POST /api/agent-dispatch`, and what each answer means for the bead.
//!
//! Answers are read up to [`defaults::MAX_RESPONSE_BODY`] bytes; URLs in
//! messages never show credentials.

use beads_contract::{defaults, urls};
use serde::Deserialize;

use crate::config::BoardConfig;
use crate::decide::Answer;

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
    base: urls::Url,
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

/// A body read up to the cap.
struct Body {
    text: String,
    /// The answer was longer than the cap (or cut by the connection).
    complete: bool,
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
            base: config.url.clone(),
            token: config.token.clone(),
        })
    }

    /// The route's URL, credentials included (for the request only).
    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base.as_str().trim_end_matches('/'))
    }

    /// The route's URL as shown in notes and logs.
    fn shown(&self, route: &str) -> String {
        format!("{}{route}", urls::redact(&self.base).trim_end_matches('/'))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Whether the agent is busy. Anything but a 2xx JSON answer is an error.
    pub async fn busy(&self) -> Result<bool, StatusError> {
        let fail = |reason: String| StatusError {
            url: self.shown("/api/agent-status"),
            reason,
        };
        let response = self
            .authorized(self.client.get(self.url("/api/agent-status")))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        let code = response.status();
        let body = read_capped(response)
            .await
            .map_err(|e| fail(describe(&e)))?;
        if !code.is_success() {
            return Err(fail(format!(
                "HTTP {}: {}",
                code.as_u16(),
                excerpt(&body.text)
            )));
        }
        let status: AgentStatus = serde_json::from_str(&body.text)
            .map_err(|e| fail(format!("unreadable answer ({e}): {}", excerpt(&body.text))))?;
        Ok(status.busy.unwrap_or(false))
    }

    /// Asks BeadBoard to dispatch a bead, and classifies the answer.
    pub async fn dispatch(&self, bead_id: &str) -> Answer {
        let shown = self.shown("/api/agent-dispatch");
        let response = match self
            .authorized(self.client.post(self.url("/api/agent-dispatch")))
            .json(&serde_json::json!({ "taskId": bead_id }))
            .send()
            .await
        {
            Ok(r) => r,
            // Only a failed connect proves the request never left.
            Err(e) if e.is_connect() => {
                return Answer::NotSent(format!("POST {shown}: {}", describe(&e)));
            }
            Err(e) => return Answer::Unknown(format!("POST {shown}: {}", describe(&e))),
        };
        let status = response.status().as_u16();
        let body = match read_capped(response).await {
            Ok(b) => b,
            Err(e) if (200..300).contains(&status) => {
                return Answer::Unknown(format!(
                    "POST {shown}: HTTP {status} with {}",
                    describe(&e)
                ));
            }
            Err(e) => Body {
                text: describe(&e),
                complete: false,
            },
        };
        classify(status, &body.text, body.complete)
    }
}

/// What one BeadBoard answer means (BeadBoard's route: shared/docs
/// services-and-infra.md §1.2).
pub fn classify(status: u16, body: &str, complete: bool) -> Answer {
    match status {
        200..=299 => {
            if !complete {
                return Answer::Unknown(format!(
                    "HTTP {status} with an answer longer than {} bytes",
                    defaults::MAX_RESPONSE_BODY
                ));
            }
            match serde_json::from_str::<DispatchReply>(body) {
                Ok(DispatchReply {
                    job_id: Some(serde_json::Value::String(job)),
                }) if !job.trim().is_empty() => Answer::Accepted(job),
                Ok(DispatchReply {
                    job_id: Some(serde_json::Value::Number(n)),
                }) => Answer::Accepted(n.to_string()),
                Ok(_) => {
                    Answer::Unknown(format!("HTTP {status} without a job_id: {}", excerpt(body)))
                }
                Err(_) => Answer::Unknown(format!(
                    "HTTP {status} with an unreadable answer: {}",
                    excerpt(body)
                )),
            }
        }
        400 => Answer::Refused {
            status,
            body: body.to_string(),
        },
        _ => Answer::Transient {
            status,
            body: body.to_string(),
        },
    }
}

/// Reads at most [`defaults::MAX_RESPONSE_BODY`] bytes of the body.
async fn read_capped(mut response: reqwest::Response) -> Result<Body, reqwest::Error> {
    let mut bytes = Vec::new();
    let mut complete = true;
    while let Some(chunk) = response.chunk().await? {
        let room = defaults::MAX_RESPONSE_BODY - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            complete = false;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        complete,
    })
}

/// A transport error in one line, with the cause that matters (refused,
/// timed out, reset) rather than reqwest's generic wrapper text. The causes
/// never include the URL.
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
        Some(root) => format!("{kind}: {}", urls::redact_text(root)),
        None => kind.to_string(),
    }
}

fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_is_classified() {
        assert_eq!(
            classify(200, r#"{"job_id":"ab12"}"#, true),
            Answer::Accepted("ab12".into())
        );
        assert_eq!(
            classify(200, r#"{"job_id":7}"#, true),
            Answer::Accepted("7".into())
        );
        for (status, body, complete) in [
            (200, r#"{"status":"queued"}"#, true),
            (200, r#"{"job_id":""}"#, true),
            (200, "<html>", true),
            (202, r#"{"job_id":"ab12"}"#, false),
        ] {
            assert!(
                matches!(classify(status, body, complete), Answer::Unknown(_)),
                "{status} {body}"
            );
        }
        assert!(matches!(
            classify(400, "x", true),
            Answer::Refused { status: 400, .. }
        ));
        for status in [409, 429, 500, 502, 503, 504, 401, 404] {
            assert!(
                matches!(classify(status, "x", true), Answer::Transient { .. }),
                "{status}"
            );
        }
    }
}
