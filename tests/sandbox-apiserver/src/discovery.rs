//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/{group}[/{version}]`) and a minimal OpenAPI v3 (enough for kubectl
//! to learn that the server validates fields itself). OpenAPI v2 is not
//! served (404), which kubectl tolerates.

use serde_json::{Value, json};

use crate::resources::{self, GROUP_VERSIONS, ResourceType};

/// The Kubernetes version this server claims.
pub const MAJOR: &str = "1";
/// Minor version.
pub const MINOR: &str = "33";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-sandbox"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_json(group: &str) -> Value {
    let versions: Vec<Value> = GROUP_VERSIONS
        .iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let mut groups: Vec<&str> = GROUP_VERSIONS
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups.into_iter().map(group_json).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, or `None` when the group is not served.
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() || !GROUP_VERSIONS.iter().any(|(g, _)| *g == group) {
        return None;
    }
    let mut g = group_json(group);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

fn verbs(res: &ResourceType) -> Vec<&'static str> {
    if res.namespaced {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    } else {
        vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    }
}

/// `/api/v1` or `/apis/{group}/{version}`, or `None` when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if !GROUP_VERSIONS
        .iter()
        .any(|(g, v)| *g == group && *v == version)
    {
        return None;
    }
    let mut list = Vec::new();
    for r in resources::in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if let Some(m) = entry.as_object_mut() {
            if !r.short_names.is_empty() {
                m.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                m.insert("categories".into(), json!(r.categories));
            }
        }
        list.push(entry);
        if r.kind == "Deployment" {
            list.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_status {
            list.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per served group/version.
pub fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in GROUP_VERSIONS {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=SANDBOX{}", p.len())}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

/// `/openapi/v3/{api/v1|apis/g/v}`: the PATCH operations with their GVK and
/// query parameters (no schemas).
pub fn openapi_v3_group_version(path: &str) -> Option<Value> {
    let (group, version) = GROUP_VERSIONS
        .iter()
        .find(|(g, v)| gv_path(g, v) == path)
        .copied()?;
    let mut paths = serde_json::Map::new();
    for r in resources::in_group_version(group, version) {
        let base = format!("/{}", gv_path(group, version));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |action: &str, params: Vec<Value>| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk.clone(),
            })
        };
        paths.insert(
            item,
            json!({
                "get": op("get", vec![]),
                "put": op("put", vec![param("dryRun", "string"), param("fieldManager", "string"), param("fieldValidation", "string")]),
                "patch": op("patch", vec![
                    param("dryRun", "string"),
                    param("fieldManager", "string"),
                    param("fieldValidation", "string"),
                    param("force", "boolean"),
                ]),
                "delete": op("delete", vec![param("dryRun", "string")]),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{MAJOR}.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_v1_lists_cronjobs_and_status() {
        let l = resource_list("batch", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["cronjobs", "cronjobs/status"]);
        assert!(resource_list("batch", "v2").is_none());
        assert_eq!(api_group_list()["groups"].as_array().unwrap().len(), 2);
    }
}
