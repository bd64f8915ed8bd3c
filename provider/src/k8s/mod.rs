//! The Kubernetes half of `beads_autodispatch`: [`render`] turns the
//! resource's attributes into API objects, [`observe`] turns live objects
//! back into attributes (for import), [`project`] reads the fields the
//! provider sets, [`client`] does the I/O and, through [`adopt`], takes over
//! objects a client-side writer created.

pub mod adopt;
pub mod client;
pub mod observe;
pub mod project;
pub mod render;
