//! The labels Berth puts on every child and pod. The selector label is the only
//! one that must never change for a Deployment (selectors are immutable), so it
//! is kept apart from the descriptive `app.kubernetes.io/*` labels.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::microservice::{MANAGER, MicroService};

/// Label that ties pods and children to their MicroService.
pub const MICROSERVICE_LABEL: &str = "berth.dev/microservice";

/// The pod selector of a MicroService's Deployment, Service and PDB.
pub fn selector(ms: &MicroService) -> BTreeMap<String, String> {
    BTreeMap::from([(MICROSERVICE_LABEL.to_string(), ms.name_any())])
}

/// The selector as the string form the scale subresource reports.
pub fn selector_string(ms: &MicroService) -> String {
    format!("{MICROSERVICE_LABEL}={}", ms.name_any())
}

/// Labels on every child object: the standard `app.kubernetes.io/*` set plus
/// the selector. Not the version: see [`versioned`].
pub fn common(ms: &MicroService) -> BTreeMap<String, String> {
    let mut labels = selector(ms);
    labels.insert("app.kubernetes.io/name".into(), ms.name_any());
    labels.insert("app.kubernetes.io/instance".into(), ms.name_any());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    labels.insert("app.kubernetes.io/part-of".into(), "berth".into());
    labels
}

/// [`common`] plus `app.kubernetes.io/version` (the image tag), for the
/// Deployment and its pods: what runs a version. On the Service, autoscaler,
/// disruption budget and PodMonitor it would make every image change rewrite
/// all of them, three writes instead of one per MicroService in an update
/// wave (bench/scale/results.md), for a label nothing selects on.
pub fn versioned(ms: &MicroService) -> BTreeMap<String, String> {
    let mut labels = common(ms);
    if let Some(version) = image_tag(&ms.spec.image) {
        labels.insert("app.kubernetes.io/version".into(), version);
    }
    labels
}

/// Labels on the pods: the user's `podLabels` first, then Berth's on top (the
/// CRD refuses a `podLabels` entry for the selector key).
pub fn pod(ms: &MicroService) -> BTreeMap<String, String> {
    let mut labels = ms.spec.pod_labels.clone();
    labels.extend(versioned(ms));
    labels
}

/// The image tag when it is a valid label value (digests and `latest`-less refs give none).
fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next()?;
    let last_segment = without_digest.rsplit('/').next()?;
    let (_, tag) = last_segment.split_once(':')?;
    let valid = !tag.is_empty()
        && tag.len() <= 63
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric())
        && tag.ends_with(|c: char| c.is_ascii_alphanumeric());
    valid.then(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tag_is_taken_from_the_last_path_segment() {
        assert_eq!(
            image_tag("registry:5000/team/item:1.4.2"),
            Some("1.4.2".into())
        );
        assert_eq!(image_tag("registry:5000/team/item"), None);
        assert_eq!(image_tag("item@sha256:abc"), None);
        assert_eq!(image_tag("item:1.0@sha256:abc"), Some("1.0".into()));
        assert_eq!(image_tag("item:-bad"), None);
    }
}
