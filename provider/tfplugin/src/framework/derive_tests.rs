//! `#[derive(Model)]`: one struct gives the schema block (types, presence,
//! defaults, validators, required-together groups, nested blocks, doc
//! comments as descriptions) and the value mapping.

use crate::Model;
use crate::diag::{AttributePath, Diagnostics};
use crate::framework::Model as _;
use crate::framework::attr::AttrValue;
use crate::schema::{AttrError, Nesting};
use crate::value::{Type, Value};

/// An even number.
#[derive(Debug, Clone, PartialEq)]
struct Even(i64);

impl AttrValue for Even {
    fn ty() -> Type {
        Type::Number
    }
    fn from_tf(v: &Value) -> Result<Even, AttrError> {
        let n = i64::from_tf(v)?;
        if n % 2 == 0 {
            Ok(Even(n))
        } else {
            Err(AttrError::new(format!("{n} is odd")))
        }
    }
    fn to_tf(&self) -> Value {
        Value::int(self.0)
    }
}

/// The inner block.
#[derive(Debug, Clone, PartialEq, Model)]
#[tf(required_together(user, password))]
struct Inner {
    /// Host name.
    host: String,
    /// User.
    user: Option<String>,
    /// Password.
    #[tf(sensitive)]
    password: Option<String>,
}

/// A sample resource.
#[derive(Debug, Clone, PartialEq, Model)]
struct Sample {
    /// Its name.
    #[tf(requires_replace)]
    name: String,
    /// How many.
    #[tf(default = Even(2))]
    count: Even,
    /// Tags.
    #[tf(default = Vec::new(), default_doc = "none")]
    tags: Vec<Even>,
    /// Set by the provider.
    #[tf(computed, stable)]
    id: Option<String>,
    /// Connection.
    #[tf(block)]
    inner: Inner,
}

fn config(count: Value, tags: Value) -> Value {
    Value::object([
        ("name", Value::string("x")),
        ("count", count),
        ("tags", tags),
        ("id", Value::Null),
        (
            "inner",
            Value::object([
                ("host", Value::string("h")),
                ("user", Value::string("u")),
                ("password", Value::Null),
            ]),
        ),
    ])
}

#[test]
fn the_struct_declares_the_schema() {
    let b = Sample::block();
    assert!(b.check().is_empty(), "{:?}", b.check());
    assert_eq!(b.description, "A sample resource.");
    let name = b.get_attribute("name").expect("name");
    assert!(name.required && name.requires_replace && name.description == "Its name.");
    let count = b.get_attribute("count").expect("count");
    assert!(count.optional && count.computed && count.default == Some(Value::int(2)));
    assert_eq!(
        b.get_attribute("tags")
            .expect("tags")
            .default_doc
            .as_deref(),
        Some("none")
    );
    assert_eq!(
        b.get_attribute("tags").expect("tags").ty,
        Type::list(Type::Number)
    );
    let id = b.get_attribute("id").expect("id");
    assert!(id.computed && id.stable && !id.optional);
    let inner = b.get_block("inner").expect("inner");
    assert_eq!(inner.nesting, Nesting::Single);
    assert_eq!(inner.min_items, 1);
    assert!(inner.block.get_attribute("password").expect("pw").sensitive);
    assert_eq!(inner.block.description, "Connection.");
}

#[test]
fn validators_name_the_attribute_and_element() {
    let paths = |v: &Value| {
        let mut d = Diagnostics::new();
        Sample::block().validate(v, &AttributePath::default(), &mut d);
        d.iter()
            .map(|d| {
                format!(
                    "{} @ {}",
                    d.summary,
                    d.path.as_ref().map(ToString::to_string).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(&config(
            Value::int(3),
            Value::List(vec![Value::int(2), Value::int(5)])
        )),
        vec![
            "Invalid count @ count",
            "Invalid tags @ tags[1]",
            "Missing inner.password @ inner.user"
        ]
    );
    // Unknown values are not judged.
    assert!(paths(&config(Value::Unknown, Value::List(vec![Value::Unknown]))).len() == 1);
}

#[test]
fn values_map_both_ways() {
    let mut v = config(Value::int(4), Value::List(vec![Value::int(6)]));
    let s = Sample::from_value(&v).expect("reads");
    assert_eq!(s.count, Even(4));
    assert_eq!(s.inner.user.as_deref(), Some("u"));
    assert_eq!(s.id, None);
    assert_eq!(s.to_value(), v);
    *v.get_attr_mut("count").expect("count") = Value::int(1);
    let e = Sample::from_value(&v).expect_err("odd");
    assert_eq!(e.path.to_string(), "count");
    let d = Sample::block().defaults();
    assert_eq!(d.get_attr("count"), Some(&Value::int(2)));
    assert_eq!(
        d.get_attr("inner").and_then(|i| i.get_attr("host")),
        Some(&Value::Null)
    );
}
