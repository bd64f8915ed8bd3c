//! Declaring a schema once and deriving both the protobuf `Schema` Terraform
//! needs and the cty [`Type`] used to decode and encode values.
//!
//! Besides what Terraform itself knows (required/optional/computed,
//! sensitive, description), an [`Attribute`] carries the plan rules the
//! framework applies generically: a default value, "changing this forces
//! replacement", and "keep the prior value while unchanged" for computed
//! attributes.

use std::collections::BTreeMap;

use crate::diag::AttributePath;
use crate::proto::tfplugin6 as pb;
use crate::value::{Type, Value, encode_msgpack};

/// A resource's (or the provider's) schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Version of the stored state shape; bump it and implement
    /// `Resource::upgrade_state` when the shape changes.
    pub version: i64,
    /// The top-level block.
    pub block: Block,
}

/// A block: attributes and nested blocks.
#[derive(Debug, Clone, Default)]
pub struct Block {
    pub description: String,
    pub deprecated: bool,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Groups of attributes that are set together or not at all
    /// (terraform-plugin-framework's `RequiredTogether`).
    pub required_together: Vec<Vec<String>>,
}

/// One attribute of a block.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub deprecated: bool,
    /// The planned value when the configuration leaves the attribute null.
    /// Requires optional + computed (set by [`Attribute::default_value`]).
    pub default: Option<Value>,
    /// A change of this attribute forces replacing the object.
    pub requires_replace: bool,
    /// For computed attributes: keep the prior value on updates instead of
    /// planning it as unknown (terraform-plugin-framework's `UseStateForUnknown`).
    pub stable: bool,
    /// Checks a known, non-null value (the attribute's grammar; run by
    /// [`Block::validate`], as terraform-plugin-framework runs an
    /// attribute's `Validators`).
    pub validator: Option<Validator>,
    /// How documentation describes the default, when the value itself does
    /// not say it (e.g. "the provider's version").
    pub default_doc: Option<String>,
}

/// An attribute's check of a known, non-null value: `Err` says what is
/// wrong, at a path relative to the attribute (e.g. a list index).
pub type Validator = fn(&Value) -> Result<(), AttrError>;

/// Why a value does not fit an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    /// Where inside the attribute's value (empty: the value itself).
    pub at: Vec<crate::diag::PathStep>,
    /// What is wrong, as a sentence for the user.
    pub message: String,
}

impl AttrError {
    /// An error about the value itself.
    pub fn new(message: impl Into<String>) -> AttrError {
        AttrError {
            at: Vec::new(),
            message: message.into(),
        }
    }

    /// This error, one step further in (e.g. element `i` of a list).
    pub fn inside(mut self, step: crate::diag::PathStep) -> AttrError {
        self.at.insert(0, step);
        self
    }

    /// The full path of this error below the attribute at `base`.
    pub fn path(&self, base: &AttributePath) -> AttributePath {
        let mut p = base.clone();
        p.0.extend(self.at.iter().cloned());
        p
    }
}

impl Attribute {
    /// An attribute of no presence yet (set `required`, `optional` or
    /// `computed`; the constructors below do).
    pub fn new(name: &str, ty: Type) -> Attribute {
        Attribute {
            name: name.to_string(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            deprecated: false,
            default: None,
            requires_replace: false,
            stable: false,
            validator: None,
            default_doc: None,
        }
    }

    /// An attribute the configuration must set.
    pub fn required(name: &str, ty: Type) -> Attribute {
        Attribute {
            required: true,
            ..Attribute::new(name, ty)
        }
    }

    /// An attribute the configuration may set.
    pub fn optional(name: &str, ty: Type) -> Attribute {
        Attribute {
            optional: true,
            ..Attribute::new(name, ty)
        }
    }

    /// An attribute only the provider sets.
    pub fn computed(name: &str, ty: Type) -> Attribute {
        Attribute {
            computed: true,
            ..Attribute::new(name, ty)
        }
    }

    /// Sets the description shown in documentation and language servers.
    pub fn description(mut self, text: impl Into<String>) -> Attribute {
        self.description = text.into();
        self
    }

    /// Makes the attribute optional with `value` planned when it is not set
    /// (this makes it optional + computed, as Terraform requires).
    pub fn default_value(mut self, value: impl Into<Value>) -> Attribute {
        self.optional = true;
        self.required = false;
        self.computed = true;
        self.default = Some(value.into());
        self
    }

    /// Marks the value as sensitive (hidden in plan output).
    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    /// A change forces replacement of the object.
    pub fn requires_replace(mut self) -> Attribute {
        self.requires_replace = true;
        self
    }

    /// Keep the prior value of this computed attribute on updates.
    pub fn stable(mut self) -> Attribute {
        self.stable = true;
        self
    }

    /// Checks known values with `check` at validate time.
    pub fn validator(mut self, check: Validator) -> Attribute {
        self.validator = Some(check);
        self
    }

    /// Describes the default in documentation.
    pub fn default_doc(mut self, text: impl Into<String>) -> Attribute {
        self.default_doc = Some(text.into());
        self
    }

    fn to_proto(&self) -> pb::schema::Attribute {
        pb::schema::Attribute {
            name: self.name.clone(),
            r#type: self.ty.to_json().into_bytes(),
            nested_type: None,
            description: self.description.clone(),
            required: self.required,
            optional: self.optional,
            computed: self.computed,
            sensitive: self.sensitive,
            description_kind: pb::StringKind::Plain as i32,
            deprecated: self.deprecated,
        }
    }
}

/// How a nested block type may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; absent means null.
    Single,
    /// Exactly one block, never null (absent means all attributes null).
    Group,
    /// A list of blocks (an empty list when absent).
    List,
    /// A set of blocks (an empty set when absent).
    Set,
    /// Labelled blocks, keyed by label.
    Map,
}

/// A nested block type inside a [`Block`].
#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    /// A nested block of the given nesting mode, with no item limits.
    pub fn new(name: &str, nesting: Nesting, block: Block) -> NestedBlock {
        NestedBlock {
            name: name.to_string(),
            nesting,
            block,
            min_items: 0,
            max_items: 0,
        }
    }

    /// Requires at least one block (for [`Nesting::Single`]: exactly one).
    pub fn required(mut self) -> NestedBlock {
        self.min_items = 1;
        if self.nesting == Nesting::Single {
            self.max_items = 1;
        }
        self
    }

    /// The cty type of this block type's value in its parent object.
    pub fn implied_type(&self) -> Type {
        let inner = self.block.implied_type();
        match self.nesting {
            Nesting::Single | Nesting::Group => inner,
            Nesting::List => Type::list(inner),
            Nesting::Set => Type::set(inner),
            Nesting::Map => Type::map(inner),
        }
    }

    fn to_proto(&self) -> pb::schema::NestedBlock {
        use pb::schema::nested_block::NestingMode;
        pb::schema::NestedBlock {
            type_name: self.name.clone(),
            block: Some(self.block.to_proto(0)),
            nesting: match self.nesting {
                Nesting::Single => NestingMode::Single,
                Nesting::Group => NestingMode::Group,
                Nesting::List => NestingMode::List,
                Nesting::Set => NestingMode::Set,
                Nesting::Map => NestingMode::Map,
            } as i32,
            min_items: self.min_items,
            max_items: self.max_items,
        }
    }
}

impl Block {
    /// An empty block with a description.
    pub fn new(description: impl Into<String>) -> Block {
        Block {
            description: description.into(),
            ..Block::default()
        }
    }

    /// Adds an attribute.
    pub fn attribute(mut self, a: Attribute) -> Block {
        self.attributes.push(a);
        self
    }

    /// Adds a nested block type.
    pub fn block(mut self, b: NestedBlock) -> Block {
        self.blocks.push(b);
        self
    }

    /// Requires `names` to be set together or not at all.
    pub fn required_together(mut self, names: &[&str]) -> Block {
        self.required_together
            .push(names.iter().map(|n| (*n).to_string()).collect());
        self
    }

    /// This block with another description.
    pub fn with_description(mut self, text: impl Into<String>) -> Block {
        self.description = text.into();
        self
    }

    /// Checks a configuration value of this block at `base`: each known,
    /// non-null attribute with its validator, each required-together group,
    /// then the single nested blocks the same way. Unknown values are not
    /// judged (Terraform validates again once they are known). Diagnostics
    /// read "Invalid <path>" and point at the attribute.
    pub fn validate(
        &self,
        value: &Value,
        base: &AttributePath,
        diags: &mut crate::diag::Diagnostics,
    ) {
        use crate::diag::Diagnostic;
        let Value::Object(attrs) = value else { return };
        let get = |name: &str| attrs.get(name).unwrap_or(&Value::Null);
        for a in &self.attributes {
            let v = get(&a.name);
            if v.is_null() || !v.is_wholly_known() {
                continue;
            }
            if let Some(check) = a.validator
                && let Err(e) = check(v)
            {
                let path = base.clone().and_attr(&a.name);
                diags.push(
                    Diagnostic::error(format!("Invalid {}", dotted(&path)), e.message.clone())
                        .at(e.path(&path)),
                );
            }
        }
        for group in &self.required_together {
            let set: Vec<&String> = group.iter().filter(|n| !get(n).is_null()).collect();
            let missing: Vec<&String> = group.iter().filter(|n| get(n).is_null()).collect();
            if set.is_empty() || missing.is_empty() {
                continue;
            }
            let at = |n: &str| base.clone().and_attr(n);
            for m in missing {
                diags.push(
                    Diagnostic::error(
                        format!("Missing {}", dotted(&at(m))),
                        format!(
                            "{} is set, so {} must be set too (all of {} or none).",
                            dotted(&at(set[0])),
                            dotted(&at(m)),
                            group
                                .iter()
                                .map(|n| dotted(&at(n)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .at(at(set[0])),
                );
            }
        }
        for b in &self.blocks {
            if matches!(b.nesting, Nesting::Single | Nesting::Group) {
                b.block
                    .validate(get(&b.name), &base.clone().and_attr(&b.name), diags);
            }
        }
    }

    /// A value of this block holding every default, null elsewhere; single
    /// nested blocks hold their own defaults. What an import starts from.
    pub fn defaults(&self) -> Value {
        let mut v = self.empty_value();
        if let Value::Object(m) = &mut v {
            for a in &self.attributes {
                if let Some(d) = &a.default {
                    m.insert(a.name.clone(), d.clone());
                }
            }
            for b in &self.blocks {
                if matches!(b.nesting, Nesting::Single | Nesting::Group) {
                    m.insert(b.name.clone(), b.block.defaults());
                }
            }
        }
        v
    }

    /// The attribute called `name`.
    pub fn get_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The nested block type called `name`.
    pub fn get_block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// The cty object type of a value of this block: every attribute plus
    /// one entry per nested block type.
    pub fn implied_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            attrs.insert(b.name.clone(), b.implied_type());
        }
        Type::Object(attrs)
    }

    /// A value of this block with every attribute null and every nested
    /// block type empty (lists, sets, maps) or null (single).
    pub fn empty_value(&self) -> Value {
        let mut m: BTreeMap<String, Value> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        for b in &self.blocks {
            let v = match b.nesting {
                Nesting::Single => Value::Null,
                Nesting::Group => b.block.empty_value(),
                Nesting::List => Value::List(vec![]),
                Nesting::Set => Value::Set(vec![]),
                Nesting::Map => Value::Map(BTreeMap::new()),
            };
            m.insert(b.name.clone(), v);
        }
        Value::Object(m)
    }

    pub(crate) fn to_proto(&self, version: i64) -> pb::schema::Block {
        pb::schema::Block {
            version,
            attributes: self.attributes.iter().map(Attribute::to_proto).collect(),
            block_types: self.blocks.iter().map(NestedBlock::to_proto).collect(),
            description: self.description.clone(),
            description_kind: pb::StringKind::Plain as i32,
            deprecated: self.deprecated,
        }
    }

    /// Paths of attributes marked [`Attribute::requires_replace`], through
    /// single and group nested blocks.
    pub fn requires_replace_paths(&self) -> Vec<AttributePath> {
        let mut out = Vec::new();
        self.collect_replace(&AttributePath::default(), &mut out);
        out
    }

    fn collect_replace(&self, base: &AttributePath, out: &mut Vec<AttributePath>) {
        for a in &self.attributes {
            if a.requires_replace {
                out.push(base.clone().and_attr(&a.name));
            }
        }
        for b in &self.blocks {
            if matches!(b.nesting, Nesting::Single | Nesting::Group) {
                b.block
                    .collect_replace(&base.clone().and_attr(&b.name), out);
            }
        }
    }

    /// Checks the rules Terraform (≥ 1.1) enforces on schemas, plus the
    /// framework's own (defaults must be optional + computed and fit the
    /// type). Returns one message per problem.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.check_into("", &mut problems);
        problems
    }

    fn check_into(&self, prefix: &str, problems: &mut Vec<String>) {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.attributes {
            let at = format!("{prefix}{}", a.name);
            if !valid_name(&a.name) {
                problems.push(format!("{at}: name must match [a-z0-9_]+"));
            }
            if !seen.insert(a.name.clone()) {
                problems.push(format!("{at}: declared twice"));
            }
            if !(a.required || a.optional || a.computed) {
                problems.push(format!("{at}: must be required, optional or computed"));
            }
            if a.required && (a.optional || a.computed) {
                problems.push(format!(
                    "{at}: required cannot be combined with optional or computed"
                ));
            }
            if let Some(d) = &a.default {
                if !(a.optional && a.computed) {
                    problems.push(format!("{at}: a default needs optional + computed"));
                }
                if let Err(e) = encode_msgpack(d, &a.ty) {
                    problems.push(format!("{at}: default does not fit the type: {e}"));
                }
            }
            if a.stable && !a.computed {
                problems.push(format!("{at}: only computed attributes can be stable"));
            }
        }
        for b in &self.blocks {
            let at = format!("{prefix}{}", b.name);
            if !valid_name(&b.name) {
                problems.push(format!("{at}: name must match [a-z0-9_]+"));
            }
            if !seen.insert(b.name.clone()) {
                problems.push(format!("{at}: declared twice"));
            }
            match b.nesting {
                Nesting::Single if b.min_items > 1 || b.max_items > 1 => {
                    problems.push(format!("{at}: single blocks have min/max items 0 or 1"));
                }
                Nesting::Group if b.min_items != 0 || b.max_items != 0 => {
                    problems.push(format!("{at}: group blocks have no min/max items"));
                }
                _ => {}
            }
            b.block.check_into(&format!("{at}."), problems);
        }
    }
}

/// `dolt.port`: a path's attribute names joined with dots (indices and keys
/// left out), as a heading names an attribute.
pub fn dotted(path: &AttributePath) -> String {
    path.0
        .iter()
        .filter_map(|s| match s {
            crate::diag::PathStep::Attribute(n) => Some(n.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl Schema {
    /// A schema at version 0.
    pub fn new(block: Block) -> Schema {
        Schema { version: 0, block }
    }

    /// This schema with another state version.
    pub fn with_version(mut self, version: i64) -> Schema {
        self.version = version;
        self
    }

    /// The cty type of a value of this schema.
    pub fn implied_type(&self) -> Type {
        self.block.implied_type()
    }

    pub(crate) fn to_proto(&self) -> pb::Schema {
        pb::Schema {
            version: self.version,
            block: Some(self.block.to_proto(self.version)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::new(
            Block::new("thing")
                .attribute(Attribute::required("name", Type::String).requires_replace())
                .attribute(Attribute::optional("tags", Type::list(Type::String)))
                .attribute(Attribute::optional("size", Type::Number).default_value(3))
                .attribute(Attribute::computed("id", Type::String).stable())
                .attribute(Attribute::optional("token", Type::String).sensitive())
                .block(
                    NestedBlock::new(
                        "db",
                        Nesting::Single,
                        Block::new("db").attribute(
                            Attribute::required("host", Type::String).requires_replace(),
                        ),
                    )
                    .required(),
                )
                .block(NestedBlock::new("rule", Nesting::List, Block::new("r"))),
        )
    }

    #[test]
    fn implied_type_includes_blocks() {
        let t = sample().implied_type();
        assert_eq!(
            t.to_json(),
            r#"["object",{"db":["object",{"host":"string"}],"id":"string","name":"string","rule":["list",["object",{}]],"size":"number","tags":["list","string"],"token":"string"}]"#
        );
    }

    #[test]
    fn proto_has_json_types_and_flags() {
        let p = sample().to_proto();
        let block = p.block.expect("block");
        let name = &block.attributes[0];
        assert_eq!(name.r#type, b"\"string\"");
        assert!(name.required && !name.optional && !name.computed);
        let size = &block.attributes[2];
        assert!(size.optional && size.computed);
        assert!(block.attributes[4].sensitive);
        assert_eq!(block.block_types[0].min_items, 1);
        assert_eq!(block.block_types[0].max_items, 1);
    }

    #[test]
    fn replace_paths_go_through_single_blocks() {
        let paths: Vec<String> = sample()
            .block
            .requires_replace_paths()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths, vec!["name", "db.host"]);
    }

    #[test]
    fn check_finds_problems() {
        assert!(
            sample().block.check().is_empty(),
            "{:?}",
            sample().block.check()
        );
        let bad = Block::new("")
            .attribute(Attribute::required("Bad-Name", Type::String))
            .attribute(Attribute {
                default: Some(Value::Bool(true)),
                ..Attribute::optional("x", Type::String)
            })
            .attribute(Attribute {
                optional: false,
                ..Attribute::optional("y", Type::String)
            });
        let problems = bad.check();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn empty_value_has_every_key() {
        let v = sample().block.empty_value();
        assert_eq!(v.get_attr("rule"), Some(&Value::List(vec![])));
        assert_eq!(v.get_attr("db"), Some(&Value::Null));
        assert!(encode_msgpack(&v, &sample().implied_type()).is_ok());
    }
}
