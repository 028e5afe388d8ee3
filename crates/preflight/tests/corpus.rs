//! The corpus runner: every case under `tests/corpus/` is linted and its diagnostics compared
//! with the case's `expect` file (code and line, plus an optional text the message or help must
//! contain). Cases named `ok-*` must have no error-level diagnostic.

mod support;

use preflight::{Report, Severity, lint_context};
use support::{Case, cases, context_of, materialize};

/// Lints one case and returns a description of every mismatch.
fn check(case: &Case) -> Result<Report, String> {
    let tmp = materialize(case);
    let ctx = context_of(&tmp);
    let report = lint_context(&ctx, &ctx.join("Dockerfile"), &case.system, &case.options);
    let mut got: Vec<(String, u32)> = report
        .diagnostics
        .iter()
        .map(|d| (d.code.to_string(), d.line))
        .collect();
    let mut want: Vec<(String, u32)> = case
        .expect
        .iter()
        .map(|(c, l, _)| (c.clone(), *l))
        .collect();
    got.sort();
    want.sort();
    let mut problems = Vec::new();
    if got != want {
        problems.push(format!("expected {want:?}\n     got {got:?}"));
    }
    for (code, line, text) in &case.expect {
        let Some(text) = text else { continue };
        let found = report.diagnostics.iter().any(|d| {
            d.code == code
                && d.line == *line
                && (d.message.contains(text.as_str())
                    || d.help.as_deref().is_some_and(|h| h.contains(text.as_str())))
        });
        if !found {
            problems.push(format!("no {code} at line {line} mentions `{text}`"));
        }
    }
    if case.name.starts_with("ok-")
        && report
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    {
        problems.push("a good case has an error".into());
    }
    if case.name.starts_with("bad-")
        && report
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Info)
    {
        problems.push("a bad case has no error or warning".into());
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(format!(
            "{}: {}\n{}",
            case.name,
            problems.join("\n"),
            report.render()
        ))
    }
}

#[test]
fn corpus() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the corpus has {} cases, fewer than 40",
        cases.len()
    );
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Every rule that a Dockerfile can trigger has at least one corpus case.
#[test]
fn corpus_covers_every_dockerfile_rule() {
    let cases = cases();
    let covered: std::collections::BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.expect.iter().map(|e| e.0.as_str()))
        .collect();
    let archive_or_input = [
        "OD000", "OD106", "OD107", "OD601", "OD602", "OD603", "OD604", "OD605", "OD606", "OD607",
    ];
    let missing: Vec<&str> = preflight::RULES
        .iter()
        .map(|r| r.code)
        .filter(|c| !archive_or_input.contains(c) && !covered.contains(c))
        .collect();
    assert!(missing.is_empty(), "no corpus case for {missing:?}");
}

/// The compiler-like rendering, JSON and SARIF of one real case.
#[test]
fn outputs_of_a_case() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "bad-from-typo")
        .unwrap();
    let report = check(&case).unwrap();
    let text = report.render();
    assert!(text.starts_with("Dockerfile:1:6: error[OD101]: `distroless/cc` is not in the onboard catalogue of system `sat1`\n  |\n1 | FROM distroless/cc\n  |      ^^^^^^^^^^^^^\n  = help: did you mean `gcr.io/distroless/cc-debian12:latest`?"), "{text}");
    assert!(text.ends_with("1 error, 0 warnings, 0 infos\n"), "{text}");
    let json = report.to_json();
    assert_eq!(json["summary"]["errors"], 1);
    assert_eq!(json["diagnostics"][0]["code"], "OD101");
    assert_eq!(json["facts"]["binaries"][0]["arch"], "arm64");
    let sarif = report.to_sarif();
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startColumn"],
        6
    );
}
