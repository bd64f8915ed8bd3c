//! The armed faults: the next matching request(s)
//! fail with a chosen status code.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One injected fault. Every set filter must match the request. Unknown
/// fields are refused: a misspelt `delayMs` would otherwise arm a fault
/// that answers at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// HTTP method (`PATCH`) or Kubernetes verb (`get`, `list`, `create`,
    /// `update`, `patch`, `apply`, `delete`, `watch`); case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// Resource plural, e.g. `cronjobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Status code to answer with (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
    /// How many matching requests fail (default 1; 0 = until cleared).
    #[serde(default = "default_times")]
    pub times: u32,
    /// Message for the Status body (default: upstream-like for the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Delay before answering, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Instead of answering, the server dies as a killed kube-apiserver
    /// does: this request and every open connection are closed unanswered
    /// and the port refuses connections until [`crate::Handle::restart`],
    /// which serves again: the real server behind kept its objects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub die: bool,
}

fn default_status() -> u16 {
    500
}
fn default_times() -> u32 {
    1
}

/// What a request is, for matching.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// HTTP method, upper case.
    pub method: String,
    /// Kubernetes verb.
    pub verb: String,
    /// Resource plural ("" for non-resource URLs).
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Fault {
    fn matches(&self, r: &RequestInfo) -> bool {
        let verb_ok = self
            .verb
            .as_deref()
            .is_none_or(|v| v.eq_ignore_ascii_case(&r.method) || v.eq_ignore_ascii_case(&r.verb));
        verb_ok
            && self.resource.as_deref().is_none_or(|x| x == r.resource)
            && self.namespace.as_deref().is_none_or(|x| x == r.namespace)
            && self.name.as_deref().is_none_or(|x| x == r.name)
    }
}

/// The set of armed faults.
#[derive(Debug, Default)]
pub struct Faults(Mutex<Vec<Fault>>);

impl Faults {
    /// Arms a fault.
    pub fn add(&self, f: Fault) {
        self.lock().push(f);
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The armed faults.
    pub fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Takes the first fault matching `r`, counting it down.
    pub fn take(&self, r: &RequestInfo) -> Option<Fault> {
        let mut faults = self.lock();
        let i = faults.iter().position(|f| f.matches(r))?;
        let f = faults[i].clone();
        if f.times == 1 {
            faults.remove(i);
        } else if f.times > 1 {
            faults[i].times -= 1;
        }
        Some(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Fault>(r#"{"verb":"get","delay_ms":5}"#).unwrap_err();
        assert!(err.to_string().contains("delay_ms"), "{err}");
        let f: Fault = serde_json::from_str(r#"{"verb":"get","delayMs":5}"#).unwrap();
        assert_eq!(f.delay_ms, Some(5));
    }

    #[test]
    fn counts_down() {
        let f: Fault = serde_json::from_str(
            r#"{"verb":"PATCH","resource":"cronjobs","name":"beads-reaper","status":500,"times":1}"#,
        )
        .unwrap();
        let faults = Faults::default();
        faults.add(f);
        let r = RequestInfo {
            method: "PATCH".into(),
            verb: "apply".into(),
            resource: "cronjobs".into(),
            namespace: "default".into(),
            name: "beads-reaper".into(),
        };
        assert_eq!(faults.take(&r).map(|f| f.status), Some(500));
        assert!(faults.take(&r).is_none());
    }
}
