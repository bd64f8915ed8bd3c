//! The MessagePack encoding of cty values (`object-wire-format.md`).
//!
//! * null is nil; unknown is extension type 0 (`d4 00 00`); any other
//!   extension type (e.g. 12, a refined unknown) is read as unknown;
//! * numbers are written as an int when whole and in `i64` range, as float64
//!   otherwise, or as decimal text; all three are accepted on input;
//! * objects are maps with every attribute present;
//! * a known value in a dynamic position is `[type JSON as bin, value]`.

use std::collections::BTreeMap;

use rmpv::Value as Mp;

use super::{At, Number, Path, Type, Value, ValueError};

/// Decodes msgpack `bytes` as a value of type `ty`. Empty input means null
/// (Terraform's rule for an empty `DynamicValue`).
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut rd = bytes;
    let mp = rmpv::decode::read_value(&mut rd)
        .map_err(|e| ValueError::new(Path::root(), format!("invalid msgpack: {e}")))?;
    if !rd.is_empty() {
        return Err(ValueError::new(
            Path::root(),
            "trailing bytes after msgpack value",
        ));
    }
    from_mp(&mp, ty, &At::Root)
}

/// Encodes `value` as msgpack shaped by `ty`, writing every object attribute.
pub fn encode_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    let mp = to_mp(value, ty, &At::Root)?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &mp)
        .map_err(|e| ValueError::new(Path::root(), format!("msgpack write failed: {e}")))?;
    Ok(out)
}

fn mp_str(v: &Mp) -> Option<&str> {
    match v {
        Mp::String(s) => s.as_str(),
        _ => None,
    }
}

fn from_mp(mp: &Mp, ty: &Type, path: &At<'_>) -> Result<Value, ValueError> {
    match mp {
        Mp::Nil => return Ok(Value::Null),
        Mp::Ext(_, _) => return Ok(Value::Unknown),
        _ => {}
    }
    let mismatch = |what: &str| ValueError::new(path.path(), format!("expected {what}, got {mp}"));
    Ok(match ty {
        Type::Bool => match mp {
            Mp::Boolean(b) => Value::Bool(*b),
            _ => return Err(mismatch("bool")),
        },
        Type::Number => Value::Number(match mp {
            Mp::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(v), _) => Number::Int(v),
                (None, Some(u)) => Number::Decimal(u.to_string()),
                (None, None) => return Err(mismatch("number")),
            },
            Mp::F32(f) => Number::from(f64::from(*f)),
            Mp::F64(f) => Number::from(*f),
            Mp::String(s) => {
                let s = s.as_str().ok_or_else(|| mismatch("UTF-8 number text"))?;
                Number::parse(s).map_err(|e| ValueError::new(path.path(), e.to_string()))?
            }
            _ => return Err(mismatch("number")),
        }),
        Type::String => match mp {
            Mp::String(s) => Value::String(
                s.as_str()
                    .ok_or_else(|| mismatch("UTF-8 string"))?
                    .to_string(),
            ),
            _ => return Err(mismatch("string")),
        },
        Type::List(e) | Type::Set(e) => match mp {
            Mp::Array(items) => {
                let vals = items
                    .iter()
                    .enumerate()
                    .map(|(i, m)| from_mp(m, e, &path.index(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, Type::List(_)) {
                    Value::List(vals)
                } else {
                    Value::Set(vals)
                }
            }
            _ => return Err(mismatch("array")),
        },
        Type::Tuple(types) => match mp {
            Mp::Array(items) if items.len() == types.len() => Value::Tuple(
                items
                    .iter()
                    .zip(types)
                    .enumerate()
                    .map(|(i, (m, t))| from_mp(m, t, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(mismatch(&format!("array of {} elements", types.len()))),
        },
        Type::Map(e) => match mp {
            Mp::Map(entries) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    let k = mp_str(k).ok_or_else(|| mismatch("string map keys"))?;
                    out.insert(k.to_string(), from_mp(v, e, &path.key(k))?);
                }
                Value::Map(out)
            }
            _ => return Err(mismatch("map")),
        },
        Type::Object(attrs) => match mp {
            Mp::Map(entries) => {
                let mut out = BTreeMap::new();
                for (k, v) in entries {
                    let k = mp_str(k).ok_or_else(|| mismatch("string attribute names"))?;
                    let t = attrs.get(k).ok_or_else(|| {
                        ValueError::new(path.path(), format!("unsupported attribute {k:?}"))
                    })?;
                    out.insert(k.to_string(), from_mp(v, t, &path.attr(k))?);
                }
                if out.len() != attrs.len() {
                    return Err(ValueError::new(
                        path.path(),
                        format!(
                            "an object with {} attributes is required ({} given)",
                            attrs.len(),
                            out.len()
                        ),
                    ));
                }
                Value::Object(out)
            }
            _ => return Err(mismatch("object")),
        },
        Type::Dynamic => match mp {
            Mp::Array(pair) if pair.len() == 2 => {
                let tbytes: &[u8] = match &pair[0] {
                    Mp::Binary(b) => b,
                    Mp::String(s) => s.as_bytes(),
                    _ => return Err(mismatch("dynamic value [type, value]")),
                };
                let t =
                    Type::from_json(tbytes).map_err(|e| ValueError::new(path.path(), e.message))?;
                let v = from_mp(&pair[1], &t, path)?;
                Value::Dynamic(t, Box::new(v))
            }
            _ => return Err(mismatch("dynamic value [type, value]")),
        },
    })
}

fn to_mp(value: &Value, ty: &Type, path: &At<'_>) -> Result<Mp, ValueError> {
    let mismatch = || {
        ValueError::new(
            path.path(),
            format!("value does not conform to type {}", ty.to_json()),
        )
    };
    Ok(match (value, ty) {
        (Value::Null, _) => Mp::Nil,
        (Value::Unknown, _) => Mp::Ext(0, vec![0]),
        (Value::Dynamic(t, v), Type::Dynamic) => Mp::Array(vec![
            Mp::Binary(t.to_json().into_bytes()),
            to_mp(v, t, path)?,
        ]),
        (v, Type::Dynamic) => {
            let t = v.infer_type();
            if t == Type::Dynamic {
                return Err(mismatch());
            }
            Mp::Array(vec![
                Mp::Binary(t.to_json().into_bytes()),
                to_mp(v, &t, path)?,
            ])
        }
        (Value::Dynamic(_, v), t) => to_mp(v, t, path)?,
        (Value::Bool(b), Type::Bool) => Mp::Boolean(*b),
        (Value::Number(n), Type::Number) => match n {
            Number::Int(i) => Mp::from(*i),
            Number::Float(f) => Mp::F64(*f),
            Number::Decimal(s) => Mp::from(s.as_str()),
        },
        (Value::String(s), Type::String) => Mp::from(s.as_str()),
        (Value::List(items), Type::List(e)) | (Value::Set(items), Type::Set(e)) => Mp::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_mp(v, e, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Tuple(items), Type::Tuple(types)) if items.len() == types.len() => Mp::Array(
            items
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, t))| to_mp(v, t, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Map(m), Type::Map(e)) => Mp::Map(
            m.iter()
                .map(|(k, v)| Ok((Mp::from(k.as_str()), to_mp(v, e, &path.key(k))?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        (Value::Object(m), Type::Object(attrs)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(ValueError::new(
                    path.path(),
                    format!("unsupported attribute {extra:?}"),
                ));
            }
            Mp::Map(
                attrs
                    .iter()
                    .map(|(k, t)| {
                        let v = m.get(k).unwrap_or(&Value::Null);
                        Ok((Mp::from(k.as_str()), to_mp(v, t, &path.attr(k))?))
                    })
                    .collect::<Result<_, ValueError>>()?,
            )
        }
        _ => return Err(mismatch()),
    })
}
