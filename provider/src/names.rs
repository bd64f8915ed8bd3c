//! The names of the objects a `beads_autodispatch` owns, made from its
//! `name`. A module of its own, below everything that uses them: the value
//! types hand them out ([`crate::types::ResourceName::names`]), validation
//! holds them to Kubernetes' length limits ([`crate::validate::object_name`])
//! and rendering puts them on the objects ([`crate::k8s::render`], which
//! also says which objects they are: `Names::all`, `Names::of_mode`).

/// Object names, derived from the resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub config_map: String,
    pub dispatcher: String,
    pub reaper: String,
    pub deployment: String,
}

impl Names {
    /// The names rendered for resource name `name`.
    pub fn new(name: &str) -> Self {
        Names {
            config_map: format!("{name}-metadata"),
            dispatcher: format!("{name}-dispatcher"),
            reaper: format!("{name}-reaper"),
            deployment: format!("{name}-runner"),
        }
    }
}
