//! The judge is linear on hostile input: every case of `test_data/hostile.rs`, at the size
//! limit, is judged (it asserts only the verdict; each takes well under a second in a debug
//! build), and the lossy expansion preflight uses reads the same words.

use dockerfile::onboard;

include!("../test_data/hostile.rs");

#[test]
fn hostile_dockerfiles_are_judged() {
    let catalogue = ["busybox:latest".to_string()];
    for (name, text, refused, line) in hostile_dockerfiles() {
        match onboard::judge(&text, &catalogue) {
            Ok(judged) => {
                assert!(!refused, "{name}: accepted");
                let _ = judged.rewrite(&wire::names::TenantName::new("alice").unwrap());
            }
            Err(r) => {
                assert!(refused, "{name}: refused: {r}");
                assert_eq!(r.line(), line, "{name}: {r}");
                assert!(r.reasons().len() <= 4 * onboard::MAX_REASONS, "{name}");
            }
        }
        // The lossy expansion of every word of the first lines.
        let df = dockerfile::parse(&text, dockerfile::Builder::Classic);
        assert!(
            df.problems.len() <= 7 * dockerfile::MAX_PROBLEMS_PER_KIND,
            "{name}"
        );
        for ins in df.instructions.iter().take(3) {
            if let dockerfile::Args::Shell { words, .. } = &ins.args {
                for w in words.iter().take(3) {
                    let _ = dockerfile::expand(&w.text, &Default::default(), df.escape);
                }
            }
        }
    }
}
