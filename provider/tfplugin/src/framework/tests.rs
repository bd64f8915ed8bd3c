//! Tests of the generic protocol rules through the gRPC service methods
//! (called directly, without a network).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Request;

use super::*;
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider as _;
use crate::schema::{Attribute, NestedBlock, Nesting};
use crate::value::{Type, decode_msgpack, encode_msgpack};

#[derive(Debug, Clone, PartialEq)]
struct Thing {
    name: String,
    size: Option<i64>,
    id: Option<String>,
    revision: Option<i64>,
    host: Option<String>,
}

/// A validator for the tests: a number above zero.
fn positive(v: &Value) -> Result<(), crate::schema::AttrError> {
    match v.as_number().and_then(|n| n.as_i64()) {
        Some(n) if n > 0 => Ok(()),
        _ => Err(crate::schema::AttrError::new("must be above zero")),
    }
}

// Written by hand (not derived): the framework must work for any Model.
impl Model for Thing {
    fn block() -> Block {
        Block::new("A thing.")
            .attribute(Attribute::required("name", Type::String).requires_replace())
            .attribute(
                Attribute::optional("size", Type::Number)
                    .default_value(3)
                    .validator(positive),
            )
            .attribute(Attribute::computed("id", Type::String).stable())
            .attribute(Attribute::computed("revision", Type::Number))
            .block(
                NestedBlock::new(
                    "db",
                    Nesting::Single,
                    Block::new("db").attribute(Attribute::required("host", Type::String)),
                )
                .required(),
            )
    }
    fn from_value_at(v: &Value, path: &crate::diag::AttributePath) -> Result<Thing, ModelError> {
        let o = Obj::at(v, path)?;
        let db_path = o.path_of("db");
        let db = Obj::at(o.raw("db"), &db_path)?;
        Ok(Thing {
            name: o.string("name")?,
            size: o.opt_i64("size")?,
            id: o.opt_string("id")?,
            revision: o.opt_i64("revision")?,
            host: db.opt_string("host")?,
        })
    }
    fn to_value(&self) -> Value {
        ObjBuilder::new()
            .set("name", self.name.as_str())
            .set("size", self.size)
            .set("id", self.id.clone())
            .set("revision", self.revision)
            .set(
                "db",
                ObjBuilder::new().set("host", self.host.clone()).build(),
            )
            .build()
    }
}

#[derive(Default)]
struct Things {
    store: Mutex<BTreeMap<String, Thing>>,
    counter: AtomicI64,
    /// When set, `create` returns this size instead of the planned one.
    wrong_size: Option<i64>,
}

#[tonic::async_trait]
impl Resource for Things {
    type State = Thing;
    fn type_name(&self) -> &'static str {
        "test_thing"
    }
    fn schema(&self) -> Schema {
        Schema::new(Thing::block()).with_version(1)
    }
    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Ok(o) = Obj::new(config)
            && let Ok(Field::Known(n)) = o.string_field("name")
            && n.contains(' ')
        {
            diags.error_at(o.path_of("name"), "Invalid name", "no spaces");
        }
    }
    async fn create(&self, ctx: &Ctx, mut t: Thing) -> Result<Thing, Diagnostics> {
        if t.name == "slow" {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if t.name == "half" {
            // Writes part of the object, then hangs until cancelled.
            t.id = Some("id-half".into());
            t.revision = Some(-1);
            ctx.writing(&t);
            self.store
                .lock()
                .expect("lock")
                .insert(t.name.clone(), t.clone());
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        t.id = Some(format!("id-{}", t.name));
        t.revision = Some(self.counter.fetch_add(1, Ordering::SeqCst));
        if let Some(s) = self.wrong_size {
            t.size = Some(s);
        }
        self.store
            .lock()
            .expect("lock")
            .insert(t.name.clone(), t.clone());
        Ok(t)
    }
    async fn read(&self, _ctx: &Ctx, t: Thing) -> Result<Option<Thing>, Diagnostics> {
        Ok(self.store.lock().expect("lock").get(&t.name).cloned())
    }
    async fn update(&self, ctx: &Ctx, _prior: Thing, planned: Thing) -> Result<Thing, Diagnostics> {
        Resource::create(self, ctx, planned).await
    }
    async fn delete(&self, _ctx: &Ctx, t: Thing) -> Result<(), Diagnostics> {
        self.store.lock().expect("lock").remove(&t.name);
        Ok(())
    }
    async fn import(&self, _ctx: &Ctx, id: &str) -> Result<Thing, Diagnostics> {
        Ok(Thing {
            name: id.into(),
            size: None,
            id: Some(id.into()),
            revision: Some(0),
            host: None,
        })
    }
    fn upgrade_state(&self, version: i64, raw: &[u8]) -> Result<Thing, Diagnostics> {
        // Version 0 stored the name as "title".
        assert_eq!(version, 0);
        let t = Type::object([("title", Type::String)]);
        let v = crate::value::decode_json(raw, &t, crate::value::JsonOptions::default())
            .map_err(|e| Diagnostics::from(Diagnostic::error("bad", e.to_string())))?;
        let name = v
            .get_attr("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Thing {
            name,
            size: Some(3),
            id: Some("old".into()),
            revision: Some(0),
            host: Some("h".into()),
        })
    }
}

struct TestProvider(Arc<Things>);

#[tonic::async_trait]
impl Provider for TestProvider {
    fn schema(&self) -> Block {
        Block::new("test provider")
            .attribute(Attribute::optional("workers", Type::Number).validator(positive))
    }
    fn resources(&self) -> Vec<Arc<dyn DynResource>> {
        vec![self.0.clone()]
    }
}

fn service() -> ProviderService {
    ProviderService::new(TestProvider(Arc::new(Things::default())))
}

fn ty() -> Type {
    Resource::schema(&Things::default()).implied_type()
}

fn dv(v: &Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: encode_msgpack(v, &ty()).expect("encodes"),
        json: vec![],
    })
}

fn val(d: &Option<pb::DynamicValue>) -> Value {
    decode_msgpack(
        d.as_ref().map(|d| d.msgpack.as_slice()).unwrap_or_default(),
        &ty(),
    )
    .expect("decodes")
}

fn config(name: &str, size: Option<i64>) -> Value {
    Value::object([
        ("name", Value::string(name)),
        ("size", size.map_or(Value::Null, Value::int)),
        ("id", Value::Null),
        ("revision", Value::Null),
        ("db", Value::object([("host", Value::string("h"))])),
    ])
}

async fn plan_rpc(
    s: &ProviderService,
    prior: &Value,
    proposed: &Value,
    cfg: &Value,
) -> pb::plan_resource_change::Response {
    s.plan_resource_change(Request::new(pb::plan_resource_change::Request {
        type_name: "test_thing".into(),
        prior_state: dv(prior),
        proposed_new_state: dv(proposed),
        config: dv(cfg),
        prior_private: b"secret-private".to_vec(),
        provider_meta: None,
    }))
    .await
    .expect("rpc")
    .into_inner()
}

async fn apply_rpc(
    s: &ProviderService,
    prior: &Value,
    planned: &Value,
) -> pb::apply_resource_change::Response {
    s.apply_resource_change(Request::new(pb::apply_resource_change::Request {
        type_name: "test_thing".into(),
        prior_state: dv(prior),
        planned_state: dv(planned),
        config: dv(&Value::Null),
        planned_private: b"p".to_vec(),
        provider_meta: None,
    }))
    .await
    .expect("rpc")
    .into_inner()
}

#[tokio::test]
async fn schema_response_is_complete() {
    let s = service();
    assert!(s.schema_problems().is_empty(), "{:?}", s.schema_problems());
    let r = s
        .get_provider_schema(Request::new(pb::get_provider_schema::Request {}))
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        r.provider.and_then(|p| p.block).is_some(),
        "provider block must never be nil"
    );
    let thing = &r.resource_schemas["test_thing"];
    assert_eq!(thing.version, 1);
    assert!(thing.block.is_some());
    let caps = r.server_capabilities.expect("capabilities");
    assert!(!caps.plan_destroy);
    assert!(caps.get_provider_schema_optional);
    assert!(r.diagnostics.is_empty());
    let m = s
        .get_metadata(Request::new(pb::get_metadata::Request {}))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(m.resources[0].type_name, "test_thing");
}

#[tokio::test]
async fn create_plans_defaults_and_unknown_computed() {
    let s = service();
    let cfg = config("a", None);
    let r = plan_rpc(&s, &Value::Null, &cfg, &cfg).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let planned = val(&r.planned_state);
    assert_eq!(
        planned.get_attr("size"),
        Some(&Value::int(3)),
        "default applied"
    );
    assert_eq!(planned.get_attr("id"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("revision"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("name"), Some(&Value::string("a")));
    assert!(r.requires_replace.is_empty(), "ignored on create anyway");
    assert_eq!(r.planned_private, b"secret-private", "private echoed");
}

#[tokio::test]
async fn unchanged_plan_equals_prior_and_changes_mark_unstable_computed_unknown() {
    let s = service();
    let prior = Value::object([
        ("name", Value::string("a")),
        ("size", Value::int(3)),
        ("id", Value::string("id-a")),
        ("revision", Value::int(7)),
        ("db", Value::object([("host", Value::string("h"))])),
    ]);
    // Proposed as Terraform builds it: config values, computed from prior.
    let proposed = prior.clone();
    let r = plan_rpc(&s, &prior, &proposed, &config("a", None)).await;
    assert_eq!(val(&r.planned_state), prior);
    assert_eq!(
        r.planned_state.expect("planned").msgpack,
        encode_msgpack(&prior, &ty()).expect("enc")
    );

    // size changes: revision (not stable) becomes unknown, id (stable) stays.
    let mut proposed = prior.clone();
    *proposed.get_attr_mut("size").expect("size") = Value::int(5);
    let r = plan_rpc(&s, &prior, &proposed, &config("a", Some(5))).await;
    let planned = val(&r.planned_state);
    assert_eq!(planned.get_attr("size"), Some(&Value::int(5)));
    assert_eq!(planned.get_attr("id"), Some(&Value::string("id-a")));
    assert_eq!(planned.get_attr("revision"), Some(&Value::Unknown));
    let paths: Vec<String> = r
        .requires_replace
        .iter()
        .map(|p| {
            format!(
                "{:?}",
                p.steps
                    .iter()
                    .map(|s| s.selector.clone())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert_eq!(paths.len(), 1, "static requires_replace list: {paths:?}");
    assert!(paths[0].contains("\"name\""));

    // Removing size from config goes back to the default.
    let mut prior5 = prior.clone();
    *prior5.get_attr_mut("size").expect("size") = Value::int(5);
    let r = plan_rpc(&s, &prior5, &prior5, &config("a", None)).await;
    assert_eq!(val(&r.planned_state).get_attr("size"), Some(&Value::int(3)));
}

#[tokio::test]
async fn destroy_plans_null() {
    let s = service();
    let prior = config("a", Some(3));
    let r = plan_rpc(&s, &prior, &Value::Null, &Value::Null).await;
    assert_eq!(val(&r.planned_state), Value::Null);
}

#[tokio::test]
async fn apply_create_update_delete() {
    let s = service();
    let cfg = config("a", None);
    let planned = val(&plan_rpc(&s, &Value::Null, &cfg, &cfg).await.planned_state);
    let r = apply_rpc(&s, &Value::Null, &planned).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.private, b"p");
    let created = val(&r.new_state);
    assert_eq!(created.get_attr("id"), Some(&Value::string("id-a")));
    assert!(created.is_wholly_known());

    let mut proposed = created.clone();
    *proposed.get_attr_mut("size").expect("size") = Value::int(9);
    let planned = val(&plan_rpc(&s, &created, &proposed, &config("a", Some(9)))
        .await
        .planned_state);
    let r = apply_rpc(&s, &created, &planned).await;
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(val(&r.new_state).get_attr("size"), Some(&Value::int(9)));

    let r = apply_rpc(&s, &val(&r.new_state), &Value::Null).await;
    assert!(r.diagnostics.is_empty());
    assert_eq!(val(&r.new_state), Value::Null, "delete returns null");
}

#[tokio::test]
async fn apply_result_differing_from_plan_is_reported() {
    let things = Things {
        wrong_size: Some(42),
        ..Things::default()
    };
    let s = ProviderService::new(TestProvider(Arc::new(things)));
    let cfg = config("a", None);
    let planned = val(&plan_rpc(&s, &Value::Null, &cfg, &cfg).await.planned_state);
    let r = apply_rpc(&s, &Value::Null, &planned).await;
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    assert!(r.diagnostics[0].summary.contains("inconsistent result"));
    let path = r.diagnostics[0].attribute.as_ref().expect("path");
    assert_eq!(
        path.steps[0].selector,
        Some(pb::attribute_path::step::Selector::AttributeName(
            "size".into()
        ))
    );
}

#[tokio::test]
async fn read_echoes_private_and_null_means_gone() {
    let s = service();
    let gone = config("nobody", Some(3));
    let r = s
        .read_resource(Request::new(pb::read_resource::Request {
            type_name: "test_thing".into(),
            current_state: dv(&gone),
            private: b"keep-me".to_vec(),
            provider_meta: None,
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.private, b"keep-me");
    assert_eq!(val(&r.new_state), Value::Null);
}

#[tokio::test]
async fn upgrade_same_version_drops_removed_attributes_and_fills_missing() {
    let s = service();
    let json = br#"{"name":"a","size":4,"id":"x","removed":true,"db":{"host":"h"}}"#;
    let r = s
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "test_thing".into(),
            version: 1,
            raw_state: Some(pb::RawState {
                json: json.to_vec(),
                flatmap: Default::default(),
            }),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let v = val(&r.upgraded_state);
    assert_eq!(v.get_attr("size"), Some(&Value::int(4)));
    assert_eq!(v.get_attr("revision"), Some(&Value::Null));

    let r = s
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "test_thing".into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: br#"{"title":"old-name"}"#.to_vec(),
                flatmap: Default::default(),
            }),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(
        val(&r.upgraded_state).get_attr("name"),
        Some(&Value::string("old-name"))
    );

    let r = s
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "test_thing".into(),
            version: 2,
            raw_state: Some(pb::RawState {
                json: b"{}".to_vec(),
                flatmap: Default::default(),
            }),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert!(r.diagnostics[0].summary.contains("newer provider"));
}

#[tokio::test]
async fn validate_reports_attribute_paths() {
    let s = service();
    let r = s
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_thing".into(),
            config: dv(&config("has space", None)),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.diagnostics.len(), 1);
    assert_eq!(
        r.diagnostics[0].severity,
        pb::diagnostic::Severity::Error as i32
    );
    assert!(r.diagnostics[0].attribute.is_some());
    let r = s
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_other".into(),
            config: None,
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert!(r.diagnostics[0].summary.contains("Unknown resource type"));
}

#[tokio::test]
async fn the_server_runs_the_schema_validators() {
    let s = service();
    let r = s
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_thing".into(),
            config: dv(&config("ok", Some(-1))),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    assert_eq!(r.diagnostics[0].summary, "Invalid size");
    assert_eq!(r.diagnostics[0].detail, "must be above zero");
    let provider_ty = Type::object([("workers", Type::Number)]);
    let r = s
        .validate_provider_config(Request::new(pb::validate_provider_config::Request {
            config: Some(pb::DynamicValue {
                msgpack: encode_msgpack(&Value::object([("workers", Value::int(0))]), &provider_ty)
                    .expect("encodes"),
                json: vec![],
            }),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    assert_eq!(r.diagnostics[0].summary, "Invalid workers");
}

#[tokio::test]
async fn import_sets_type_name() {
    let s = service();
    let r = s
        .import_resource_state(Request::new(pb::import_resource_state::Request {
            type_name: "test_thing".into(),
            id: "abc".into(),
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(r.imported_resources.len(), 1);
    assert_eq!(r.imported_resources[0].type_name, "test_thing");
    assert_eq!(
        val(&r.imported_resources[0].state).get_attr("name"),
        Some(&Value::string("abc"))
    );
}

#[tokio::test]
async fn stop_provider_cancels_work_in_flight() {
    let s = Arc::new(service());
    let cfg = config("slow", None);
    let planned = val(&plan_rpc(&s, &Value::Null, &cfg, &cfg).await.planned_state);
    let s2 = s.clone();
    let apply = tokio::spawn(async move { apply_rpc(&s2, &Value::Null, &planned).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stop = s
        .stop_provider(Request::new(pb::stop_provider::Request {}))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(stop.error, "");
    let r = tokio::time::timeout(Duration::from_secs(2), apply)
        .await
        .expect("finished")
        .expect("joined");
    assert!(
        r.diagnostics[0].summary.contains("cancelled"),
        "{:?}",
        r.diagnostics
    );
    assert_eq!(
        val(&r.new_state),
        Value::Null,
        "failed create saves nothing"
    );
}

#[tokio::test]
async fn a_cancelled_create_saves_what_the_read_back_finds_with_one_diagnostic() {
    let s = Arc::new(service());
    let cfg = config("half", None);
    let planned = val(&plan_rpc(&s, &Value::Null, &cfg, &cfg).await.planned_state);
    let s2 = s.clone();
    let apply = tokio::spawn(async move { apply_rpc(&s2, &Value::Null, &planned).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.stop_provider(Request::new(pb::stop_provider::Request {}))
        .await
        .expect("rpc");
    let r = tokio::time::timeout(Duration::from_secs(2), apply)
        .await
        .expect("finished")
        .expect("joined");
    // The read-back ran although the operation's context was cancelled.
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    assert!(r.diagnostics[0].summary.contains("cancelled"));
    let saved = val(&r.new_state);
    assert_eq!(saved.get_attr("id"), Some(&Value::string("id-half")));
    assert_eq!(saved.get_attr("revision"), Some(&Value::int(-1)));
}
