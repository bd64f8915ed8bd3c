//! HTTP routing: turns requests into calls on [`crate::api::ApiServer`],
//! serves discovery, watches, Tables and the `/_sandbox/faults` admin API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{self, ApiServer, DeleteOptions, ListOptions, PatchType, WriteOptions};
use crate::discovery;
use crate::error::ApiError;
use crate::faults::{Fault, Faults, RequestInfo};
use crate::resources::{self, ResourceType};
use crate::store::EventType;
use crate::table;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The API semantics.
    pub api: Arc<ApiServer>,
    /// Armed faults.
    pub faults: Arc<Faults>,
    /// `host:port` the server is reachable at (for `/api`).
    pub address: String,
    /// Cancelled when a `die` fault kills the server; replaced by a fresh
    /// one when it is restarted.
    pub life: std::sync::Mutex<tokio_util::sync::CancellationToken>,
}

impl AppState {
    /// The token of the server's current life.
    pub fn life(&self) -> tokio_util::sync::CancellationToken {
        self.life
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The router serving everything.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(e.code, &e.to_status());
    if let Some(s) = e.details.as_ref().and_then(|d| d.retry_after_seconds)
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A parsed resource URL.
#[derive(Debug, Clone)]
struct ResourcePath {
    res: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(Value),
    ResourceList(Value),
    OpenApiV3Root,
    OpenApiV3(Value),
    Faults,
    Resource(ResourcePath),
    NotFound,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::ApiVersions,
        ["apis"] => Route::GroupList,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => discovery::openapi_v3_group_version(&rest.join("/"))
            .map_or(Route::NotFound, Route::OpenApiV3),
        ["_sandbox", "faults"] => Route::Faults,
        ["api", v] => discovery::resource_list("", v).map_or(Route::NotFound, Route::ResourceList),
        ["apis", g] => discovery::api_group(g).map_or(Route::NotFound, Route::Group),
        ["apis", g, v] => {
            discovery::resource_list(g, v).map_or(Route::NotFound, Route::ResourceList)
        }
        ["api", v, rest @ ..] => parse_resource("", v, rest),
        ["apis", g, v, rest @ ..] => parse_resource(g, v, rest),
        _ => Route::NotFound,
    }
}

fn parse_resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let found = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        match resources::lookup(group, version, plural) {
            Some(res) if res.namespaced == ns.is_some() || (ns.is_none() && name.is_none()) => {
                Route::Resource(ResourcePath {
                    res,
                    namespace: ns.map(str::to_string),
                    name: name.map(str::to_string),
                    subresource: sub.map(str::to_string),
                })
            }
            _ => Route::NotFound,
        }
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if resources::lookup(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            match tail {
                [] => found(plural, Some(ns), None, None),
                [name] => found(plural, Some(ns), Some(name), None),
                [name, sub] => found(plural, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            }
        }
        [plural] => found(plural, None, None, None),
        [plural, name] => found(plural, None, Some(name), None),
        [plural, name, sub] => found(plural, None, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

fn query_params(req: &Request<Body>) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn k8s_verb(
    method: &Method,
    rp: &ResourcePath,
    q: &[(String, String)],
    content_type: &str,
) -> &'static str {
    let item = rp.name.is_some();
    match *method {
        Method::GET if item => "get",
        Method::GET if matches!(param(q, "watch"), Some("true" | "1")) => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if PatchType::from_content_type(content_type) == Some(PatchType::Apply) => {
            "apply"
        }
        Method::PATCH => "patch",
        Method::DELETE if item => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
}

async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let q = query_params(&req);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    let body = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let route = parse_route(&path);
    let ct = header_str(&headers, header::CONTENT_TYPE);
    if let Route::Resource(rp) = &route {
        let info = RequestInfo {
            method: method.as_str().to_string(),
            verb: k8s_verb(&method, rp, &q, &ct).to_string(),
            resource: rp.res.plural.to_string(),
            namespace: rp.namespace.clone().unwrap_or_default(),
            name: rp.name.clone().unwrap_or_default(),
        };
        if let Some(f) = st.faults.take(&info) {
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
            return error_response(&ApiError::with_code(f.status, f.message));
        }
    }
    match route {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::ApiVersions => json_response(200, &discovery::api_versions(&st.address)),
        Route::GroupList => json_response(200, &discovery::api_group_list()),
        Route::Group(v) | Route::ResourceList(v) | Route::OpenApiV3(v) => json_response(200, &v),
        Route::OpenApiV3Root => json_response(200, &discovery::openapi_v3_root()),
        Route::Faults => faults_admin(&st.faults, &method, &body),
        Route::NotFound => {
            if path.starts_with("/api") {
                error_response(&ApiError::path_not_found())
            } else {
                (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
            }
        }
        Route::Resource(rp) => {
            let accept = header_str(&headers, header::ACCEPT);
            let ua = header_str(&headers, header::USER_AGENT);
            match resource(&st, &rp, &method, &q, &ct, &accept, &ua, body) {
                Ok(Handled::Reply(code, body)) => json_response(code, &body),
                Ok(Handled::Stream(resp)) => resp,
                Err(e) => error_response(&e),
            }
        }
    }
}

fn faults_admin(faults: &Faults, method: &Method, body: &Bytes) -> Response {
    match *method {
        Method::GET => json_response(200, &json!(faults.list())),
        Method::DELETE => {
            faults.clear();
            json_response(200, &json!([]))
        }
        Method::POST => {
            let parsed: Result<Vec<Fault>, _> = serde_json::from_slice::<Vec<Fault>>(body)
                .or_else(|_| serde_json::from_slice::<Fault>(body).map(|f| vec![f]));
            match parsed {
                Ok(list) => {
                    for f in list {
                        faults.add(f);
                    }
                    json_response(201, &json!(faults.list()))
                }
                Err(e) => error_response(&ApiError::bad_request(format!("invalid fault: {e}"))),
            }
        }
        _ => error_response(&ApiError::method_not_allowed()),
    }
}

enum Handled {
    Reply(u16, Value),
    Stream(Response),
}

fn dry_run(q: &[(String, String)], kind: &str) -> Result<bool, ApiError> {
    let mut dry = false;
    for (k, v) in q {
        if k == "dryRun" {
            if v != "All" {
                return Err(api::invalid_dry_run(kind, v));
            }
            dry = true;
        }
    }
    Ok(dry)
}

fn write_options(
    q: &[(String, String)],
    ua: &str,
    kind: &str,
    sub: Option<&str>,
) -> Result<WriteOptions, ApiError> {
    let force = match param(q, "force") {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "failed to parse force: strconv.ParseBool: parsing {other:?}: invalid syntax"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run: dry_run(q, kind)?,
        field_manager: param(q, "fieldManager").map(str::to_string),
        user_agent: ua.to_string(),
        force,
        subresource: sub.map(str::to_string),
    })
}

fn list_options(q: &[(String, String)]) -> ListOptions {
    ListOptions {
        label_selector: param(q, "labelSelector").map(str::to_string),
        field_selector: param(q, "fieldSelector").map(str::to_string),
        limit: param(q, "limit").and_then(|l| l.parse().ok()).unwrap_or(0),
    }
}

fn delete_options(q: &[(String, String)], body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions {
        dry_run: dry_run(q, "DeleteOptions")?,
        propagation_policy: param(q, "propagationPolicy").map(str::to_string),
        ..DeleteOptions::default()
    };
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation_policy = Some(p.to_string());
        } else if v.get("orphanDependents") == Some(&json!(true)) {
            o.propagation_policy = Some("Orphan".into());
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            for x in d {
                match x.as_str() {
                    Some("All") => o.dry_run = true,
                    other => {
                        return Err(api::invalid_dry_run("DeleteOptions", other.unwrap_or("")));
                    }
                }
            }
        }
        o.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.precondition_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(o)
}

/// Accepts JSON bodies, and protobuf bodies of the kinds kubectl's typed
/// clients create (converted to JSON).
fn json_body(ct: &str, body: Bytes) -> Result<Bytes, ApiError> {
    let base = ct.split(';').next().unwrap_or("").trim();
    match base {
        "" | "application/json" | "*/*" => Ok(body),
        crate::protobuf::CONTENT_TYPE => {
            let v = crate::protobuf::decode(&body).map_err(|e| ApiError {
                code: 415,
                reason: "UnsupportedMediaType".into(),
                message: e.to_string(),
                details: None,
            })?;
            Ok(Bytes::from(v.to_string()))
        }
        _ => Err(ApiError::unsupported_media_type(ct)),
    }
}

fn maybe_table(res: &ResourceType, accept: &str, reply: api::Reply) -> Handled {
    if !table::wants_table(accept) || reply.code >= 300 {
        return Handled::Reply(reply.code, reply.body);
    }
    let body = &reply.body;
    let (items, rv): (Vec<Value>, String) = if body.get("items").is_some() {
        (
            body["items"].as_array().cloned().unwrap_or_default(),
            body.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    } else {
        (
            vec![body.clone()],
            crate::util::meta_str(body, "resourceVersion").to_string(),
        )
    };
    Handled::Reply(200, table::table(res, &items, &rv))
}

#[allow(clippy::too_many_arguments)]
fn resource(
    st: &Arc<AppState>,
    rp: &ResourcePath,
    method: &Method,
    q: &[(String, String)],
    ct: &str,
    accept: &str,
    ua: &str,
    body: Bytes,
) -> Result<Handled, ApiError> {
    let api = &st.api;
    let res = rp.res;
    let ns = rp.namespace.clone().unwrap_or_default();
    let sub = rp.subresource.as_deref();
    let r = |reply: api::Reply| Ok(Handled::Reply(reply.code, reply.body));
    if let Some(s) = sub
        && !(s == "status" && res.has_status)
        && !(s == "scale" && res.kind == "Deployment")
    {
        return Err(ApiError::path_not_found());
    }
    if let (Some("scale"), Some(name)) = (sub, &rp.name) {
        return match method.clone() {
            Method::GET => r(api.get_scale(res, &ns, name)?),
            Method::PUT => {
                let body = json_body(ct, body)?;
                r(api.write_scale(
                    res,
                    &ns,
                    name,
                    None,
                    &body,
                    &write_options(q, ua, "UpdateOptions", sub)?,
                )?)
            }
            Method::PATCH => {
                let ptype = PatchType::from_content_type(ct)
                    .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
                let o = write_options(q, ua, "PatchOptions", sub)?;
                r(api.write_scale(res, &ns, name, Some(ptype), &body, &o)?)
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    match (&rp.name, method.clone()) {
        (None, Method::GET) => {
            let lo = list_options(q);
            if matches!(param(q, "watch"), Some("true" | "1")) {
                return watch(st, res, rp.namespace.clone(), lo, q, accept);
            }
            Ok(maybe_table(
                res,
                accept,
                api.list(res, rp.namespace.as_deref(), &lo)?,
            ))
        }
        (None, Method::POST) => {
            let body = json_body(ct, body)?;
            if !res.namespaced || rp.namespace.is_some() {
                r(api.create(
                    res,
                    &ns,
                    &body,
                    &write_options(q, ua, "CreateOptions", None)?,
                )?)
            } else {
                Err(ApiError::method_not_allowed())
            }
        }
        (None, Method::DELETE) => {
            let o = delete_options(q, &body)?;
            r(api.delete_collection(res, rp.namespace.as_deref(), &list_options(q), &o)?)
        }
        (Some(name), Method::GET) => Ok(maybe_table(res, accept, api.get(res, &ns, name)?)),
        (Some(name), Method::PUT) => {
            let body = json_body(ct, body)?;
            r(api.update(
                res,
                &ns,
                name,
                &body,
                &write_options(q, ua, "UpdateOptions", sub)?,
            )?)
        }
        (Some(name), Method::PATCH) => {
            let ptype = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let o = write_options(q, ua, "PatchOptions", sub)?;
            r(api.patch(res, &ns, name, ptype, &body, &o)?)
        }
        (Some(name), Method::DELETE) => {
            if sub.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let o = delete_options(q, &body)?;
            r(api.delete(res, &ns, name, &o)?)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// A watch: the selected current objects (or the events after the given
/// resourceVersion), then live events, as newline-delimited JSON.
fn watch(
    st: &Arc<AppState>,
    res: &'static ResourceType,
    ns: Option<String>,
    lo: ListOptions,
    q: &[(String, String)],
    accept: &str,
) -> Result<Handled, ApiError> {
    let want_table = table::wants_table(accept);
    let rv = param(q, "resourceVersion").unwrap_or("").to_string();
    let timeout = param(q, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let ls = match lo.label_selector.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(crate::selector::LabelSelector::parse(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let fs = match lo.field_selector.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            crate::selector::FieldSelector::parse(s, &["metadata.name", "metadata.namespace"])
                .map_err(ApiError::bad_request)?,
        ),
        None => None,
    };
    let qualified = res.qualified();
    let matches = move |resource: &str, namespace: &str, obj: &Value| {
        resource == qualified
            && ns.as_deref().is_none_or(|n| n == namespace)
            && ls.as_ref().is_none_or(|s| s.matches(obj))
            && fs.as_ref().is_none_or(|s| s.matches(obj))
    };
    let (initial, mut sub): (Vec<(EventType, Value)>, _) = {
        let store = st.api.lock();
        let sub = store.subscribe();
        let initial = if rv.is_empty() || rv == "0" {
            store
                .list(res, None)
                .into_iter()
                .filter(|o| matches(&res.qualified(), crate::util::meta_str(o, "namespace"), o))
                .map(|o| (EventType::Added, o.clone()))
                .collect()
        } else {
            let since: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            match store.events_since(since) {
                Some(evs) => evs
                    .into_iter()
                    .filter(|e| matches(&e.resource, &e.namespace, &e.object))
                    .map(|e| (e.kind, e.object))
                    .collect(),
                None => {
                    let gone = ApiError {
                        code: 410,
                        reason: "Expired".into(),
                        message: format!(
                            "too old resource version: {since} ({})",
                            store.resource_version()
                        ),
                        details: None,
                    };
                    vec![(EventType::Deleted, json!({"__error": gone.to_status()}))]
                }
            }
        };
        (initial, sub)
    };
    let line = move |kind: EventType, obj: Value| -> Bytes {
        let (ty, object) = match obj.get("__error") {
            Some(status) => ("ERROR", status.clone()),
            None if want_table => (
                kind.as_str(),
                table::table(res, std::slice::from_ref(&obj), ""),
            ),
            None => (kind.as_str(), obj),
        };
        Bytes::from(format!("{}\n", json!({"type": ty, "object": object})))
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for (k, o) in initial {
            if tx.send(line(k, o)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tx.closed() => break,
                ev = sub.recv() => match ev {
                    Ok(e) => {
                        if matches(&e.resource, &e.namespace, &e.object)
                            && tx.send(line(e.kind, e.object)).await.is_err()
                        {
                            break;
                        }
                    }
                    Err(_) => break,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Handled::Stream(resp))
}
