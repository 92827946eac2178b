//! End-to-end tests on the cluster's real node (`berth-node-0`: kubelet,
//! containerd, runc, kube-proxy, CoreDNS): the item and order images run as
//! processes, talk over cluster DNS and Service IPs, keep data in PostgreSQL,
//! and the operator runs in-cluster from its chart. `make test-node` provides
//! the cluster, the images and the database; each missing piece fails a test
//! with the command that provides it.

mod disruption;
mod in_cluster;
mod monitoring;
mod orders;
mod pods;
mod postgres;
mod rollout;
mod scaling;
mod support;
mod traffic;
mod under_load;
