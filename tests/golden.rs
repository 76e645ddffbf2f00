//! Golden translation cases: every `tests/testdata/<case>/input.yaml` rendered
//! (Envoy resources and statuses) and compared with its snapshot
//! `tests/testdata/<case>/output.snap`. Review changes with `cargo insta review`.

mod common;

#[test]
fn golden_cases() {
    let cases = common::cases();
    assert!(
        cases.len() >= 40,
        "expected at least 40 golden cases, found {}",
        cases.len()
    );
    for (name, dir) in cases {
        let outputs = common::translate_case(&dir);
        let doc =
            portico::render::document(&outputs, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(&dir);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_input_file(dir.join("input.yaml"));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_yaml_snapshot!("output", doc));
    }
}
