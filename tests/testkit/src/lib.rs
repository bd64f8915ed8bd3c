//! Test harness shared by the runner's tests and the end-to-end tests: a
//! beads database on a real MariaDB or Dolt server, and a stub BeadBoard.

pub mod beadboard;
pub mod mariadb;

pub use beadboard::{Reply, StubBeadBoard};
pub use mariadb::{Backend, BeadRow, BeadsDb, DoltCommit, EventRow, PrivateServer, Seed};
