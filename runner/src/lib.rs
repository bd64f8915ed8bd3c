//! `beads-runner`: the dispatch and reap ticks of beads auto-dispatch,
//! straight against the beads database (MySQL protocol) and BeadBoard (HTTP).
//!
//! Decisions live in [`decide`] as plain functions over data; [`store`] and
//! [`beadboard`] are the I/O edges; [`tick`] orders the I/O around the
//! decisions; [`serve`] is the long-lived mode; [`status`] shows the queue; [`app`] maps it all to exit codes.

pub mod app;
pub mod beadboard;
pub mod cli;
pub mod config;
pub mod decide;
pub mod failpoint;
pub mod serve;
pub mod status;
pub mod store;
pub mod tick;
