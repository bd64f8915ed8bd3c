//! A stub BeadBoard: `GET /api/agent-status` and `POST /api/agent-dispatch`
//! with programmable answers, recording every request.
//!
//! It speaks HTTP/1.1 over a raw socket so a test can make it misbehave the
//! way real servers do: answer slowly, cut the body, close the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One programmed answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200 {"job_id": "<id>"}`; `Job(None)` numbers jobs `job-1`, `job-2`, ...
    Job(Option<String>),
    /// `200 {"busy": <bool>}`.
    Busy(bool),
    /// Any status with a raw body and content type.
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Waits, then gives the inner answer.
    Slow(Duration, Box<Reply>),
    /// Closes the connection without answering, after reading the whole
    /// request (a reset after sending, as far as the client can tell).
    Close,
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// `status` with a JSON body of `bytes` bytes, streamed.
    Huge { status: u16, bytes: usize },
    /// Announces a longer body than it sends, then closes.
    Truncated(String),
    /// A job, or one of the failures above (500, 502, a reset after
    /// reading, 429, or a job answered after 3 s), chosen pseudo-randomly (a
    /// fixed sequence, so a run can be repeated): `fail_percent` of requests fail.
    Flaky { fail_percent: u32 },
}

impl Reply {
    /// A JSON answer with the given status.
    pub fn json(status: u16, body: &str) -> Self {
        Reply::Raw {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// A request the stub received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct Script {
    /// `(taskId, job id)` of every dispatch answered with a job.
    accepted: Vec<(String, String)>,
    /// State of the pseudo-random sequence of [`Reply::Flaky`].
    seed: u64,
    status: VecDeque<Reply>,
    dispatch: VecDeque<Reply>,
    status_default: Option<Reply>,
    dispatch_default: Option<Reply>,
    /// Answers for one `taskId`, before the queue and the default.
    per_bead: std::collections::HashMap<String, Reply>,
    requests: Vec<Request>,
    jobs: u32,
}

/// The running stub; stops when dropped.
pub struct StubBeadBoard {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl StubBeadBoard {
    /// Starts on a free loopback port: not busy, every dispatch accepted.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the stub BeadBoard")
    }

    /// Starts on the given address.
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, script).await;
                });
            }
        });
        Ok(StubBeadBoard { addr, script, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut self.script.lock().expect("stub lock"))
    }

    /// Queues answers to the next status requests.
    pub fn status_replies(&self, replies: impl IntoIterator<Item = Reply>) {
        self.with(|s| s.status.extend(replies));
    }
    /// Queues answers to the next dispatch requests.
    pub fn dispatch_replies(&self, replies: impl IntoIterator<Item = Reply>) {
        self.with(|s| s.dispatch.extend(replies));
    }
    /// Always answers dispatches of this `taskId` with `reply` (BeadBoard
    /// refusing one bead while accepting others).
    pub fn dispatch_for(&self, task_id: &str, reply: Reply) {
        self.with(|s| s.per_bead.insert(task_id.to_string(), reply));
    }
    /// Forgets the per-bead answers.
    pub fn clear_dispatch_for(&self) {
        self.with(|s| s.per_bead.clear());
    }
    /// The answer to status requests once the queue is empty.
    pub fn status_default(&self, reply: Reply) {
        self.with(|s| s.status_default = Some(reply));
    }
    /// The answer to dispatch requests once the queue is empty.
    pub fn dispatch_default(&self, reply: Reply) {
        self.with(|s| s.dispatch_default = Some(reply));
    }
    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.with(|s| s.requests.clone())
    }
    /// `(taskId, job id)` of every dispatch the stub accepted.
    pub fn accepted(&self) -> Vec<(String, String)> {
        self.with(|s| s.accepted.clone())
    }

    /// The `taskId`s of every dispatch request so far.
    pub fn dispatched_ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/api/agent-dispatch")
            .filter_map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()?
                    .get("taskId")?
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }
}

impl Drop for StubBeadBoard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, script: Arc<Mutex<Script>>) -> std::io::Result<()> {
    loop {
        let Some(request) = read_request(&mut stream).await? else {
            return Ok(());
        };
        let reply = {
            let mut s = script.lock().expect("stub lock");
            s.requests.push(request.clone());
            let reply = match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/api/agent-status") => Some(
                    s.status
                        .pop_front()
                        .or_else(|| s.status_default.clone())
                        .unwrap_or(Reply::Busy(false)),
                ),
                ("POST", "/api/agent-dispatch") => {
                    let task = serde_json::from_str::<serde_json::Value>(&request.body)
                        .ok()
                        .and_then(|v| v.get("taskId")?.as_str().map(String::from))
                        .unwrap_or_default();
                    Some(match s.per_bead.get(&task) {
                        Some(r) => r.clone(),
                        None => s
                            .dispatch
                            .pop_front()
                            .or_else(|| s.dispatch_default.clone())
                            .unwrap_or(Reply::Job(None)),
                    })
                }
                _ => None,
            };
            let reply = match reply {
                Some(Reply::Flaky { fail_percent }) => {
                    // xorshift: cheap, deterministic, good enough to mix failures in.
                    s.seed = if s.seed == 0 {
                        0x9E37_79B9_7F4A_7C15
                    } else {
                        s.seed
                    };
                    s.seed ^= s.seed << 13;
                    s.seed ^= s.seed >> 7;
                    s.seed ^= s.seed << 17;
                    let roll = (s.seed % 100) as u32;
                    if roll >= fail_percent {
                        Some(Reply::Job(None))
                    } else {
                        Some(match roll % 5 {
                            0 => Reply::json(500, "boom"),
                            1 => Reply::json(
                                502,
                                r#"{"error":"Agent service response missing job_id."}"#,
                            ),
                            2 => Reply::Close,
                            3 => Reply::json(429, r#"{"error":"slow down"}"#),
                            // Taken, answered after the client's timeout.
                            _ => Reply::Slow(
                                std::time::Duration::from_secs(3),
                                Box::new(Reply::Job(None)),
                            ),
                        })
                    }
                }
                other => other,
            };
            // A job is created when the request is taken, even if the answer
            // is slow to come (or never reaches the client).
            fn number(r: Reply, s: &mut Script) -> Reply {
                match r {
                    Reply::Job(None) => {
                        s.jobs += 1;
                        Reply::Job(Some(format!("job-{}", s.jobs)))
                    }
                    Reply::Slow(d, inner) => Reply::Slow(d, Box::new(number(*inner, s))),
                    r => r,
                }
            }
            match reply {
                Some(r) => number(r, &mut s),
                None => Reply::json(404, r#"{"error":"not found"}"#),
            }
        };
        let mut taken = &reply;
        while let Reply::Slow(_, inner) = taken {
            taken = inner;
        }
        if let Reply::Job(Some(job)) = taken {
            let task = serde_json::from_str::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|v| v.get("taskId")?.as_str().map(String::from))
                .unwrap_or_default();
            script
                .lock()
                .expect("stub lock")
                .accepted
                .push((task, job.clone()));
        }
        if !answer(&mut stream, reply).await? {
            return Ok(());
        }
    }
}

/// Writes the answer; false when the connection is to be closed.
async fn answer(stream: &mut TcpStream, mut reply: Reply) -> std::io::Result<bool> {
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let (status, content_type, body) = match reply {
        Reply::Job(job) => (
            200,
            "application/json",
            serde_json::json!({ "job_id": job }).to_string(),
        ),
        Reply::Busy(busy) => (
            200,
            "application/json",
            serde_json::json!({ "busy": busy }).to_string(),
        ),
        Reply::Raw {
            status,
            content_type,
            body,
        } => (status, content_type, body),
        Reply::Close => return Ok(false),
        Reply::Hang => {
            // Hold the connection open, answering nothing, until the client gives up.
            let mut sink = [0u8; 256];
            while stream.read(&mut sink).await? > 0 {}
            return Ok(false);
        }
        Reply::Huge { status, bytes } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {bytes}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.write_all(&chunk[..n]).await.is_err() {
                    return Ok(false); // the client stopped reading
                }
                left -= n;
            }
            return Ok(true);
        }
        Reply::Truncated(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len() + 100
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            return Ok(false);
        }
        Reply::Slow(..) | Reply::Flaky { .. } => unreachable!("resolved before answering"),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    Ok(true)
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut authorization = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Ok(Some(Request {
        method,
        path,
        authorization,
        body: String::from_utf8_lossy(&body).to_string(),
    }))
}
