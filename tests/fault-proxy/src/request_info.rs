//! What a request is (verb, resource, namespace, name), read from its
//! method, path, query and content type by the rules of kube-apiserver's
//! `RequestInfoFactory.NewRequestInfo`
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go), so that a fault
//! names requests the way RBAC and audit logs do.

use crate::faults::RequestInfo;

/// The content type of a server-side apply patch; requestinfo.go calls it a
/// `patch`, the faults call it `apply` so that a test can fail an apply
/// and not the provider's other patches.
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Subresources of a namespace that keep the resource `namespaces`
/// (requestinfo.go `namespaceSubresources`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Reads a resource request; `None` for non-resource paths (`/version`,
/// `/readyz`, discovery, `/openapi`), which faults never match.
pub fn parse(method: &str, path: &str, query: &str, content_type: &str) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    if rest.is_empty() {
        return None; // the group version's resource list
    }
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let mut rest = rest;
    if rest.first() == Some(&"watch") {
        verb = "watch";
        rest = &rest[1..];
    }
    let mut namespace = "";
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = rest[1];
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let resource = rest.first().copied().unwrap_or_default();
    let name = rest.get(1).copied().unwrap_or_default();
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    if verb == "get" && name.is_empty() {
        verb = if watch { "watch" } else { "list" };
    }
    if verb == "delete" && name.is_empty() {
        verb = "deletecollection";
    }
    if verb == "patch" && content_type.starts_with(APPLY_PATCH) {
        verb = "apply";
    }
    Some(RequestInfo {
        method: method.to_string(),
        verb: verb.to_string(),
        resource: resource.to_string(),
        // requestinfo.go: a namespace object's own name is its namespace too
        namespace: namespace.to_string(),
        name: if resource == "namespaces" && namespace == name {
            namespace.to_string()
        } else {
            name.to_string()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::{APPLY_PATCH, parse};

    fn info(method: &str, path: &str, query: &str, ct: &str) -> (String, String, String, String) {
        let r = parse(method, path, query, ct).expect("a resource request");
        (r.verb, r.resource, r.namespace, r.name)
    }

    #[test]
    fn reads_requests_as_kube_apiserver_does() {
        let s = |v: &str, r: &str, ns: &str, n: &str| {
            (v.to_string(), r.to_string(), ns.to_string(), n.to_string())
        };
        assert_eq!(
            info(
                "PATCH",
                "/apis/batch/v1/namespaces/x/cronjobs/beads-reaper",
                "fieldManager=f",
                APPLY_PATCH
            ),
            s("apply", "cronjobs", "x", "beads-reaper")
        );
        assert_eq!(
            info(
                "PATCH",
                "/apis/batch/v1/namespaces/x/cronjobs/r",
                "",
                "application/merge-patch+json"
            ),
            s("patch", "cronjobs", "x", "r")
        );
        assert_eq!(
            info("GET", "/api/v1/namespaces/x/configmaps", "", ""),
            s("list", "configmaps", "x", "")
        );
        assert_eq!(
            info("GET", "/api/v1/namespaces/x/configmaps", "watch=true", ""),
            s("watch", "configmaps", "x", "")
        );
        assert_eq!(
            info("DELETE", "/apis/apps/v1/namespaces/x/deployments/d", "", ""),
            s("delete", "deployments", "x", "d")
        );
        assert_eq!(
            info("DELETE", "/apis/apps/v1/namespaces/x/deployments", "", ""),
            s("deletecollection", "deployments", "x", "")
        );
        assert_eq!(
            info("GET", "/api/v1/namespaces/x", "", ""),
            s("get", "namespaces", "x", "x")
        );
        assert_eq!(
            info("PUT", "/api/v1/namespaces/x/finalize", "", ""),
            s("update", "namespaces", "x", "x")
        );
        assert_eq!(
            info("POST", "/api/v1/namespaces", "", ""),
            s("create", "namespaces", "", "")
        );
        assert!(parse("GET", "/apis/batch/v1", "", "").is_none());
        assert!(parse("GET", "/readyz", "", "").is_none());
        assert!(parse("GET", "/openapi/v3/apis/batch/v1", "", "").is_none());
    }
}
