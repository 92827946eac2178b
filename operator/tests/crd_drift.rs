//! The committed CRD must be exactly what the code generates: one source of truth.

#[test]
fn committed_crd_matches_generated() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/microservice.yaml"
    ))
    .expect("crds/microservice.yaml exists");
    assert!(
        committed == berth_operator::crd_yaml(),
        "crds/microservice.yaml is stale: run `make crd` (berth-operator crd > crds/microservice.yaml)"
    );
}
