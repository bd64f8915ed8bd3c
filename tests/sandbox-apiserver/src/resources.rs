//! The resource types this server knows: their group/version/kind, plural,
//! scope and discovery data.

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name (URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Kind of lists.
    pub list_kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Whether there is a `/status` subresource (status is ignored on main-resource writes).
    pub has_status: bool,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    /// Discovery categories.
    pub categories: &'static [&'static str],
}

impl ResourceType {
    /// `batch/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `cronjobs.batch` or `configmaps`.
    pub fn qualified(&self) -> String {
        crate::error::qualified(self.group, self.plural)
    }

    /// `cronjob.batch` (as kubectl prints it).
    pub fn singular_qualified(&self) -> String {
        crate::error::qualified(self.group, self.singular)
    }
}

/// Namespaces.
pub static NAMESPACES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    list_kind: "NamespaceList",
    namespaced: false,
    short_names: &["ns"],
    has_status: true,
    has_generation: false,
    categories: &[],
};

/// ConfigMaps.
pub static CONFIGMAPS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    list_kind: "ConfigMapList",
    namespaced: true,
    short_names: &["cm"],
    has_status: false,
    has_generation: false,
    categories: &[],
};

/// Secrets.
pub static SECRETS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    list_kind: "SecretList",
    namespaced: true,
    short_names: &[],
    has_status: false,
    has_generation: false,
    categories: &[],
};

/// batch/v1 CronJobs.
pub static CRONJOBS: ResourceType = ResourceType {
    group: "batch",
    version: "v1",
    plural: "cronjobs",
    singular: "cronjob",
    kind: "CronJob",
    list_kind: "CronJobList",
    namespaced: true,
    short_names: &["cj"],
    has_status: true,
    has_generation: true,
    categories: &["all"],
};

/// apps/v1 Deployments.
pub static DEPLOYMENTS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    list_kind: "DeploymentList",
    namespaced: true,
    short_names: &["deploy"],
    has_status: true,
    has_generation: true,
    categories: &["all"],
};

/// Every served resource type.
pub static ALL: [&ResourceType; 5] = [&NAMESPACES, &CONFIGMAPS, &SECRETS, &CRONJOBS, &DEPLOYMENTS];

/// Served group/versions: (group, version).
pub static GROUP_VERSIONS: [(&str, &str); 3] = [("", "v1"), ("batch", "v1"), ("apps", "v1")];

/// Finds the resource type served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    ALL.iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Resource types of one group/version.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceType> {
    let g = group.to_string();
    let v = version.to_string();
    ALL.iter()
        .copied()
        .filter(move |r| r.group == g && r.version == v)
}
