//! Test harness shared by the runner's and the end-to-end tests.
