//! The CRD YAML we ship is generated from the types; these tests fail when a committed copy
//! drifts from what the types generate. Regenerate with:
//!   cargo run -p landlord -- crds --out-dir manifests/crds
//!   cargo run -p landlord -- crds --out-dir charts/landlord/crds

use std::path::Path;

fn assert_matches_generated(dir: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let generated = landlord_crds::generate::crd_files().expect("CRDs serialize");
    let mut committed: Vec<String> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".landlord.dev.yaml"))
        .collect();
    committed.sort();
    let mut expected: Vec<String> = generated.iter().map(|(name, _)| name.clone()).collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "{dir} holds other CRD files than the types generate"
    );
    for (name, yaml) in generated {
        let on_disk =
            std::fs::read_to_string(root.join(dir).join(&name)).expect("committed CRD readable");
        assert!(
            on_disk == yaml,
            "{dir}/{name} differs from what the types generate; run `cargo run -p landlord -- crds --out-dir {dir}`"
        );
    }
}

#[test]
fn manifests_crds_match_the_types() {
    assert_matches_generated("manifests/crds");
}

#[test]
fn chart_crds_match_the_types() {
    assert_matches_generated("charts/landlord/crds");
}

#[test]
fn every_kind_has_status_subresource_and_short_name() {
    for crd in landlord_crds::generate::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty()),
            "{name} has no short name"
        );
        for version in &crd.spec.versions {
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name} {} has no status subresource",
                version.name
            );
        }
    }
}
