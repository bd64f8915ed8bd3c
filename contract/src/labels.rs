//! Label names.

/// Beads carrying this label are agent-registry beads that BeadBoard hides;
/// dispatching one would fail with "Bead not found", so the runner skips them.
pub const BEAD_HIDDEN_FROM_BEADBOARD: &str = "gt:agent";

/// Kubernetes labels the provider puts on every object it manages.
pub mod k8s {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const VERSION: &str = "app.kubernetes.io/version";

    /// Value of [`NAME`] and [`PART_OF`].
    pub const APP: &str = "beads-autodispatch";
    /// Value of [`MANAGED_BY`], and the server-side-apply field manager.
    pub const MANAGER: &str = "terraform-provider-beads";
}
