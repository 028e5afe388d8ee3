//! `orbitdock lint`: preflight on the ground, like a compiler's diagnostics.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::args::LintArgs;

/// Lints `a.path` and prints the report: JSON (`a.json`), SARIF, YAML (`yaml`, the JSON
/// report's document) or text.
pub(crate) fn run(a: LintArgs, yaml: bool) -> anyhow::Result<ExitCode> {
    let system = match &a.systems_file {
        Some(f) => {
            preflight::System::declared(&a.system, &crate::systems::declaration(f, &a.system)?)
        }
        None if a.system == "em" => preflight::System::em(preflight::host_platform()),
        None => preflight::System::flight(&a.system),
    };
    let mut options = preflight::Options::onboard();
    if a.ground_build {
        options.site = preflight::BuildSite::Ground;
    }
    let meta = std::fs::metadata(&a.path).with_context(|| format!("{}", a.path.display()))?;
    let report = if meta.is_dir() {
        preflight::lint_context(&a.path, Path::new(&a.file), &system, &options)
    } else if is_archive(&a.path)? {
        let archive = preflight::ArchiveOptions {
            known_layers: &[],
            eta: preflight::Eta::None,
        };
        preflight::lint_archive(&a.path, None, &system, &archive)
    } else if looks_like_dockerfile(&a.path) {
        let text = std::fs::read_to_string(&a.path)
            .with_context(|| format!("reading {}", a.path.display()))?;
        let name = a.path.display().to_string();
        preflight::lint_dockerfile_text(&text, &name, &system, &options)
    } else {
        let data =
            std::fs::read(&a.path).with_context(|| format!("reading {}", a.path.display()))?;
        let base = system
            .catalogue
            .images
            .first()
            .map(|b| b.name.clone())
            .unwrap_or_default();
        preflight::lint_binary(&a.path.display().to_string(), &data, &system, &base)
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else if yaml {
        crate::output::print_document(crate::args::Output::Yaml, &report.to_json())?;
    } else if a.sarif {
        println!("{}", serde_json::to_string_pretty(&report.to_sarif())?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A tar archive: "ustar" at offset 257 of the first header.
fn is_archive(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 263];
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let n = f.read(&mut head)?;
    Ok(n >= 262 && &head[257..262] == b"ustar")
}

fn looks_like_dockerfile(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "Dockerfile"
        || name.ends_with(".Dockerfile")
        || name.starts_with("Dockerfile.")
        || name == "Containerfile"
}
