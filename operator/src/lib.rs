//! Berth: a Kubernetes operator that turns one `MicroService` into the
//! Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget a
//! service needs, keeps them true and reports honest status.
//!
//! The flow of data, one module each: [`microservice`] (the resource) ->
//! [`desired`] (pure builders of the children) -> [`apply`] (server-side apply,
//! pruning) -> [`status`] (pure status computation) -> [`reconcile`] (the IO that
//! ties them together) -> [`controller`] (watches and the run loop).

pub mod microservice;

pub use microservice::{MicroService, MicroServiceSpec, MicroServiceStatus};
