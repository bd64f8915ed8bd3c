//! Forwarding: a request no fault matches goes to the real server as it
//! came (bar the credentials, which are the proxy's), and the real answer
//! streams back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Upstream;
use crate::faults::Faults;

/// What every connection of the proxy shares.
pub struct State {
    upstream: Upstream,
    client: reqwest::Client,
    /// Armed faults.
    pub faults: Faults,
    /// Cancelled when a `die` fault kills the proxy; replaced on restart.
    life: Mutex<CancellationToken>,
}

impl State {
    pub fn new(upstream: Upstream) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(&upstream.ca_pem)?;
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            // The real server's own timeouts apply; a proxy that gave up
            // first would be a fault nobody asked for.
            .timeout(Duration::from_secs(600))
            .build()?;
        Ok(State {
            upstream,
            client,
            faults: Faults::default(),
            life: Mutex::default(),
        })
    }

    /// The current life's token.
    pub fn life(&self) -> CancellationToken {
        self.life
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts a new life (at start and on restart).
    pub fn new_life(&self) -> CancellationToken {
        let life = CancellationToken::new();
        *self.life.lock().unwrap_or_else(PoisonError::into_inner) = life.clone();
        life
    }
}

pub fn router(state: Arc<State>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Headers that belong to one hop (RFC 9110 §7.6.1) or that the proxy sets.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
            | "authorization"
    )
}

async fn handle(AxumState(st): AxumState<Arc<State>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let info = crate::request_info::parse(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        &content_type,
    );
    if let Some(f) = info.as_ref().and_then(|i| st.faults.take(i)) {
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.die {
            tracing::info!(?info, "injected death");
            st.life().cancel();
            // Never answer: the connection is closed under this request.
            return std::future::pending().await;
        }
        tracing::info!(?info, status = f.status, "injected fault");
        return status_response(f.status, f.message.as_deref());
    }
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(e) => return proxy_error(format!("reading the request body: {e}")),
    };
    let url = format!(
        "{}{}",
        st.upstream.url,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut forward = st
        .client
        .request(method, &url)
        .bearer_auth(&st.upstream.token)
        .body(body);
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.send().await {
        Ok(a) => a,
        Err(e) => return proxy_error(format!("forwarding to {}: {e}", st.upstream.url)),
    };
    let mut resp = Response::builder().status(answer.status().as_u16());
    if let Some(h) = resp.headers_mut() {
        copy_headers(answer.headers(), h);
    }
    resp.body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| proxy_error(format!("building the answer: {e}")))
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name, value.clone());
        }
    }
}

/// A failure of the proxy itself: a 502 the tests can tell from a fault.
fn proxy_error(message: String) -> Response {
    tracing::error!(%message, "fault proxy");
    (
        StatusCode::BAD_GATEWAY,
        format!("beads-fault-proxy: {message}\n"),
    )
        .into_response()
}

/// The `Status` object kube-apiserver answers a failure with
/// (k8s.io/apimachinery/pkg/api/errors: the reason each code's
/// constructor sets).
fn status_response(code: u16, message: Option<&str>) -> Response {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let message = message.map_or_else(
        || {
            format!(
                "an error on the server (\"{reason}\") has prevented the request from succeeding"
            )
        },
        str::to_string,
    );
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
