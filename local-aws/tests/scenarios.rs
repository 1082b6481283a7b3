//! Every scenario file in `tests/scenarios/` loads: a typo in a scenario
//! fails here, by file and position, instead of silently testing
//! something else.

use local_aws::Scenario;

#[test]
fn every_scenario_file_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut loaded = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            if let Err(e) = Scenario::from_file(&path) {
                panic!("{e}");
            }
            loaded += 1;
        }
    }
    assert!(loaded >= 2, "no scenarios found in {}", dir.display());
}
