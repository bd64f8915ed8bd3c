//! Terraform plugin protocol 6 for Rust providers.
//!
//! The crate is split by job:
//!
//! * [`handshake`]: go-plugin's magic cookie, protocol negotiation and the
//!   single stdout handshake line;
//! * [`tls`]: AutoMTLS (a fresh server certificate, a verifier pinned to
//!   Terraform's client certificate);
//! * [`serve`]: the tonic server on a unix socket, shutdown and debug mode;
//! * [`log`]: hclog-style JSON logging on stderr and the panic hook;
//! * [`value`]: cty types and values with their msgpack and JSON encodings;
//! * [`diag`]: diagnostics with attribute paths;
//! * [`schema`]: declaring a schema once, as protobuf and as cty type;
//! * [`framework`]: the `Provider` and `Resource` traits, typed attributes
//!   ([`framework::attr`]) and the generic protocol rules, implemented once.
//!
//! A provider binary implements [`framework::Provider`] and calls
//! [`serve::main`].

// `#[derive(Model)]` names this crate `::tfplugin`, inside it too.
extern crate self as tfplugin;

/// `#[derive(Model)]`: see [`framework::Model`] and the `tfplugin-derive` crate.
pub use tfplugin_derive::Model;

pub mod diag;
pub mod framework;
pub mod handshake;
pub mod log;
pub mod schema;
pub mod serve;
pub mod tls;
pub mod value;

/// Generated protobuf and gRPC code (from `proto/`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    /// `tfplugin6`: the provider protocol.
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// `plugin`: go-plugin's controller service.
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}
