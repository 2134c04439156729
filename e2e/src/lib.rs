//! The Rust side of Landlord's local control plane.
//!
//! `e2e/cluster up` starts etcd, the Kubernetes control plane, kwok, PostgreSQL and NATS on
//! loopback and writes `target/landlord-dev/env`. This crate reads that file, starts the stack
//! once per test run when it is not up yet, and gives each test a client, `kubectl`, and names
//! or namespaces of its own so tests never see each other's objects.

pub mod api;
pub mod audit;
pub mod cluster;
pub mod dns;
pub mod kubectl;
pub mod logs;
pub mod manifests;
pub mod names;
pub mod operator;
pub mod outage;
pub mod postgres;
pub mod tenants;
pub mod wait;
pub mod workloads;

pub use cluster::{Cluster, cluster};
pub use names::{TestNamespace, unique_name};
