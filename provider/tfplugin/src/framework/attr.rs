//! Typed attribute values: what `#[derive(Model)]` builds schemas and value
//! mappings from. A type's [`AttrValue::from_tf`] is both its reader and its
//! validation: a value that parses is valid, and the same parse serves
//! `ValidateResourceConfig`, the plan and the typed state.

use std::collections::BTreeMap;

use crate::diag::{AttributePath, PathStep};
use crate::schema::{AttrError, Attribute};
use crate::value::{Type, Value};

use super::ModelError;

/// A Rust type that holds one attribute's value.
pub trait AttrValue: Sized {
    /// The attribute's cty type.
    fn ty() -> Type;
    /// Reads a known, non-null value; `Err` says what is wrong with it.
    fn from_tf(v: &Value) -> Result<Self, AttrError>;
    /// The value as Terraform stores it.
    fn to_tf(&self) -> Value;
}

/// Whether the configuration sets an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The configuration must set it.
    Required,
    /// The configuration may set it (with or without a default).
    Optional,
    /// Only the provider sets it.
    Computed,
}

/// The schema attribute of a `T`, validated by `T`'s parse.
pub fn attribute<T: AttrValue>(name: &str, presence: Presence) -> Attribute {
    let a = match presence {
        Presence::Required => Attribute::required(name, T::ty()),
        Presence::Optional => Attribute::optional(name, T::ty()),
        Presence::Computed => Attribute::computed(name, T::ty()),
    };
    a.validator(check::<T>)
}

fn check<T: AttrValue>(v: &Value) -> Result<(), AttrError> {
    T::from_tf(v).map(|_| ())
}

fn model_error(e: AttrError, path: &AttributePath) -> ModelError {
    ModelError {
        path: e.path(path),
        message: e.message,
    }
}

/// Reads an attribute that always has a value (required, or defaulted).
pub fn required<T: AttrValue>(v: &Value, path: &AttributePath) -> Result<T, ModelError> {
    if v.is_null() || v.is_unknown() {
        return Err(ModelError {
            path: path.clone(),
            message: "a value is required".into(),
        });
    }
    T::from_tf(v).map_err(|e| model_error(e, path))
}

/// Reads an attribute that may be null (or, planned, not yet known).
pub fn optional<T: AttrValue>(v: &Value, path: &AttributePath) -> Result<Option<T>, ModelError> {
    if v.is_null() || v.is_unknown() {
        return Ok(None);
    }
    T::from_tf(v).map(Some).map_err(|e| model_error(e, path))
}

impl AttrValue for String {
    fn ty() -> Type {
        Type::String
    }
    fn from_tf(v: &Value) -> Result<String, AttrError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| AttrError::new("expected a string"))
    }
    fn to_tf(&self) -> Value {
        Value::string(self.as_str())
    }
}

impl AttrValue for bool {
    fn ty() -> Type {
        Type::Bool
    }
    fn from_tf(v: &Value) -> Result<bool, AttrError> {
        v.as_bool()
            .ok_or_else(|| AttrError::new("expected true or false"))
    }
    fn to_tf(&self) -> Value {
        Value::Bool(*self)
    }
}

impl AttrValue for i64 {
    fn ty() -> Type {
        Type::Number
    }
    fn from_tf(v: &Value) -> Result<i64, AttrError> {
        let n = v
            .as_number()
            .ok_or_else(|| AttrError::new("expected a number"))?;
        n.as_i64()
            .ok_or_else(|| AttrError::new(format!("{n} is not a whole number")))
    }
    fn to_tf(&self) -> Value {
        Value::int(*self)
    }
}

/// A list attribute; an element's error points at its index.
impl<T: AttrValue> AttrValue for Vec<T> {
    fn ty() -> Type {
        Type::list(T::ty())
    }
    fn from_tf(v: &Value) -> Result<Vec<T>, AttrError> {
        let items = v
            .as_elements()
            .ok_or_else(|| AttrError::new("expected a list"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if item.is_null() {
                    return Err(AttrError::new("elements must not be null")
                        .inside(PathStep::Index(i as i64)));
                }
                T::from_tf(item).map_err(|e| e.inside(PathStep::Index(i as i64)))
            })
            .collect()
    }
    fn to_tf(&self) -> Value {
        Value::List(self.iter().map(AttrValue::to_tf).collect())
    }
}

/// A map attribute; an element's error points at its key.
impl<T: AttrValue> AttrValue for BTreeMap<String, T> {
    fn ty() -> Type {
        Type::map(T::ty())
    }
    fn from_tf(v: &Value) -> Result<BTreeMap<String, T>, AttrError> {
        let Value::Map(m) = v else {
            return Err(AttrError::new("expected a map"));
        };
        m.iter()
            .map(|(k, item)| {
                T::from_tf(item)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| e.inside(PathStep::Key(k.clone())))
            })
            .collect()
    }
    fn to_tf(&self) -> Value {
        Value::Map(self.iter().map(|(k, v)| (k.clone(), v.to_tf())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_element_path() {
        let v = Value::List(vec![Value::string("a"), Value::Bool(true)]);
        let e = Vec::<String>::from_tf(&v).expect_err("bool element");
        assert_eq!(
            e.path(&AttributePath::attr("l")).to_string(),
            "l[1]",
            "{e:?}"
        );
        let m = Value::Map(BTreeMap::from([("k".into(), Value::int(1))]));
        let e = BTreeMap::<String, String>::from_tf(&m).expect_err("number element");
        assert_eq!(e.path(&AttributePath::attr("m")).to_string(), "m[\"k\"]");
        assert_eq!(
            required::<i64>(&Value::Null, &AttributePath::attr("n"))
                .expect_err("null")
                .message,
            "a value is required"
        );
        assert_eq!(
            optional::<i64>(&Value::Unknown, &AttributePath::attr("n")),
            Ok(None)
        );
    }
}
