//! The generic planning rules (docs/terraform-plugin-protocol.md §4.5),
//! applied to every resource before its own [`Resource::modify_plan`] hook.
//!
//! [`Resource::modify_plan`]: super::Resource::modify_plan

use crate::diag::{AttributePath, Diagnostics, PathStep};
use crate::schema::{Block, Nesting, Schema};
use crate::value::Value;

use super::DynResource;

/// What a resource's plan hook sees and may change.
#[derive(Debug)]
pub struct PlanContext<'a> {
    prior: &'a Value,
    config: &'a Value,
    /// The plan so far; the hook may change computed attributes.
    pub planned: Value,
    /// Extra paths whose change forces replacement (besides the schema's).
    pub requires_replace: Vec<AttributePath>,
    /// Problems found while planning.
    pub diags: Diagnostics,
}

impl<'a> PlanContext<'a> {
    /// Whether this plan creates the object (there is no prior state).
    pub fn is_create(&self) -> bool {
        self.prior.is_null()
    }

    /// The prior state (null on create).
    pub fn prior(&self) -> &'a Value {
        self.prior
    }

    /// The configuration (may contain unknowns).
    pub fn config(&self) -> &'a Value {
        self.config
    }

    /// Whether top-level attribute `name` differs between prior and plan.
    pub fn changed(&self, name: &str) -> bool {
        self.prior.get_attr(name) != self.planned.get_attr(name)
    }

    /// Plans top-level attribute `name` as unknown ("known after apply").
    /// Only valid for computed attributes that are null in configuration.
    pub fn set_unknown(&mut self, name: &str) {
        if let Some(v) = self.planned.get_attr_mut(name) {
            *v = Value::Unknown;
        }
    }
}

/// The result of planning.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diags: Diagnostics,
}

/// Plans a change of `resource` from `prior` to `proposed` (both already
/// decoded with the schema's type).
///
/// * destroy (proposed null) plans null;
/// * attributes with a default that are null in config plan the default;
/// * on create, computed attributes null in config plan as unknown;
/// * on update, if anything changed, computed attributes null in config
///   plan as unknown unless marked stable; if nothing changed, the plan is
///   exactly the prior state;
/// * requires-replace paths come from the schema (when they exist in the
///   values) plus whatever the resource's hook adds.
pub fn plan(
    resource: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
) -> PlanOutcome {
    if proposed.is_null() {
        return PlanOutcome {
            planned: Value::Null,
            requires_replace: vec![],
            diags: Diagnostics::new(),
        };
    }
    let mut planned = proposed.clone();
    apply_defaults(&schema.block, config, &mut planned);
    let create = prior.is_null();
    if create || planned != *prior {
        mark_computed_unknown(&schema.block, config, &mut planned, create);
    }
    let mut ctx = PlanContext {
        prior,
        config,
        planned,
        requires_replace: Vec::new(),
        diags: Diagnostics::new(),
    };
    resource.modify_plan(&mut ctx);
    let PlanContext {
        mut planned,
        requires_replace: extra,
        diags,
        ..
    } = ctx;
    if !create && planned == *prior {
        planned = prior.clone();
    }
    let mut requires_replace = Vec::new();
    if !create {
        for p in schema
            .block
            .requires_replace_paths()
            .into_iter()
            .chain(extra)
        {
            if (resolves(prior, &p) || resolves(&planned, &p)) && !requires_replace.contains(&p) {
                requires_replace.push(p);
            }
        }
    }
    PlanOutcome {
        planned,
        requires_replace,
        diags,
    }
}

/// Whether `path` names something inside `v` (not through a null).
fn resolves(v: &Value, path: &AttributePath) -> bool {
    let mut cur = v;
    for step in &path.0 {
        let next = match (step, cur) {
            (PathStep::Attribute(n), v) => v.get_attr(n),
            (PathStep::Key(k), Value::Map(m)) => m.get(k),
            (PathStep::Index(i), v) => v
                .as_elements()
                .and_then(|e| usize::try_from(*i).ok().and_then(|i| e.get(i))),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

/// Walks nested blocks of `planned` alongside `config`, calling `f` on each
/// block object. Set elements cannot be matched to config; they are passed
/// themselves as their config (a set element's proposed value is its config).
fn walk_blocks(
    block: &Block,
    config: &Value,
    planned: &mut Value,
    f: &mut dyn FnMut(&Block, &Value, &mut Value),
) {
    if !matches!(planned, Value::Object(_)) {
        return;
    }
    f(block, config, planned);
    for nb in &block.blocks {
        let cfg = config.get_attr(&nb.name).cloned().unwrap_or(Value::Null);
        let Some(pv) = planned.get_attr_mut(&nb.name) else {
            continue;
        };
        match (nb.nesting, pv) {
            (Nesting::Single | Nesting::Group, pv) => walk_blocks(&nb.block, &cfg, pv, f),
            (Nesting::List, Value::List(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let c = cfg
                        .as_elements()
                        .and_then(|e| e.get(i))
                        .cloned()
                        .unwrap_or(Value::Null);
                    walk_blocks(&nb.block, &c, item, f);
                }
            }
            (Nesting::Set, Value::Set(items)) => {
                for item in items.iter_mut() {
                    let c = item.clone();
                    walk_blocks(&nb.block, &c, item, f);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (k, item) in items.iter_mut() {
                    let c = match &cfg {
                        Value::Map(m) => m.get(k).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    walk_blocks(&nb.block, &c, item, f);
                }
            }
            _ => {}
        }
    }
}

fn config_is_null(config: &Value, name: &str) -> bool {
    // An unknown or null containing object means the attribute is not set to
    // a known value; an unknown attribute is *not* null (it will be set).
    match config {
        Value::Object(_) | Value::Dynamic(..) => config.get_attr(name).is_none_or(Value::is_null),
        Value::Unknown => false,
        _ => true,
    }
}

/// Plans each default for attributes that are null in configuration.
pub fn apply_defaults(block: &Block, config: &Value, planned: &mut Value) {
    walk_blocks(block, config, planned, &mut |b, cfg, pv| {
        for a in &b.attributes {
            if let Some(d) = &a.default
                && config_is_null(cfg, &a.name)
                && let Some(slot) = pv.get_attr_mut(&a.name)
            {
                *slot = d.clone();
            }
        }
    });
}

/// Plans computed attributes that are null in configuration as unknown
/// (all of them on create; on update those not marked stable).
pub fn mark_computed_unknown(block: &Block, config: &Value, planned: &mut Value, create: bool) {
    walk_blocks(block, config, planned, &mut |b, cfg, pv| {
        for a in &b.attributes {
            if a.computed
                && a.default.is_none()
                && (create || !a.stable)
                && config_is_null(cfg, &a.name)
                && let Some(slot) = pv.get_attr_mut(&a.name)
            {
                *slot = Value::Unknown;
            }
        }
    });
}
