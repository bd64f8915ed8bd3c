//! Typed access to cty object values: the [`Model`] trait resources use for
//! their state, and the [`Obj`] reader that makes implementing it short.

use std::collections::BTreeMap;

use crate::diag::{AttributePath, Diagnostic};
use crate::schema::Block;
use crate::value::Value;

/// A Rust type that is one value of a schema block (an object), usually
/// declared with `#[derive(Model)]`: the struct is the one declaration of
/// the block's attributes, and schema, validation and mapping follow.
///
/// `from_value` reads planned or stored values: unknown computed attributes
/// (planned, not yet set) read as absent. `to_value` must produce every
/// attribute of the schema (absent ones as null).
pub trait Model: Sized {
    /// The schema block this type is a value of.
    fn block() -> Block;
    /// Reads the typed value found at `path`.
    fn from_value_at(v: &Value, path: &AttributePath) -> Result<Self, ModelError>;
    /// Reads the typed value (at the root).
    fn from_value(v: &Value) -> Result<Self, ModelError> {
        Self::from_value_at(v, &ROOT)
    }
    /// Writes the typed value.
    fn to_value(&self) -> Value;
}

/// An attribute value that does not fit the Rust type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelError {
    /// Where the value is.
    pub path: AttributePath,
    /// What is wrong with it.
    pub message: String,
}

impl ModelError {
    /// This error as an error diagnostic on its attribute.
    pub fn into_diagnostic(self) -> Diagnostic {
        Diagnostic::error("Invalid value", self.message).at(self.path)
    }
}

/// A configuration value as validation sees it: null, not yet known, or known.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Null,
    Unknown,
    Known(T),
}

impl<T> Field<T> {
    /// The known value, if any.
    pub fn known(self) -> Option<T> {
        match self {
            Field::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// A read-only view of an object value with typed getters that report
/// errors with the attribute's path.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    attrs: Option<&'a BTreeMap<String, Value>>,
    path: &'a AttributePath,
}

static ROOT: AttributePath = AttributePath(Vec::new());

impl<'a> Obj<'a> {
    /// A view of `v` at the root path. Null or unknown objects read as all
    /// attributes absent; anything else that is not an object is an error.
    pub fn new(v: &'a Value) -> Result<Obj<'a>, ModelError> {
        Obj::at(v, &ROOT)
    }

    /// A view of `v`, which sits at `path`.
    pub fn at(v: &'a Value, path: &'a AttributePath) -> Result<Obj<'a>, ModelError> {
        match v {
            Value::Object(m) => Ok(Obj {
                attrs: Some(m),
                path,
            }),
            Value::Dynamic(_, inner) => Obj::at(inner, path),
            Value::Null | Value::Unknown => Ok(Obj { attrs: None, path }),
            _ => Err(ModelError {
                path: path.clone(),
                message: "expected an object".into(),
            }),
        }
    }

    /// The path of attribute `name` below this object.
    pub fn path_of(&self, name: &str) -> AttributePath {
        self.path.clone().and_attr(name)
    }

    /// The raw value of attribute `name` (null when absent).
    pub fn raw(&self, name: &str) -> &'a Value {
        self.attrs.and_then(|m| m.get(name)).unwrap_or(&Value::Null)
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ModelError {
        ModelError {
            path: self.path_of(name),
            message: message.into(),
        }
    }

    fn field<T>(
        &self,
        name: &str,
        kind: &str,
        get: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Field<T>, ModelError> {
        match self.raw(name) {
            Value::Null => Ok(Field::Null),
            Value::Unknown => Ok(Field::Unknown),
            v => get(v)
                .map(Field::Known)
                .ok_or_else(|| self.err(name, format!("expected {kind}"))),
        }
    }

    /// A string that may be null or unknown.
    pub fn string_field(&self, name: &str) -> Result<Field<&'a str>, ModelError> {
        self.field(name, "a string", Value::as_str)
    }

    /// A bool that may be null or unknown.
    pub fn bool_field(&self, name: &str) -> Result<Field<bool>, ModelError> {
        self.field(name, "a bool", Value::as_bool)
    }

    /// A whole number that may be null or unknown.
    pub fn i64_field(&self, name: &str) -> Result<Field<i64>, ModelError> {
        match self.raw(name) {
            Value::Null => Ok(Field::Null),
            Value::Unknown => Ok(Field::Unknown),
            v => match v.as_number() {
                Some(n) => n
                    .as_i64()
                    .map(Field::Known)
                    .ok_or_else(|| self.err(name, format!("{n} is not a whole number"))),
                None => Err(self.err(name, "expected a number")),
            },
        }
    }

    /// A string; null or unknown is an error.
    pub fn string(&self, name: &str) -> Result<String, ModelError> {
        self.opt_string(name)?
            .ok_or_else(|| self.err(name, "a value is required"))
    }

    /// A string; null or unknown reads as `None`.
    pub fn opt_string(&self, name: &str) -> Result<Option<String>, ModelError> {
        Ok(self.string_field(name)?.known().map(str::to_string))
    }

    /// A bool; null or unknown is an error.
    pub fn bool(&self, name: &str) -> Result<bool, ModelError> {
        self.bool_field(name)?
            .known()
            .ok_or_else(|| self.err(name, "a value is required"))
    }

    /// A whole number; null or unknown reads as `None`.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, ModelError> {
        Ok(self.i64_field(name)?.known())
    }

    /// A whole number; null or unknown is an error.
    pub fn i64(&self, name: &str) -> Result<i64, ModelError> {
        self.opt_i64(name)?
            .ok_or_else(|| self.err(name, "a value is required"))
    }

    /// A list or set of strings; null or unknown reads as empty.
    pub fn strings(&self, name: &str) -> Result<Vec<String>, ModelError> {
        match self.raw(name) {
            Value::Null | Value::Unknown => Ok(Vec::new()),
            v => {
                let items = v
                    .as_elements()
                    .ok_or_else(|| self.err(name, "expected a list"))?;
                items
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| !e.is_null() && !e.is_unknown())
                    .map(|(i, e)| {
                        e.as_str().map(str::to_string).ok_or_else(|| ModelError {
                            path: self.path_of(name).and_index(i as i64),
                            message: "expected a string".into(),
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Builds an object value attribute by attribute (for [`Model::to_value`]).
#[derive(Debug, Default)]
pub struct ObjBuilder(BTreeMap<String, Value>);

impl ObjBuilder {
    /// An empty object.
    pub fn new() -> ObjBuilder {
        ObjBuilder::default()
    }

    /// Sets attribute `name` (an `Option` that is `None` becomes null).
    pub fn set(mut self, name: &str, v: impl Into<Value>) -> ObjBuilder {
        self.0.insert(name.to_string(), v.into());
        self
    }

    /// The object.
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Number;

    #[test]
    fn typed_getters_report_paths() {
        let v = Value::object([
            ("s", Value::string("x")),
            ("n", Value::Number(Number::Float(1.5))),
            ("u", Value::Unknown),
            (
                "l",
                Value::List(vec![Value::string("a"), Value::Bool(true)]),
            ),
        ]);
        let o = Obj::new(&v).expect("object");
        assert_eq!(o.string("s"), Ok("x".into()));
        assert_eq!(o.string_field("u"), Ok(Field::Unknown));
        assert_eq!(o.opt_string("missing"), Ok(None));
        let e = o.i64("n").expect_err("fractional");
        assert_eq!(e.path.to_string(), "n");
        let e = o.strings("l").expect_err("bool element");
        assert_eq!(e.path.to_string(), "l[1]");
        assert!(o.string("missing").is_err());
        assert!(Obj::new(&Value::Bool(true)).is_err());
    }
}
