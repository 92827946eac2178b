//! End-to-end tests of the operator against the cluster in `$KUBECONFIG`.
//! One test binary (one link on a 2-core machine), one module per area.

mod autoscaling;
mod chart;
mod churn;
mod dependencies;
mod generated;
mod lifecycle;
mod load;
mod monitoring;
mod quiet;
mod validation;
