//! Decoding of `application/vnd.kubernetes.protobuf` request bodies, which
//! kubectl's typed clients send (`kubectl create namespace|configmap|secret|
//! cronjob|deployment`). Every kind the sandbox serves is known, with every
//! field of every message reachable from it (`schema.rs`, generated from
//! k8s-pb's build of k8s.io/api's generated.proto). Responses are always JSON
//! (kubectl accepts JSON as a fallback).
//!
//! The JSON is what Go's `encoding/json` would write for the decoded object:
//! go-to-protobuf writes a non-pointer field always and a pointer field only
//! when set, so nested messages and ints/bools are kept as sent (a pointer
//! set to 0 or false means something), except the few non-pointer ints and
//! bools whose zero `omitempty` drops; empty strings are dropped (Go's
//! "unset"). Unknown field numbers are skipped, as the apiserver's protobuf
//! decoding does.

use base64::Engine as _;
use serde_json::{Map, Value, json};

mod schema;

/// The protobuf content type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\x00";

/// A body that cannot be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DecodeError(String);

/// How one field's value reads and shows in JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// A non-pointer Go int: 0 is left out, as `omitempty` does.
    IntOmitZero,
    Bool,
    /// A non-pointer Go bool: false is left out.
    BoolOmitZero,
    /// `metav1.Time`: seconds and nanos, RFC 3339 in JSON; empty is null.
    Time,
    StrList,
    IntList,
    MapStr,
    MapBytes,
    /// `map<string, resource.Quantity>`.
    MapQuantity,
    Msg(&'static &'static [Field]),
    List(&'static &'static [Field]),
    /// A Go struct embedded with `json:",inline"`: its fields join the parent.
    Inline(&'static &'static [Field]),
    /// `intstr.IntOrString`: a number or a string in JSON.
    IntOrString,
    /// `resource.Quantity`: a string in JSON.
    Quantity,
    /// `runtime.RawExtension` / `FieldsV1`: JSON bytes.
    RawJson,
}

type Field = (u32, &'static str, Kind);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| DecodeError("truncated varint".into()))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long".into()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len =
            usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow".into()))?;
        let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| DecodeError("truncated field".into()))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// Reads one field: (number, wire type, varint value or bytes).
    fn field(&mut self) -> Result<(u32, Wire<'a>), DecodeError> {
        let key = self.varint()?;
        let num = u32::try_from(key >> 3).map_err(|_| DecodeError("bad field number".into()))?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Wire::Other
            }
            2 => Wire::Bytes(self.bytes()?),
            5 => {
                self.skip(4)?;
                Wire::Other
            }
            t => return Err(DecodeError(format!("unsupported wire type {t}"))),
        };
        Ok((num, wire))
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.pos + n > self.buf.len() {
            return Err(DecodeError("truncated fixed field".into()));
        }
        self.pos += n;
        Ok(())
    }
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError("invalid UTF-8 in string field".into()))
}

fn map_entry(b: &[u8]) -> Result<(String, &[u8]), DecodeError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), &[][..]);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(x)) => k = utf8(x)?,
            (2, Wire::Bytes(x)) => v = x,
            _ => {}
        }
    }
    Ok((k, v))
}

/// `metav1.Time`'s Unmarshal: no bytes is the zero time (null in JSON).
fn time(b: &[u8]) -> Result<Value, DecodeError> {
    if b.is_empty() {
        return Ok(Value::Null);
    }
    let mut r = Reader::new(b);
    let mut secs: i64 = 0;
    while !r.done() {
        if let (1, Wire::Varint(v)) = r.field()? {
            secs = v as i64;
        }
    }
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .ok_or_else(|| DecodeError(format!("time {secs} is out of range")))
}

fn quantity(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let mut s = String::new();
    while !r.done() {
        if let (1, Wire::Bytes(x)) = r.field()? {
            s = utf8(x)?;
        }
    }
    Ok(json!(s))
}

/// `intstr.IntOrString`: type 0 is `intVal`, type 1 `strVal`.
fn int_or_string(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let (mut ty, mut int, mut string) = (0u64, 0i64, String::new());
    while !r.done() {
        match r.field()? {
            (1, Wire::Varint(v)) => ty = v,
            (2, Wire::Varint(v)) => int = i64::from(v as i32),
            (3, Wire::Bytes(x)) => string = utf8(x)?,
            _ => {}
        }
    }
    Ok(if ty == 1 { json!(string) } else { json!(int) })
}

fn raw_json(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let mut raw = &[][..];
    while !r.done() {
        if let (1, Wire::Bytes(x)) = r.field()? {
            raw = x;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| DecodeError(format!("embedded JSON: {e}")))
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    if let Some(list) = out
        .entry(name.to_string())
        .or_insert_with(|| json!([]))
        .as_array_mut()
    {
        list.push(v);
    }
}

fn message(b: &[u8], schema: &[Field], path: &str) -> Result<Value, DecodeError> {
    let mut out = Map::new();
    message_into(b, schema, path, &mut out)?;
    Ok(Value::Object(out))
}

fn message_into(
    b: &[u8],
    schema: &[Field],
    path: &str,
    out: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (num, wire) = r.field()?;
        // Unknown field numbers are skipped, as gogo-protobuf's Unmarshal does.
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            continue;
        };
        let here = || format!("{path}.{name}").trim_start_matches('.').to_string();
        let wrong = || DecodeError(format!("{}: unexpected protobuf wire type", here()));
        match (*kind, wire) {
            (Kind::Str, Wire::Bytes(x)) => {
                let s = utf8(x)?;
                if !s.is_empty() {
                    out.insert((*name).into(), json!(s));
                }
            }
            (Kind::Int, Wire::Varint(v)) => {
                out.insert((*name).into(), json!(v as i64));
            }
            (Kind::IntOmitZero, Wire::Varint(v)) => {
                if v != 0 {
                    out.insert((*name).into(), json!(v as i64));
                }
            }
            (Kind::Bool, Wire::Varint(v)) => {
                out.insert((*name).into(), json!(v != 0));
            }
            (Kind::BoolOmitZero, Wire::Varint(v)) => {
                if v != 0 {
                    out.insert((*name).into(), json!(true));
                }
            }
            (Kind::Time, Wire::Bytes(x)) => {
                let t = time(x)?;
                if !t.is_null() {
                    out.insert((*name).into(), t);
                }
            }
            (Kind::StrList, Wire::Bytes(x)) => push(out, name, json!(utf8(x)?)),
            (Kind::IntList, Wire::Varint(v)) => push(out, name, json!(v as i64)),
            (Kind::IntList, Wire::Bytes(x)) => {
                // Packed encoding, which proto2 readers must accept too.
                let mut p = Reader::new(x);
                while !p.done() {
                    push(out, name, json!(p.varint()? as i64));
                }
            }
            (Kind::MapStr | Kind::MapBytes | Kind::MapQuantity, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let v = match kind {
                    Kind::MapStr => json!(utf8(v)?),
                    Kind::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    _ => quantity(v)?,
                };
                if let Some(m) = out
                    .entry((*name).to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                {
                    m.insert(k, v);
                }
            }
            (Kind::Msg(fields), Wire::Bytes(x)) => {
                out.insert((*name).into(), message(x, fields, &here())?);
            }
            (Kind::List(fields), Wire::Bytes(x)) => {
                let v = message(x, fields, &format!("{}[]", here()))?;
                push(out, name, v);
            }
            (Kind::Inline(fields), Wire::Bytes(x)) => message_into(x, fields, path, out)?,
            (Kind::IntOrString, Wire::Bytes(x)) => {
                out.insert((*name).into(), int_or_string(x)?);
            }
            (Kind::Quantity, Wire::Bytes(x)) => {
                out.insert((*name).into(), quantity(x)?);
            }
            (Kind::RawJson, Wire::Bytes(x)) => {
                let v = raw_json(x)?;
                if !v.is_null() {
                    out.insert((*name).into(), v);
                }
            }
            _ => return Err(wrong()),
        }
    }
    Ok(())
}

/// The message table of a kind the sandbox serves.
fn schema_of(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => schema::CORE_V1_NAMESPACE,
        ("v1", "ConfigMap") => schema::CORE_V1_CONFIG_MAP,
        ("v1", "Secret") => schema::CORE_V1_SECRET,
        ("batch/v1", "CronJob") => schema::BATCH_V1_CRON_JOB,
        ("apps/v1", "Deployment") => schema::APPS_V1_DEPLOYMENT,
        _ => return None,
    })
}

/// Decodes a protobuf-encoded object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| DecodeError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into()))?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while !t.done() {
                    match t.field()? {
                        (1, Wire::Bytes(x)) => api_version = utf8(x)?,
                        (2, Wire::Bytes(x)) => kind = utf8(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let schema = schema_of(&api_version, &kind).ok_or_else(|| {
        DecodeError(format!(
            "protobuf bodies of {api_version}/{kind} are not supported by the sandbox; send JSON"
        ))
    })?;
    let mut full = Map::new();
    full.insert("apiVersion".into(), json!(api_version));
    full.insert("kind".into(), json!(kind));
    message_into(raw, schema, "", &mut full)?;
    Ok(Value::Object(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_namespace() {
        let meta = [field(1, b"foo"), field(2, b"")].concat();
        let ns = [field(1, &meta), field(2, &[]), field(3, &[])].concat();
        let tm = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), field(1, &tm), field(2, &ns)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"foo"},"spec":{},"status":{}})
        );
    }

    /// Wraps an encoded object the way kubectl does (`runtime.Unknown`).
    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        use prost::Message as _;
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    /// A Deployment encoded by k8s-pb (prost), not by this module's tables:
    /// pointers set to zero, an empty `emptyDir`, int-or-string, quantities.
    #[test]
    fn decodes_what_an_independent_encoder_wrote() {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::api::resource::Quantity;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        use prost::Message as _;
        let labels = [("app".to_string(), "web".to_string())].into();
        let dep = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                namespace: Some(String::new()),
                generation: Some(0),
                creation_timestamp: Some(meta::Time::default()),
                labels: [("tier".to_string(), "front".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                selector: Some(meta::LabelSelector {
                    match_labels: labels,
                    ..Default::default()
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(0),
                            str_val: Some(String::new()),
                        }),
                        max_surge: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                    }),
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta::default()),
                    spec: Some(core::PodSpec {
                        host_network: Some(false),
                        termination_grace_period_seconds: Some(0),
                        volumes: vec![core::Volume {
                            name: Some("scratch".into()),
                            volume_source: Some(core::VolumeSource {
                                empty_dir: Some(core::EmptyDirVolumeSource::default()),
                                ..Default::default()
                            }),
                        }],
                        containers: vec![core::Container {
                            name: Some("web".into()),
                            image: Some("nginx:1.27".into()),
                            working_dir: Some(String::new()),
                            stdin: Some(false),
                            ports: vec![core::ContainerPort {
                                container_port: Some(8080),
                                host_port: Some(0),
                                ..Default::default()
                            }],
                            resources: Some(core::ResourceRequirements {
                                limits: [(
                                    "memory".to_string(),
                                    Quantity {
                                        string: Some("64Mi".into()),
                                    },
                                )]
                                .into(),
                                ..Default::default()
                            }),
                            readiness_probe: Some(core::Probe {
                                handler: Some(core::ProbeHandler {
                                    tcp_socket: Some(core::TcpSocketAction {
                                        port: Some(IntOrString {
                                            r#type: Some(1),
                                            int_val: Some(0),
                                            str_val: Some("http".into()),
                                        }),
                                        host: Some(String::new()),
                                    }),
                                    ..Default::default()
                                }),
                                period_seconds: Some(0),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let body = envelope("apps/v1", "Deployment", dep.encode_to_vec());
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"tier": "front"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                    },
                    "template": {
                        "metadata": {},
                        "spec": {
                            "terminationGracePeriodSeconds": 0,
                            "volumes": [{"name": "scratch", "emptyDir": {}}],
                            "containers": [{
                                "name": "web",
                                "image": "nginx:1.27",
                                "ports": [{"containerPort": 8080}],
                                "resources": {"limits": {"memory": "64Mi"}},
                                "readinessProbe": {"tcpSocket": {"port": "http"}}
                            }]
                        }
                    }
                },
                "status": {}
            })
        );
    }

    #[test]
    fn unserved_kinds_and_bad_bodies_are_refused() {
        let pod = envelope("v1", "Pod", vec![]);
        assert_eq!(
            decode(&pod).unwrap_err().to_string(),
            "protobuf bodies of v1/Pod are not supported by the sandbox; send JSON"
        );
        assert!(decode(b"{}").is_err());
        // metadata (field 1) sent as a varint instead of a message
        let wrong = envelope("v1", "ConfigMap", vec![0x08, 0x01]);
        assert_eq!(
            decode(&wrong).unwrap_err().to_string(),
            "metadata: unexpected protobuf wire type"
        );
    }
}
