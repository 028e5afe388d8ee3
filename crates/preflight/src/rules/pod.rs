//! The image of a `pod.run` (OD106), classified as the flight agent classifies it
//! (`dockerfile::onboard::classify`, the judge's own): a catalogue image of the system, or one of
//! the tenant's images (`name[:tag]`, no registry or path), which must exist onboard.

use dockerfile::onboard::{self, Target};

use crate::catalogue::System;
use crate::diagnostic::{Diagnostic, Severity};
use crate::report::{Facts, Report};
use crate::rules::base::not_onboard_help;
use crate::rules::judge::catalogue_names;

/// OD106: a `pod.run` image must be a catalogue image of `system` or one of `tenant_images` (the
/// images the tenant has onboard, `name[:tag]`). The finding's file is empty: it is about the
/// task, not a file.
///
/// ```text
/// image: registry:5000/tools/jq:1.7     # OD106: nothing can be pulled onboard
/// image: busybox:1.36                    # OD106: did you mean `busybox:latest`?
/// image: app:v2                          # OD106 unless an earlier task builds or loads app:v2
/// ```
pub fn lint_pod_image(image: &str, system: &System, tenant_images: &[String]) -> Report {
    let names = catalogue_names(system);
    let have = |wanted: &str| {
        let wanted = wire::normalize_image_ref(wanted);
        tenant_images
            .iter()
            .any(|t| wire::normalize_image_ref(t) == wanted)
    };
    let message = match onboard::classify(image, &names) {
        Some(Target::Catalogue(_)) => None,
        Some(Target::Tenant(own)) if have(&own.to_string()) => None,
        Some(Target::Tenant(own)) => Some(format!(
            "`{image}` is not in the onboard catalogue of system `{}`, and no earlier task builds or loads your image `{own}`, nor has the system reported it",
            system.name
        )),
        _ => Some(format!(
            "`{image}` can be neither an image of the onboard catalogue of system `{}` nor one of your images (`name[:tag]`, without a registry or path): nothing can be pulled onboard",
            system.name
        )),
    };
    let diagnostics = message
        .map(|message| Diagnostic {
            code: "OD106",
            severity: Severity::Error,
            file: String::new(),
            line: 0,
            column: 0,
            end: None,
            message,
            help: Some(not_onboard_help(system, image)),
        })
        .into_iter()
        .collect();
    Report::finish(diagnostics, Facts::default(), Vec::new())
}

/// OD107: a `pod.run` on node `GPU` (any case) needs a system with a GPU; a system whose
/// declaration says it has none (`gpu: false`) refuses it, as its flight agent would. A system
/// that does not say is not judged here (its agent finds out). The finding's file is empty.
///
/// ```text
/// node: GPU        # OD107 on a system declared "gpu": false
/// ```
pub fn lint_pod_node(node: Option<&str>, system: &System) -> Report {
    let gpu = node.is_some_and(|n| n.eq_ignore_ascii_case("gpu"));
    let diagnostics = (gpu && system.gpu == Some(false))
        .then(|| Diagnostic {
            code: "OD107",
            severity: Severity::Error,
            file: String::new(),
            line: 0,
            column: 0,
            end: None,
            message: format!(
                "node GPU: system `{}` is declared without a GPU (\"gpu\": false in the systems file), so a GPU pod cannot run there",
                system.name
            ),
            help: Some("run it on node default, MPU or FPGA, or on a system with a GPU".into()),
        })
        .into_iter()
        .collect();
    Report::finish(diagnostics, Facts::default(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(image: &str, tenant_images: &[&str]) -> Option<(String, String)> {
        let tenant_images: Vec<String> = tenant_images.iter().map(|s| s.to_string()).collect();
        let r = lint_pod_image(image, &System::flight("sat1"), &tenant_images);
        r.diagnostics
            .first()
            .map(|d| (d.message.clone(), d.help.clone().unwrap_or_default()))
    }

    #[test]
    fn a_gpu_pod_is_refused_only_where_no_gpu_is_declared() {
        let codes = |node: Option<&str>, gpu: Option<bool>| {
            let mut system = System::flight("sat1");
            system.gpu = gpu;
            lint_pod_node(node, &system)
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(Some("gpu"), Some(false)), ["OD107"]);
        assert_eq!(codes(Some("GPU"), Some(false)), ["OD107"]);
        assert!(
            codes(Some("GPU"), None).is_empty(),
            "not declared: not judged"
        );
        assert!(codes(Some("GPU"), Some(true)).is_empty());
        assert!(codes(Some("MPU"), Some(false)).is_empty());
        assert!(codes(None, Some(false)).is_empty());
    }

    #[test]
    fn pod_images_are_classified_as_onboard() {
        for ok in [
            "busybox",
            "busybox:latest",
            "fpga.dphi.space:5000/busybox:latest",
            "gcr.io/distroless/static-debian12",
        ] {
            assert_eq!(check(ok, &[]), None, "{ok}");
        }
        assert_eq!(check("app:v2", &["app:v2"]), None);
        let (message, _) = check("registry:5000/a/b:1.10", &["a/b:1.10"]).unwrap();
        assert!(
            message.contains("nothing can be pulled onboard"),
            "{message}"
        );
        let (message, _) = check("app:v2", &["app:v1"]).unwrap();
        assert!(
            message.contains("no earlier task builds or loads"),
            "{message}"
        );
        let (_, help) = check("busybox:1.36", &[]).unwrap();
        assert!(help.starts_with("did you mean `busybox:latest`?"), "{help}");
        let (_, help) = check("distroless/cc:latest", &[]).unwrap();
        assert!(
            help.starts_with("did you mean `gcr.io/distroless/cc-debian12:latest`?"),
            "{help}"
        );
    }
}
