//! Decoding of `application/vnd.kubernetes.protobuf` request bodies, which
//! kubectl's typed clients send (e.g. `kubectl create namespace`). Only the
//! kinds such commands create are known: Namespace, ConfigMap and Secret.
//! Responses are always JSON (kubectl accepts JSON as a fallback).

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The protobuf content type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\x00";

/// A body that cannot be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DecodeError(String);

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Time,
    StrList,
    MapStr,
    MapBytes,
    Msg(&'static [Field]),
}

type Field = (u32, &'static str, Kind);

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::MapStr),
    (12, "annotations", Kind::MapStr),
    (14, "finalizers", Kind::StrList),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "spec", Kind::Msg(&[(1, "finalizers", Kind::StrList)])),
    (3, "status", Kind::Msg(&[(1, "phase", Kind::Str)])),
];

const CONFIGMAP: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapStr),
    (3, "binaryData", Kind::MapBytes),
    (4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapBytes),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::MapStr),
    (5, "immutable", Kind::Bool),
];

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

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), DecodeError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(x)) => k = utf8(x)?,
            (2, Wire::Bytes(x)) => {
                v = if bytes_value {
                    json!(base64::engine::general_purpose::STANDARD.encode(x))
                } else {
                    json!(utf8(x)?)
                }
            }
            _ => {}
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let mut secs: i64 = 0;
    while !r.done() {
        if let (1, Wire::Varint(v)) = r.field()? {
            secs = v as i64;
        }
    }
    if secs == 0 {
        return Ok(Value::Null);
    }
    Ok(chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value, DecodeError> {
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while !r.done() {
        let (num, wire) = r.field()?;
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            continue;
        };
        let name = (*name).to_string();
        match (kind, wire) {
            (Kind::Str, Wire::Bytes(x)) => {
                let s = utf8(x)?;
                if !s.is_empty() {
                    out.insert(name, json!(s));
                }
            }
            (Kind::Int, Wire::Varint(v)) => {
                out.insert(name, json!(v as i64));
            }
            (Kind::Bool, Wire::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Kind::Time, Wire::Bytes(x)) => {
                let t = time(x)?;
                if !t.is_null() {
                    out.insert(name, t);
                }
            }
            (Kind::StrList, Wire::Bytes(x)) => {
                let s = json!(utf8(x)?);
                if let Some(list) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    list.push(s);
                }
            }
            (Kind::MapStr | Kind::MapBytes, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, matches!(kind, Kind::MapBytes))?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            (Kind::Msg(fields), Wire::Bytes(x)) => {
                let v = message(x, fields)?;
                if v.as_object().is_some_and(|m| !m.is_empty()) {
                    out.insert(name, v);
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
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
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIGMAP,
        ("v1", "Secret") => SECRET,
        _ => {
            return Err(DecodeError(format!(
                "protobuf bodies of {api_version}/{kind} are not supported by the sandbox; send JSON"
            )));
        }
    };
    let mut obj = message(raw, schema)?;
    if let Some(m) = obj.as_object_mut() {
        let mut full = Map::new();
        full.insert("apiVersion".into(), json!(api_version));
        full.insert("kind".into(), json!(kind));
        full.extend(std::mem::take(m));
        *m = full;
    }
    Ok(obj)
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
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"foo"}})
        );
    }
}
