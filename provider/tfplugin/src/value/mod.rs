//! cty types and values, and their wire encodings.
//!
//! Terraform exchanges every configuration, plan and state value as a cty
//! value encoded with MessagePack (see `docs/terraform-plugin-protocol.md`
//! §4). This module holds:
//!
//! * [`Type`]: bool, number, string, list, set, map, object, tuple, dynamic,
//!   with the JSON form used in schemas ([`Type::to_json`], [`Type::from_json`]);
//! * [`Value`]: values including null and unknown at any depth;
//! * [`decode_msgpack`] / [`encode_msgpack`]: the schema-driven msgpack codec;
//! * [`decode_json`] / [`encode_json`]: the JSON form of stored state.

mod json;
mod msgpack;
mod number;

use std::collections::BTreeMap;
use std::fmt;

pub use json::JsonSyntaxError;
pub use msgpack::{decode_msgpack, encode_msgpack};
pub use number::{Number, NumberSyntaxError};

/// A cty type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Bool,
    Number,
    String,
    /// Any type, decided per value ("dynamic pseudo-type").
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    /// Named attributes; every attribute is always present in a value.
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    /// `list(element)`.
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }

    /// `set(element)`.
    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }

    /// `map(element)`.
    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    /// `object({...})` from `(name, type)` pairs.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Type)>) -> Type {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.into(), t)).collect())
    }

    /// The JSON form used in `Schema.Attribute.type` and dynamic values:
    /// `"string"`, `["list","string"]`, `["object",{"a":"bool"}]`, ...
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Type::Bool => out.push_str("\"bool\""),
            Type::Number => out.push_str("\"number\""),
            Type::String => out.push_str("\"string\""),
            Type::Dynamic => out.push_str("\"dynamic\""),
            Type::List(e) | Type::Set(e) | Type::Map(e) => {
                let kind = match self {
                    Type::List(_) => "list",
                    Type::Set(_) => "set",
                    _ => "map",
                };
                out.push_str(&format!("[\"{kind}\","));
                e.write_json(out);
                out.push(']');
            }
            Type::Object(attrs) => {
                out.push_str("[\"object\",{");
                for (i, (k, t)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::write_string(out, k);
                    out.push(':');
                    t.write_json(out);
                }
                out.push_str("}]");
            }
            Type::Tuple(elems) => {
                out.push_str("[\"tuple\",[");
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    t.write_json(out);
                }
                out.push_str("]]");
            }
        }
    }

    /// Parses the JSON form of a type (see [`Type::to_json`]).
    pub fn from_json(bytes: &[u8]) -> Result<Type, ValueError> {
        let doc = json::parse(bytes).map_err(|e| ValueError::new(Path::root(), e.to_string()))?;
        Self::from_json_doc(&doc)
    }

    fn from_json_doc(doc: &json::Json) -> Result<Type, ValueError> {
        use json::Json;
        let bad = |what: &str| ValueError::new(Path::root(), format!("invalid type JSON: {what}"));
        match doc {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(bad(&format!("unknown primitive type {other:?}"))),
            },
            Json::Array(items) => {
                let kind = match items.first() {
                    Some(Json::String(k)) => k.as_str(),
                    _ => return Err(bad("a complex type must start with its kind")),
                };
                // `["object", {...}, ["optional", ...]]` may carry a third element.
                let arg = items.get(1).ok_or_else(|| bad("missing type argument"))?;
                match kind {
                    "list" => Ok(Type::list(Self::from_json_doc(arg)?)),
                    "set" => Ok(Type::set(Self::from_json_doc(arg)?)),
                    "map" => Ok(Type::map(Self::from_json_doc(arg)?)),
                    "object" => match arg {
                        Json::Object(members) => {
                            let mut attrs = BTreeMap::new();
                            for (k, v) in members {
                                attrs.insert(k.clone(), Self::from_json_doc(v)?);
                            }
                            Ok(Type::Object(attrs))
                        }
                        _ => Err(bad("object attributes must be a JSON object")),
                    },
                    "tuple" => match arg {
                        Json::Array(elems) => Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Self::from_json_doc)
                                .collect::<Result<_, _>>()?,
                        )),
                        _ => Err(bad("tuple elements must be a JSON array")),
                    },
                    other => Err(bad(&format!("unknown type kind {other:?}"))),
                }
            }
            _ => Err(bad("expected a string or an array")),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// A cty value. Null and unknown may appear at any depth.
///
/// Equality treats sets as unordered and compares numbers by value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A null of whatever type the position has.
    Null,
    /// A value not known until apply (msgpack extension 0; refinements are dropped).
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements in no particular order.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A known value stored in a [`Type::Dynamic`] position, with its concrete type.
    Dynamic(Type, Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) | (Unknown, Unknown) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (String(a), String(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Map(a), Map(b)) | (Object(a), Object(b)) => a == b,
            (Set(a), Set(b)) => {
                if a.len() != b.len() {
                    return false;
                }
                let mut used = vec![false; b.len()];
                a.iter().all(|x| {
                    for (i, y) in b.iter().enumerate() {
                        if !used[i] && x == y {
                            used[i] = true;
                            return true;
                        }
                    }
                    false
                })
            }
            (Dynamic(ta, a), Dynamic(tb, b)) => ta == tb && a == b,
            _ => false,
        }
    }
}

impl Value {
    /// A known string.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A known whole number.
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }

    /// An object from `(name, value)` pairs.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this value itself is unknown (not looking inside).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// Whether no unknown appears anywhere in this value.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }

    /// The attribute `name` of an object (looking through a dynamic wrapper).
    /// `None` if this is not an object or has no such attribute.
    pub fn get_attr(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(name),
            Value::Dynamic(_, v) => v.get_attr(name),
            _ => None,
        }
    }

    /// Mutable access to the attribute `name` of an object.
    pub fn get_attr_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) => m.get_mut(name),
            Value::Dynamic(_, v) => v.get_attr_mut(name),
            _ => None,
        }
    }

    /// The string, if this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Dynamic(_, v) => v.as_str(),
            _ => None,
        }
    }

    /// The bool, if this is a known bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Dynamic(_, v) => v.as_bool(),
            _ => None,
        }
    }

    /// The number, if this is a known number.
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            Value::Dynamic(_, v) => v.as_number(),
            _ => None,
        }
    }

    /// The elements, if this is a known list, set or tuple.
    pub fn as_elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            Value::Dynamic(_, v) => v.as_elements(),
            _ => None,
        }
    }

    /// A best-effort concrete type for a value placed in a dynamic position.
    /// Null and unknown give [`Type::Dynamic`]; empty collections have
    /// dynamic elements.
    pub fn infer_type(&self) -> Type {
        match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(v) => Type::list(v.first().map_or(Type::Dynamic, Value::infer_type)),
            Value::Set(v) => Type::set(v.first().map_or(Type::Dynamic, Value::infer_type)),
            Value::Map(m) => Type::map(m.values().next().map_or(Type::Dynamic, Value::infer_type)),
            Value::Object(m) => {
                Type::Object(m.iter().map(|(k, v)| (k.clone(), v.infer_type())).collect())
            }
            Value::Tuple(v) => Type::Tuple(v.iter().map(Value::infer_type).collect()),
            Value::Dynamic(t, _) => t.clone(),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// A location inside a value, for error messages (`.dolt.port`, `[2]`, `["k"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The value itself.
    pub fn root() -> Path {
        Path(String::new())
    }
}

/// Where a walk over a value is, as borrowed steps: the [`Path`] string is
/// only made when an error reports it. The decoders and encoders walk every
/// element of every value Terraform sends; formatting a path at each one
/// was most of the msgpack decoder's instructions (callgrind).
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    Root,
    Attr(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
    Key(&'a At<'a>, &'a str),
}

impl<'a> At<'a> {
    pub(crate) fn attr(&'a self, name: &'a str) -> At<'a> {
        At::Attr(self, name)
    }

    pub(crate) fn index(&'a self, i: usize) -> At<'a> {
        At::Index(self, i)
    }

    pub(crate) fn key(&'a self, k: &'a str) -> At<'a> {
        At::Key(self, k)
    }

    /// The path this walk is at (`.dolt.port`, `[2]`, `["k"]`).
    pub(crate) fn path(&self) -> Path {
        fn write(at: &At<'_>, out: &mut String) {
            use std::fmt::Write as _;
            match at {
                At::Root => {}
                At::Attr(up, name) => {
                    write(up, out);
                    out.push('.');
                    out.push_str(name);
                }
                At::Index(up, i) => {
                    write(up, out);
                    let _ = write!(out, "[{i}]");
                }
                At::Key(up, k) => {
                    write(up, out);
                    let _ = write!(out, "[{k:?}]");
                }
            }
        }
        let mut out = String::new();
        write(self, &mut out);
        Path(out)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(root)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A value that does not fit its type, or bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct ValueError {
    /// Where in the value the problem is.
    pub path: Path,
    /// What the problem is.
    pub message: String,
}

impl ValueError {
    pub(crate) fn new(path: Path, message: impl Into<String>) -> ValueError {
        ValueError {
            path,
            message: message.into(),
        }
    }
}

/// Options for [`decode_json`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOptions {
    /// Skip object members the type does not define (stored state written by
    /// an older schema may contain attributes that were removed since).
    pub ignore_unknown_attributes: bool,
}

/// Decodes the JSON form of a value (as in `RawState.json`), shaped by `ty`.
///
/// Object attributes missing from the JSON become null, so the result always
/// has every attribute of the type. Numbers keep their exact decimal text.
pub fn decode_json(bytes: &[u8], ty: &Type, opts: JsonOptions) -> Result<Value, ValueError> {
    let doc = json::parse(bytes).map_err(|e| ValueError::new(Path::root(), e.to_string()))?;
    from_json(&doc, ty, opts, &At::Root)
}

fn from_json(
    doc: &json::Json,
    ty: &Type,
    opts: JsonOptions,
    path: &At<'_>,
) -> Result<Value, ValueError> {
    use json::Json;
    if let Json::Null = doc {
        return Ok(Value::Null);
    }
    let mismatch = |what: &str| ValueError::new(path.path(), format!("expected {what}"));
    Ok(match ty {
        Type::Bool => match doc {
            Json::Bool(b) => Value::Bool(*b),
            Json::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            _ => return Err(mismatch("bool")),
        },
        Type::Number => match doc {
            Json::Number(n) | Json::String(n) => Value::Number(
                Number::parse(n).map_err(|e| ValueError::new(path.path(), e.to_string()))?,
            ),
            _ => return Err(mismatch("number")),
        },
        Type::String => match doc {
            Json::String(s) => Value::String(s.clone()),
            Json::Number(n) => Value::String(n.clone()),
            Json::Bool(b) => Value::String(b.to_string()),
            _ => return Err(mismatch("string")),
        },
        Type::List(e) | Type::Set(e) => match doc {
            Json::Array(items) => {
                let vals = items
                    .iter()
                    .enumerate()
                    .map(|(i, d)| from_json(d, e, opts, &path.index(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, Type::List(_)) {
                    Value::List(vals)
                } else {
                    Value::Set(vals)
                }
            }
            _ => return Err(mismatch("array")),
        },
        Type::Tuple(elems) => match doc {
            Json::Array(items) if items.len() == elems.len() => Value::Tuple(
                items
                    .iter()
                    .zip(elems)
                    .enumerate()
                    .map(|(i, (d, t))| from_json(d, t, opts, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(mismatch(&format!("array of {} elements", elems.len()))),
        },
        Type::Map(e) => match doc {
            Json::Object(members) => Value::Map(
                members
                    .iter()
                    .map(|(k, d)| Ok((k.clone(), from_json(d, e, opts, &path.key(k))?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
            _ => return Err(mismatch("object")),
        },
        Type::Object(attrs) => match doc {
            Json::Object(members) => {
                let mut out: BTreeMap<String, Value> =
                    attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
                for (k, d) in members {
                    match attrs.get(k) {
                        Some(t) => {
                            out.insert(k.clone(), from_json(d, t, opts, &path.attr(k))?);
                        }
                        None if opts.ignore_unknown_attributes => {}
                        None => {
                            return Err(ValueError::new(
                                path.path(),
                                format!("unsupported attribute {k:?}"),
                            ));
                        }
                    }
                }
                Value::Object(out)
            }
            _ => return Err(mismatch("object")),
        },
        Type::Dynamic => match doc {
            Json::Object(members) => {
                let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                let (Some(tdoc), Some(vdoc)) = (get("type"), get("value")) else {
                    return Err(mismatch("a dynamic value {\"value\": ..., \"type\": ...}"));
                };
                let t = Type::from_json_doc(tdoc)
                    .map_err(|e| ValueError::new(path.path(), e.message))?;
                let v = from_json(vdoc, &t, opts, path)?;
                Value::Dynamic(t, Box::new(v))
            }
            _ => return Err(mismatch("a dynamic value object")),
        },
    })
}

/// Encodes a wholly known value as JSON shaped by `ty` (the form Terraform
/// stores in state). Unknown values cannot be written as JSON.
pub fn encode_json(value: &Value, ty: &Type) -> Result<String, ValueError> {
    let mut out = String::new();
    to_json(value, ty, &At::Root, &mut out)?;
    Ok(out)
}

fn to_json(value: &Value, ty: &Type, path: &At<'_>, out: &mut String) -> Result<(), ValueError> {
    let mismatch = || {
        ValueError::new(
            path.path(),
            format!("value does not conform to type {}", ty.to_json()),
        )
    };
    match (value, ty) {
        (Value::Null, _) => out.push_str("null"),
        (Value::Unknown, _) => {
            return Err(ValueError::new(
                path.path(),
                "unknown values cannot be written as JSON",
            ));
        }
        (Value::Dynamic(t, v), Type::Dynamic) => {
            out.push_str("{\"value\":");
            to_json(v, t, path, out)?;
            out.push_str(",\"type\":");
            t.write_json(out);
            out.push('}');
        }
        (v, Type::Dynamic) => {
            let t = v.infer_type();
            if t == Type::Dynamic {
                return Err(mismatch());
            }
            return to_json(&Value::Dynamic(t, Box::new(v.clone())), ty, path, out);
        }
        (Value::Dynamic(_, v), t) => to_json(v, t, path, out)?,
        (Value::Bool(b), Type::Bool) => out.push_str(if *b { "true" } else { "false" }),
        (Value::Number(n), Type::Number) => match n {
            Number::Float(f) if !f.is_finite() => {
                return Err(ValueError::new(
                    path.path(),
                    "infinite numbers cannot be written as JSON",
                ));
            }
            n => out.push_str(&n.canonical()),
        },
        (Value::String(s), Type::String) => json::write_string(out, s),
        (Value::List(items), Type::List(e)) | (Value::Set(items), Type::Set(e)) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(v, e, &path.index(i), out)?;
            }
            out.push(']');
        }
        (Value::Tuple(items), Type::Tuple(types)) if items.len() == types.len() => {
            out.push('[');
            for (i, (v, t)) in items.iter().zip(types).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(v, t, &path.index(i), out)?;
            }
            out.push(']');
        }
        (Value::Map(m), Type::Map(e)) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, k);
                out.push(':');
                to_json(v, e, &path.key(k), out)?;
            }
            out.push('}');
        }
        (Value::Object(m), Type::Object(attrs)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(ValueError::new(
                    path.path(),
                    format!("unsupported attribute {extra:?}"),
                ));
            }
            out.push('{');
            for (i, (k, t)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, k);
                out.push(':');
                to_json(m.get(k).unwrap_or(&Value::Null), t, &path.attr(k), out)?;
            }
            out.push('}');
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
