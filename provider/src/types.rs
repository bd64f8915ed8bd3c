//! The value types of `beads_autodispatch`'s attributes. Each parses once,
//! from configuration, state or the cluster, and a value that parsed is
//! valid: the parse is the attribute's validator (see
//! [`tfplugin::framework::attr`]), the typed state holds only valid values,
//! and rendering never re-checks. The grammars themselves live in
//! [`crate::validate`] and [`beads_contract`].

use std::fmt;

use tfplugin::framework::attr::AttrValue;
use tfplugin::schema::AttrError;
use tfplugin::value::{Type, Value};

use crate::names::Names;
use crate::validate;

/// `AttrValue` for a type read from a string with `parse(&str) ->
/// Result<Self, String>` and written back with `as_str()`.
macro_rules! text_attr {
    ($name:ident) => {
        impl AttrValue for $name {
            fn ty() -> Type {
                Type::String
            }
            fn from_tf(v: &Value) -> Result<$name, AttrError> {
                $name::parse(&String::from_tf(v)?).map_err(AttrError::new)
            }
            fn to_tf(&self) -> Value {
                Value::string(self.as_str())
            }
        }
    };
}

/// A string attribute whose value must pass `$check`.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Parses `s`; `Err` says what is wrong with it.
            pub fn parse(s: &str) -> Result<$name, String> {
                $check(s).map(|()| $name(s.to_string()))
            }

            /// A value this crate knows is valid (a default; the tests
            /// check every default against its own validator).
            #[allow(dead_code)] // only the types with defaults use it
            pub(crate) fn known_valid(s: &str) -> $name {
                $name(s.to_string())
            }

            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        text_attr!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A Kubernetes namespace (DNS-1123 label).
    Namespace,
    validate::dns1123_label
);
checked_string!(
    /// The resource's `name`: a DNS-1123 label short enough for every
    /// object name made from it.
    ResourceName,
    validate::object_name
);
checked_string!(
    /// A container image repository without tag or digest.
    ImageRepository,
    validate::image_repository
);
checked_string!(
    /// An absolute http(s) URL.
    HttpUrl,
    validate::http_url
);
checked_string!(
    /// A value that is not empty or blank.
    NonBlank,
    validate::non_empty
);
checked_string!(
    /// A cron schedule in the grammar kube-apiserver accepts for CronJobs
    /// (robfig/cron `ParseStandard`, [`beads_contract::cron`]).
    CronSchedule,
    validate::cron_schedule
);
checked_string!(
    /// A Secret's name (DNS-1123 subdomain).
    SecretName,
    validate::dns1123_subdomain
);
checked_string!(
    /// A key inside a Secret.
    SecretKey,
    validate::secret_key
);
checked_string!(
    /// A beads database name, as `bd` accepts it.
    DatabaseName,
    validate::database_name
);

impl ResourceName {
    /// The names of the objects this resource name gives.
    pub fn names(&self) -> Names {
        Names::new(&self.0)
    }
}

/// An image tag (`0.1.0`) or digest (`sha256:` + 64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTag(String);

impl ImageTag {
    /// Parses a tag or digest.
    pub fn parse(s: &str) -> Result<ImageTag, String> {
        validate::image_tag(s).map(|()| ImageTag(s.to_string()))
    }

    /// The provider's own version: provider and runner releases move together.
    pub fn provider_version() -> ImageTag {
        ImageTag(env!("CARGO_PKG_VERSION").to_string())
    }

    /// The tag or digest as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full reference of `repository` at this tag: `repo:tag`, or
    /// `repo@sha256:…` for a digest.
    pub fn reference(&self, repository: &ImageRepository) -> String {
        if self.0.contains(':') {
            format!("{repository}@{}", self.0)
        } else {
            format!("{repository}:{}", self.0)
        }
    }

    /// Splits a container's image reference back into repository and tag
    /// (a reference without a tag means `latest`, as the kubelet reads it).
    pub fn split(reference: &str) -> Result<(ImageRepository, ImageTag), String> {
        let (repository, tag) = match reference.split_once('@') {
            Some((repository, digest)) => (repository, digest),
            // A colon after the last slash is a tag; one before it is a registry port.
            None => match reference.rfind(':') {
                Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
                _ => (reference, "latest"),
            },
        };
        Ok((ImageRepository::parse(repository)?, ImageTag::parse(tag)?))
    }
}

text_attr!(ImageTag);

/// A duration as operators write it (`30m`, `1h30m`, `90s`), kept as
/// written: the runner's environment gets the text, and the runner parses
/// it with the same parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
}

impl Duration {
    /// Parses with the runner's own parser, so both accept the same text.
    pub fn parse(s: &str) -> Result<Duration, String> {
        beads_contract::parse_duration(s)
            .map(|_| Duration {
                text: s.to_string(),
            })
            .map_err(|e| e.to_string())
    }

    /// The duration as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<std::time::Duration> for Duration {
    fn from(value: std::time::Duration) -> Duration {
        Duration {
            text: beads_contract::format_duration(value),
        }
    }
}

text_attr!(Duration);

/// A whole number in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Int<MIN, MAX> {
    /// Checks the range.
    pub fn new(n: i64) -> Result<Self, String> {
        validate::int_range(n, MIN, MAX).map(|()| Int(n))
    }

    /// A value this crate knows is in range (a default; the tests check
    /// every default against its own validator).
    pub(crate) const fn known_valid(n: i64) -> Self {
        Int(n)
    }
}

impl<const MIN: i64, const MAX: i64> AttrValue for Int<MIN, MAX> {
    fn ty() -> Type {
        Type::Number
    }
    fn from_tf(v: &Value) -> Result<Self, AttrError> {
        Int::new(i64::from_tf(v)?).map_err(AttrError::new)
    }
    fn to_tf(&self) -> Value {
        Value::int(self.0)
    }
}

impl<const MIN: i64, const MAX: i64> fmt::Display for Int<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A TCP port.
pub type Port = Int<1, 65535>;

/// How many beads may be in progress before dispatching pauses.
pub type MaxInFlight = Int<1, 100>;

impl Port {
    /// The port as a socket wants it (always in range by construction).
    pub fn port(self) -> u16 {
        u16::try_from(self.0).unwrap_or(u16::MAX)
    }
}

/// How the runner is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Two CronJobs, one pod per tick.
    CronJob,
    /// One long-lived Deployment running `beads-runner run`.
    Deployment,
}

impl Mode {
    /// The mode the `mode` attribute names.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "cronjob" => Ok(Mode::CronJob),
            "deployment" => Ok(Mode::Deployment),
            _ => Err(format!(
                "{s:?} is not a mode; use \"cronjob\" or \"deployment\""
            )),
        }
    }

    /// The other mode.
    pub fn other(self) -> Mode {
        match self {
            Mode::CronJob => Mode::Deployment,
            Mode::Deployment => Mode::CronJob,
        }
    }

    /// The mode as the `mode` attribute spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::CronJob => "cronjob",
            Mode::Deployment => "deployment",
        }
    }
}

text_attr!(Mode);

/// Image pull Secret names, each at most once. Kept as a list, not a set:
/// Terraform folds a set's duplicates before the provider sees them, so a
/// set could not refuse them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullSecrets(Vec<SecretName>);

impl PullSecrets {
    /// The names, in configured order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(SecretName::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, refusing a repeated one.
    pub fn new(names: Vec<SecretName>) -> Result<PullSecrets, AttrError> {
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(AttrError::new(format!(
                    "{:?} is listed twice; each secret name may appear once",
                    name.as_str()
                ))
                .inside(tfplugin::diag::PathStep::Index(i as i64)));
            }
        }
        Ok(PullSecrets(names))
    }
}

impl AttrValue for PullSecrets {
    fn ty() -> Type {
        Vec::<SecretName>::ty()
    }
    fn from_tf(v: &Value) -> Result<PullSecrets, AttrError> {
        PullSecrets::new(Vec::from_tf(v)?)
    }
    fn to_tf(&self) -> Value {
        self.0.to_tf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_round_trip() {
        for (image, tag) in [
            ("ghcr.io/example/beads-runner", "0.1.0"),
            ("registry:5000/x/y", "v2"),
            (
                "r/x",
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            let repository = ImageRepository::parse(image).expect("repository");
            let tag = ImageTag::parse(tag).expect("tag");
            let reference = tag.reference(&repository);
            assert_eq!(ImageTag::split(&reference), Ok((repository, tag)));
        }
        assert_eq!(
            ImageTag::split("registry:5000/x").map(|(_, t)| t),
            Ok(ImageTag("latest".into()))
        );
        assert!(ImageTag::split("Not A Reference").is_err());
    }

    #[test]
    fn pull_secrets_refuse_duplicates_at_their_index() {
        let v = Value::List(vec![
            Value::string("a"),
            Value::string("b"),
            Value::string("a"),
        ]);
        let e = PullSecrets::from_tf(&v).expect_err("duplicate");
        assert_eq!(e.at, vec![tfplugin::diag::PathStep::Index(2)]);
        assert!(e.message.contains("listed twice"), "{}", e.message);
        let e = PullSecrets::from_tf(&Value::List(vec![Value::string("Not_OK")]))
            .expect_err("invalid name");
        assert_eq!(e.at, vec![tfplugin::diag::PathStep::Index(0)]);
    }

    #[test]
    fn ranges_and_durations() {
        assert!(MaxInFlight::new(0).is_err());
        assert_eq!(
            MaxInFlight::new(100).map(|n| n.to_string()),
            Ok("100".into())
        );
        assert!(Port::new(70000).is_err());
        assert_eq!(Port::new(3306).map(Port::port), Ok(3306));
        let d = Duration::parse("1h30m").expect("duration");
        assert_eq!(d.as_str(), "1h30m");
        assert_eq!(
            Duration::from(std::time::Duration::from_secs(5400)).as_str(),
            "1h30m"
        );
        assert!(Duration::parse("30").is_err());
        assert_eq!(Mode::parse("deployment"), Ok(Mode::Deployment));
        assert!(Mode::parse("daemonset").is_err());
    }
}
