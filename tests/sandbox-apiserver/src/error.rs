//! Upstream-shaped API errors: every failure is answered with a `metav1.Status`
//! body whose `reason`, `message`, `details` and `code` follow kube-apiserver
//! (`k8s.io/apimachinery/pkg/api/errors`, `.../util/validation/field`).

use serde_json::{Map, Value, json};

/// One `details.causes[]` entry of a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `reason` (upstream `CauseType`), e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Field path, e.g. `spec.schedule` or `.spec.schedule` for apply conflicts.
    pub field: String,
}

/// `details` of a `Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// Object name.
    pub name: String,
    /// API group (empty for core).
    pub group: String,
    /// Resource (for NotFound/AlreadyExists/Conflict) or kind (for Invalid).
    pub kind: String,
    /// UID (delete responses).
    pub uid: String,
    /// Causes.
    pub causes: Vec<Cause>,
    /// Seconds a client should wait before retrying (429/503).
    pub retry_after_seconds: Option<u64>,
}

/// A failed API request, rendered as an upstream `Status` body.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `StatusReason`, e.g. `NotFound`.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Optional details.
    pub details: Option<Box<Details>>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>, details: Option<Details>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: details.map(Box::new),
        }
    }

    /// `404 NotFound`: `cronjobs.batch "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {:?} not found", qualified(group, resource), name),
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: resource.into(),
                ..Details::default()
            }),
        )
    }

    /// `404 NotFound` for an unknown URL under the API.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(Details::default()),
        )
    }

    /// `409 AlreadyExists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", qualified(group, resource), name),
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: resource.into(),
                ..Details::default()
            }),
        )
    }

    /// `409 Conflict` for a stale resourceVersion or a failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {}",
                qualified(group, resource),
                name,
                why
            ),
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: resource.into(),
                ..Details::default()
            }),
        )
    }

    /// The usual stale-resourceVersion conflict.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `409 Conflict` from server-side apply (`FieldManagerConflict` causes).
    pub fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        Self::new(
            409,
            "Conflict",
            message,
            Some(Details {
                causes,
                ..Details::default()
            }),
        )
    }

    /// `422 Invalid`: `CronJob.batch "x" is invalid: spec.schedule: ...`.
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut msgs: Vec<String> = Vec::new();
        for e in errs {
            let m = e.to_string();
            if !msgs.contains(&m) {
                msgs.push(m);
            }
        }
        let message = match msgs.len() {
            0 => format!("{qualified_kind} {name:?} is invalid"),
            1 => format!("{qualified_kind} {name:?} is invalid: {}", msgs[0]),
            _ => format!(
                "{qualified_kind} {name:?} is invalid: [{}]",
                msgs.join(", ")
            ),
        };
        Self::new(
            422,
            "Invalid",
            message,
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: kind.into(),
                causes: errs
                    .iter()
                    .map(|e| Cause {
                        reason: e.kind.cause().into(),
                        message: e.body(),
                        field: e.field.clone(),
                    })
                    .collect(),
                ..Details::default()
            }),
        )
    }

    /// `400 BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// `403 Forbidden`.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} {:?} is forbidden: {}",
                qualified(group, resource),
                name,
                why
            ),
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: resource.into(),
                ..Details::default()
            }),
        )
    }

    /// `405 MethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(Details::default()),
        )
    }

    /// `415 UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            None,
        )
    }

    /// `500 InternalError`.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(Details {
                causes: vec![Cause {
                    reason: String::new(),
                    message: message.to_string(),
                    field: String::new(),
                }],
                ..Details::default()
            }),
        )
    }

    /// An error with an arbitrary code, used by fault injection. The reason is
    /// the one upstream uses for that code.
    pub fn with_code(code: u16, message: Option<String>) -> Self {
        let (reason, default_msg) = match code {
            400 => ("BadRequest", "injected fault: bad request"),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "injected fault: forbidden"),
            404 => ("NotFound", "injected fault: not found"),
            405 => ("MethodNotAllowed", "injected fault: method not allowed"),
            409 => ("Conflict", "injected fault: conflict"),
            410 => ("Expired", "injected fault: expired"),
            422 => ("Invalid", "injected fault: invalid"),
            429 => ("TooManyRequests", "injected fault: too many requests"),
            503 => ("ServiceUnavailable", "injected fault: service unavailable"),
            504 => ("Timeout", "injected fault: timeout"),
            _ => ("InternalError", "Internal error occurred: injected fault"),
        };
        let retry = matches!(code, 429 | 503 | 504).then_some(1);
        Self::new(
            code,
            reason,
            message.unwrap_or_else(|| default_msg.to_string()),
            Some(Details {
                retry_after_seconds: retry,
                ..Details::default()
            }),
        )
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), json!({}));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message));
        status.insert("reason".into(), json!(self.reason));
        if let Some(d) = &self.details {
            status.insert("details".into(), details_json(d));
        }
        status.insert("code".into(), json!(self.code));
        Value::Object(status)
    }
}

/// Renders `details`, omitting empty members as upstream does.
pub fn details_json(d: &Details) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("name", &d.name),
        ("group", &d.group),
        ("kind", &d.kind),
        ("uid", &d.uid),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
    if !d.causes.is_empty() {
        let causes: Vec<Value> = d
            .causes
            .iter()
            .map(|c| {
                let mut cm = Map::new();
                if !c.reason.is_empty() {
                    cm.insert("reason".into(), json!(c.reason));
                }
                if !c.message.is_empty() {
                    cm.insert("message".into(), json!(c.message));
                }
                if !c.field.is_empty() {
                    cm.insert("field".into(), json!(c.field));
                }
                Value::Object(cm)
            })
            .collect();
        m.insert("causes".into(), Value::Array(causes));
    }
    if let Some(s) = d.retry_after_seconds {
        m.insert("retryAfterSeconds".into(), json!(s));
    }
    Value::Object(m)
}

/// `cronjobs.batch` or `configmaps`.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// The kind of a field validation error (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`.
    NotSupported,
    /// `Duplicate value`.
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Too long`.
    TooLong,
}

impl FieldErrorKind {
    fn cause(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
        }
    }
}

/// A bad value as upstream prints it in `ErrorBody()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// Not printed.
    Omit,
    /// Printed quoted (`"x"`).
    Str(String),
    /// Printed bare (`-1`, `true`).
    Plain(String),
}

/// One field validation error (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Error type.
    pub kind: FieldErrorKind,
    /// Field path, e.g. `spec.jobTemplate.spec.template.spec.containers[0].name`.
    pub field: String,
    /// Offending value.
    pub value: BadValue,
    /// Detail text.
    pub detail: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: BadValue::Omit,
            detail: detail.into(),
        }
    }

    /// `Invalid value: "x": detail`.
    pub fn invalid(field: impl Into<String>, value: BadValue, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            value: BadValue::Str(value.into()),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// `Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            value: BadValue::Str(value.into()),
            detail: String::new(),
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: BadValue::Omit,
            detail: detail.into(),
        }
    }

    /// `Too long: detail`.
    pub fn too_long(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            value: BadValue::Omit,
            detail: detail.into(),
        }
    }

    /// Upstream `ErrorBody()`: the message without the field path.
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        let omit = matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if !omit {
            match &self.value {
                BadValue::Omit => {}
                BadValue::Str(v) => s = format!("{s}: {v:?}"),
                BadValue::Plain(v) => s = format!("{s}: {v}"),
            }
        }
        if !self.detail.is_empty() {
            s = format!("{s}: {}", self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_shape() {
        let e = ApiError::not_found("batch", "cronjobs", "x");
        assert_eq!(
            e.to_status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"cronjobs.batch \"x\" not found","reason":"NotFound",
                "details":{"name":"x","group":"batch","kind":"cronjobs"},"code":404})
        );
    }

    #[test]
    fn invalid_message() {
        let e = ApiError::invalid(
            "batch",
            "CronJob",
            "x",
            &[FieldError::not_supported(
                "spec.jobTemplate.spec.template.spec.restartPolicy",
                "Always",
                &["OnFailure", "Never"],
            )],
        );
        assert_eq!(
            e.message,
            "CronJob.batch \"x\" is invalid: spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }
}
