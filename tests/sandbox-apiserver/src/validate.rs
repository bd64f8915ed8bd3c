//! Validation of the served kinds, with upstream field paths and messages
//! (pkg/apis/{core,batch,apps}/validation, apimachinery validation).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{BadValue, FieldError};
use crate::resources::ResourceType;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn re(cell: &'static OnceLock<Regex>, fmt: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(&format!("^(?:{fmt})$")).unwrap_or_else(|_| unreachable!()))
}

/// Upstream `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

/// `IsDNS1123Label`: the problems with `v`, empty when valid.
pub fn dns1123_label(v: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !re(&RE, DNS1123_LABEL_FMT).is_match(v) {
        errs.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(v: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !re(&RE, DNS1123_SUBDOMAIN_FMT).is_match(v) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsQualifiedName` (label and annotation keys).
pub fn qualified_name(v: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let parts: Vec<&str> = v.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [n] => (None, *n),
        [p, n] => (Some(*p), *n),
        _ => {
            return vec![format!(
                "{} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !re(&RE, QUALIFIED_NAME_FMT).is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(v: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !re(&RE, LABEL_VALUE_FMT).is_match(v) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsConfigMapKey`.
pub fn config_map_key(v: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !re(&RE, CONFIG_MAP_KEY_FMT).is_match(v) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if v == "." {
        errs.push("must not be '.'".to_string());
    } else if v == ".." {
        errs.push("must not be '..'".to_string());
    } else if v.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

fn s(v: &str) -> BadValue {
    BadValue::Str(v.to_string())
}

fn str_at<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn int_at(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

fn non_negative(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = int_at(m, k).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            format!("{path}.{k}"),
            BadValue::Plain(n.to_string()),
            "must be greater than or equal to 0",
        ));
    }
}

/// Validates a whole object (after defaulting); `old` is set for updates.
pub fn validate(res: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let root = obj.as_object().unwrap_or(&empty);
    let meta = root
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    object_meta(res, meta, &mut errs);
    match res.kind {
        "CronJob" => cronjob(root, &mut errs),
        "Deployment" => deployment(root, old, &mut errs),
        "ConfigMap" => data_keys(root, &["data", "binaryData"], &mut errs),
        "Secret" => secret(root, old, &mut errs),
        _ => {}
    }
    if let Some(old) = old {
        immutable(res, root, old, &mut errs);
    }
    errs
}

fn object_meta(res: &ResourceType, meta: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    let name = str_at(meta, "name").unwrap_or("");
    let name_check = |v: &str| {
        if res.kind == "Namespace" {
            dns1123_label(v)
        } else {
            dns1123_subdomain(v)
        }
    };
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_check(name) {
            errs.push(FieldError::invalid("metadata.name", s(name), m));
        }
    }
    if res.kind == "CronJob" && name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            s(name),
            "must be no more than 52 characters",
        ));
    }
    labels_and_annotations(meta, "metadata", errs);
}

fn labels_and_annotations(meta: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for m in qualified_name(k) {
                errs.push(FieldError::invalid(format!("{path}.labels"), s(k), m));
            }
            match v.as_str() {
                Some(v) => {
                    for m in label_value(v) {
                        errs.push(FieldError::invalid(format!("{path}.labels"), s(v), m));
                    }
                }
                None => errs.push(FieldError::invalid(
                    format!("{path}.labels"),
                    BadValue::Plain(v.to_string()),
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            for m in qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(format!("{path}.annotations"), s(k), m));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long(
                format!("{path}.annotations"),
                format!("must have at most {} bytes", 256 * 1024),
            ));
        }
    }
}

fn cronjob(root: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = root
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // One grammar with the provider: beads_contract::cron follows
    // validateScheduleFormat (robfig/cron ParseStandard, then no TZ on create).
    let sched = str_at(spec, "schedule").unwrap_or("");
    for problem in beads_contract::cron::problems(sched) {
        errs.push(match problem {
            beads_contract::cron::ScheduleError::Required => {
                FieldError::required("spec.schedule", "")
            }
            other => FieldError::invalid("spec.schedule", s(sched), other.to_string()),
        });
    }
    if let Some(tz) = str_at(spec, "timeZone") {
        let ok = !tz.is_empty() && !tz.contains(' ') && !tz.starts_with('/') && !tz.contains("..");
        if !ok {
            errs.push(FieldError::invalid(
                "spec.timeZone",
                s(tz),
                "unknown time zone ".to_string() + tz,
            ));
        }
    }
    non_negative(spec, "startingDeadlineSeconds", "spec", errs);
    match str_at(spec, "concurrencyPolicy").unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt = spec
        .get("jobTemplate")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let js = jt.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let p = "spec.jobTemplate.spec";
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
    ] {
        non_negative(js, k, p, errs);
    }
    if js.get("selector").is_some_and(|v| !v.is_null()) {
        errs.push(FieldError::invalid(
            format!("{p}.selector"),
            BadValue::Omit,
            "`selector` will be auto-generated",
        ));
    }
    let tmpl = js
        .get("template")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    pod_template(tmpl, &format!("{p}.template"), errs);
    let pod = tmpl
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let rp = str_at(pod, "restartPolicy").unwrap_or("");
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            format!("{p}.template.spec.restartPolicy"),
            rp,
            &["OnFailure", "Never"],
        ));
    }
    non_negative(spec, "successfulJobsHistoryLimit", "spec", errs);
    non_negative(spec, "failedJobsHistoryLimit", "spec", errs);
}

fn go_map(m: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, String)> = m
        .iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map_or_else(|| v.to_string(), |s| format!("{s:?}")),
            )
        })
        .collect();
    entries.sort();
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

fn deployment(root: &Map<String, Value>, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = root
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    non_negative(spec, "replicas", "spec", errs);
    let tmpl = spec
        .get("template")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let tlabels = tmpl
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    match spec.get("selector").and_then(Value::as_object) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let ml = sel.get("matchLabels").and_then(Value::as_object);
            let me = sel.get("matchExpressions").and_then(Value::as_array);
            if ml.is_none_or(Map::is_empty) && me.is_none_or(Vec::is_empty) {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    BadValue::Plain("v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".into()),
                    "empty selector is invalid for deployment",
                ));
            } else if let Some(ml) = ml {
                let matches = ml.iter().all(|(k, v)| tlabels.get(k) == Some(v));
                if !matches {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        BadValue::Plain(go_map(tlabels)),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    pod_template(tmpl, "spec.template", errs);
    let pod = tmpl
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let rp = str_at(pod, "restartPolicy").unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if let Some(st) = spec.get("strategy").and_then(Value::as_object) {
        match str_at(st, "type").unwrap_or("") {
            "RollingUpdate" => {}
            "Recreate" => {
                if st.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "" => errs.push(FieldError::required("spec.strategy.type", "")),
            other => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    non_negative(spec, "revisionHistoryLimit", "spec", errs);
    non_negative(spec, "minReadySeconds", "spec", errs);
    if let (Some(pd), Some(mr)) = (
        int_at(spec, "progressDeadlineSeconds"),
        int_at(spec, "minReadySeconds").or(Some(0)),
    ) && pd <= mr
    {
        errs.push(FieldError::invalid(
            "spec.progressDeadlineSeconds",
            BadValue::Plain(pd.to_string()),
            "must be greater than minReadySeconds",
        ));
    }
    if let Some(old_sel) = old.and_then(|o| o.pointer("/spec/selector"))
        && spec.get("selector").is_some_and(|s| s != old_sel)
    {
        errs.push(FieldError::invalid(
            "spec.selector",
            BadValue::Plain(
                spec.get("selector")
                    .map(Value::to_string)
                    .unwrap_or_default(),
            ),
            "field is immutable",
        ));
    }
}

fn pod_template(tmpl: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    if let Some(meta) = tmpl.get("metadata").and_then(Value::as_object) {
        labels_and_annotations(meta, &format!("{path}.metadata"), errs);
    }
    let pod = tmpl
        .get("spec")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    pod_spec(pod, &format!("{path}.spec"), errs);
}

fn pod_spec(pod: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let mut volume_names: Vec<String> = Vec::new();
    if let Some(vols) = pod.get("volumes").and_then(Value::as_array) {
        for (i, v) in vols.iter().enumerate() {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            let p = format!("{path}.volumes[{i}].name");
            if name.is_empty() {
                errs.push(FieldError::required(p, ""));
            } else if volume_names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(p, name));
            } else {
                for m in dns1123_label(name) {
                    errs.push(FieldError::invalid(p.clone(), s(name), m));
                }
                volume_names.push(name.to_string());
            }
        }
    }
    let containers = pod.get("containers").and_then(Value::as_array);
    match containers {
        None => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => {
            errs.push(FieldError::required(format!("{path}.containers"), ""))
        }
        Some(cs) => containers_check(cs, &format!("{path}.containers"), &volume_names, errs),
    }
    if let Some(cs) = pod.get("initContainers").and_then(Value::as_array) {
        containers_check(cs, &format!("{path}.initContainers"), &volume_names, errs);
    }
    if let Some(rp) = str_at(pod, "restartPolicy")
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(dp) = str_at(pod, "dnsPolicy")
        && !matches!(
            dp,
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None"
        )
    {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            dp,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    non_negative(pod, "terminationGracePeriodSeconds", path, errs);
    if let Some(sa) = str_at(pod, "serviceAccountName").filter(|s| !s.is_empty()) {
        for m in dns1123_subdomain(sa) {
            errs.push(FieldError::invalid(
                format!("{path}.serviceAccountName"),
                s(sa),
                m,
            ));
        }
    }
}

fn containers_check(cs: &[Value], path: &str, volumes: &[String], errs: &mut Vec<FieldError>) {
    let mut names: Vec<&str> = Vec::new();
    let empty = Map::new();
    for (i, c) in cs.iter().enumerate() {
        let c = c.as_object().unwrap_or(&empty);
        let p = format!("{path}[{i}]");
        let name = str_at(c, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        } else {
            for m in dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{p}.name"), s(name), m));
            }
            names.push(name);
        }
        if str_at(c, "image").unwrap_or("").trim().is_empty() {
            errs.push(FieldError::required(format!("{p}.image"), ""));
        }
        if let Some(pp) = str_at(c, "imagePullPolicy")
            && !matches!(pp, "Always" | "IfNotPresent" | "Never")
        {
            errs.push(FieldError::not_supported(
                format!("{p}.imagePullPolicy"),
                pp,
                &["Always", "IfNotPresent", "Never"],
            ));
        }
        if let Some(ports) = c.get("ports").and_then(Value::as_array) {
            for (j, port) in ports.iter().enumerate() {
                let cp = port
                    .get("containerPort")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if !(1..=65535).contains(&cp) {
                    errs.push(FieldError::invalid(
                        format!("{p}.ports[{j}].containerPort"),
                        BadValue::Plain(cp.to_string()),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if let Some(proto) = port.get("protocol").and_then(Value::as_str)
                    && !matches!(proto, "TCP" | "UDP" | "SCTP")
                {
                    errs.push(FieldError::not_supported(
                        format!("{p}.ports[{j}].protocol"),
                        proto,
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
        }
        if let Some(env) = c.get("env").and_then(Value::as_array) {
            for (j, e) in env.iter().enumerate() {
                if e.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    errs.push(FieldError::required(format!("{p}.env[{j}].name"), ""));
                }
            }
        }
        if let Some(mounts) = c.get("volumeMounts").and_then(Value::as_array) {
            for (j, m) in mounts.iter().enumerate() {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.volumeMounts[{j}].name"),
                        "",
                    ));
                } else if !volumes.iter().any(|v| v == name) {
                    errs.push(FieldError {
                        kind: crate::error::FieldErrorKind::Invalid,
                        field: format!("{p}.volumeMounts[{j}].name"),
                        value: s(name),
                        detail: "volume not found".into(),
                    });
                }
                if m.get("mountPath")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    errs.push(FieldError::required(
                        format!("{p}.volumeMounts[{j}].mountPath"),
                        "",
                    ));
                }
            }
        }
    }
}

fn data_keys(root: &Map<String, Value>, fields: &[&str], errs: &mut Vec<FieldError>) {
    let mut total = 0usize;
    for f in fields {
        if let Some(data) = root.get(*f).and_then(Value::as_object) {
            for (k, v) in data {
                for m in config_map_key(k) {
                    errs.push(FieldError::invalid(format!("{f}[{k}]"), s(k), m));
                }
                total += v.as_str().map_or(0, str::len);
            }
        }
    }
    if let (Some(d), Some(b)) = (
        root.get("data").and_then(Value::as_object),
        root.get("binaryData").and_then(Value::as_object),
    ) {
        for k in d.keys().filter(|k| b.contains_key(*k)) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                s(k),
                "duplicate of key present in binaryData",
            ));
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(
            "",
            format!("must have at most {MAX_SECRET_SIZE} bytes"),
        ));
    }
}

fn secret(root: &Map<String, Value>, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    data_keys(root, &["data"], errs);
    let ty = str_at(root, "type").unwrap_or("");
    let data = root.get("data").and_then(Value::as_object);
    let need = |k: &str| data.is_none_or(|d| !d.contains_key(k));
    match ty {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if need(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        "kubernetes.io/dockerconfigjson" if need(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""));
        }
        _ => {}
    }
    if let Some(old_ty) = old.and_then(|o| o.get("type")).and_then(Value::as_str)
        && old_ty != ty
    {
        errs.push(FieldError::invalid("type", s(ty), "field is immutable"));
    }
}

fn immutable(
    res: &ResourceType,
    root: &Map<String, Value>,
    old: &Value,
    errs: &mut Vec<FieldError>,
) {
    if !matches!(res.kind, "ConfigMap" | "Secret") {
        return;
    }
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if root.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in ["data", "binaryData"] {
        if root.get(f) != old.get(f) {
            errs.push(FieldError::forbidden(
                f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{CONFIGMAPS, CRONJOBS};
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_label("abc-1").is_empty());
        assert!(!dns1123_label("Abc").is_empty());
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(label_value("").is_empty());
    }

    #[test]
    fn cronjob_errors() {
        let cj = json!({"metadata":{"name":"Bad_Name"},"spec":{"schedule":"bad","concurrencyPolicy":"Allow",
            "jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Always","containers":[]}}}}}});
        let errs = validate(&CRONJOBS, &cj, None);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "metadata.name",
                "spec.schedule",
                "spec.jobTemplate.spec.template.spec.containers",
                "spec.jobTemplate.spec.template.spec.restartPolicy"
            ]
        );
    }

    fn schedule_errors(schedule: &str) -> Vec<String> {
        let cj = json!({"metadata":{"name":"c"},"spec":{"schedule":schedule,"concurrencyPolicy":"Allow",
            "jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"c","image":"i"}]}}}}}});
        validate(&CRONJOBS, &cj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn schedules_follow_kube_apiserver() {
        assert!(schedule_errors("@every 1h").is_empty());
        assert!(schedule_errors("0 0 * * SUN").is_empty());
        assert_eq!(
            schedule_errors("0 0 * * 7"),
            vec![
                "spec.schedule: Invalid value: \"0 0 * * 7\": end of range (7) above maximum (6): 7"
            ]
        );
        assert_eq!(
            schedule_errors("CRON_TZ=UTC 0 0 * * *"),
            vec![
                "spec.schedule: Invalid value: \"CRON_TZ=UTC 0 0 * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            ]
        );
        assert_eq!(schedule_errors(""), vec!["spec.schedule: Required value"]);
    }

    #[test]
    fn configmap_key() {
        let cm = json!({"metadata":{"name":"c"},"data":{"bad key":"v"}});
        let errs = validate(&CONFIGMAPS, &cm, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
    }
}
