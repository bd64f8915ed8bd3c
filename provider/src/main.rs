//! `terraform-provider-beads`: the Terraform provider for beads
//! auto-dispatch, speaking plugin protocol 6 through the `tfplugin` crate.
//!
//! Terraform starts this binary; run by hand it explains that and exits 1.
//! `terraform-provider-beads --debug` serves in the foreground and prints
//! the `TF_REATTACH_PROVIDERS` value to attach Terraform to it.

mod autodispatch;
#[cfg(test)]
mod docs;
mod k8s;
mod names;
mod provider;
mod types;
mod validate;

use std::process::ExitCode;

/// The provider's source address as configurations name it.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/beads-autodispatch/beads";

fn main() -> ExitCode {
    tfplugin::serve::main(
        provider::BeadsProvider::default(),
        tfplugin::serve::ServeConfig {
            provider_address: SOURCE_ADDRESS.to_string(),
            log_module: "provider.terraform-provider-beads".to_string(),
        },
    )
}
