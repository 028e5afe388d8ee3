//! The uplink planner: for namespace files, how each would cross the link to a system if an
//! uplink sent it now, the bytes, and when they would arrive (`POST /api/v1/plan`,
//! `orbitdock plan`).
//!
//! It decides as the link would: a file whose object the mirror says is onboard costs nothing
//! (`nothing` when the same content is already at its landing path, `reference` otherwise, as for
//! a file earlier in the same plan); otherwise the flight would name the object now at the
//! landing path as a base when it holds it, and the encoder would send the smallest of the object,
//! the object compressed, a delta against that base and, for a `docker save` archive, the layers
//! kind leaving out the layers of the catalogue's images onboard: the planner asks the encoder itself
//! ([`encoder::choose`]), which makes and keeps the patches, so the uplink that follows reuses
//! them. The ETA is the queue's, for the plan's bytes queued behind what the uplink holds now.

use std::collections::HashSet;

use wire::Digest;
use wire::names::{NamespacePath, VolumeName, VolumePath};

use crate::config::limits;
use crate::db::{self, FileRow};
use crate::encoder::{self, Choice};
use crate::error::ApiError;
use crate::{Ground, auth, executor, queue, time};

/// The most sources one plan names.
const MAX_SOURCES: usize = 1000;

/// The most content not yet onboard one plan encodes (each such file is compressed and diffed,
/// one patch at a time ground-wide): a request cannot hold the patch maker for long.
const MAX_PLANNED_BYTES: u64 = 1 << 30;

/// Plans the uplink of `req.sources` to `req.system` for `tenant`.
pub(crate) async fn plan(
    g: &Ground,
    tenant: &str,
    req: api::PlanRequest,
) -> Result<api::UplinkPlan, ApiError> {
    let system = req.system.strip_prefix("cg2.").unwrap_or(&req.system);
    if g.system(system).is_none() {
        return Err(ApiError::bad(format!(
            "unknown system '{system}'; configured: {}",
            g.system_names().collect::<Vec<_>>().join(", ")
        )));
    }
    let volume = match &req.volume {
        Some(v) => VolumeName::new(v)
            .map_err(|e| ApiError::bad(e.to_string()))?
            .to_string(),
        None => executor::volume_or_default(None, tenant),
    };
    let destination = VolumePath::parse(req.destination.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    if req.sources.is_empty() {
        return Err(ApiError::bad("name at least one source, namespace:/path"));
    }
    if req.sources.len() > MAX_SOURCES {
        return Err(ApiError::bad(format!(
            "{} sources: at most {MAX_SOURCES}",
            req.sources.len()
        )));
    }
    let mut files: Vec<(String, FileRow)> = Vec::new();
    for source in &req.sources {
        let (ns, path) = source
            .split_once(':')
            .ok_or_else(|| ApiError::bad(format!("source '{source}': expected namespace:/path")))?;
        auth::check_namespace(g, tenant, ns).await?;
        let path = NamespacePath::parse(path).map_err(|e| ApiError::bad(e.to_string()))?;
        let found = match db::file_version(g.db(), ns, &path, None).await? {
            Some(f) => vec![f],
            None => {
                let limit = limits::UPLOAD_ENTRIES as i64 + 1;
                db::latest_files(g.db(), ns, &path, limit, 0).await?
            }
        };
        if found.is_empty() {
            return Err(ApiError::not_found(format!(
                "no file or folder {ns}:{path} in the namespace"
            )));
        }
        files.extend(found.into_iter().map(|f| (format!("{ns}:{}", f.path), f)));
        if files.len() > limits::UPLOAD_ENTRIES {
            return Err(ApiError::bad(format!(
                "more than {} files to plan",
                limits::UPLOAD_ENTRIES
            )));
        }
    }
    let targets: Vec<Digest> = files
        .iter()
        .filter_map(|(_, f)| f.digest.parse().ok())
        .collect();
    let onboard = db::onboard_among(g.db(), system, &targets).await?;
    let mut counted = HashSet::new();
    let to_encode: u64 = files
        .iter()
        .filter(|(_, f)| {
            f.digest
                .parse()
                .is_ok_and(|d: Digest| !onboard.contains(&d) && counted.insert(d))
        })
        .map(|(_, f)| u64::try_from(f.size).unwrap_or(0))
        .sum();
    if to_encode > MAX_PLANNED_BYTES {
        return Err(ApiError::bad(format!(
            "{to_encode} bytes of these files are not onboard: plan at most {MAX_PLANNED_BYTES} at once (name fewer sources)"
        )));
    }
    let tenants = [tenant.to_string()];
    // The layers the system can produce for a docker save archive: its catalogue images'.
    let layers = crate::mirror::onboard_layers(&g.core, system).await?;
    let mut seen = HashSet::new();
    let mut planned = Vec::with_capacity(files.len());
    for (source, f) in files {
        let landing = executor::landing_path(&destination, &f.path).ok_or_else(|| {
            ApiError::bad(format!("{source} would land at a path over 4096 bytes"))
        })?;
        let target: Digest = f
            .digest
            .parse()
            .map_err(|_| ApiError::internal(format!("{source}: an unreadable digest")))?;
        let size = u64::try_from(f.size).unwrap_or(0);
        let at_path = db::file_digest(g.db(), system, tenant, &volume, &landing).await?;
        let (encoding, base, bytes) = if onboard.contains(&target) || !seen.insert(target) {
            let kind = if at_path == Some(target) {
                "nothing"
            } else {
                "reference"
            };
            (kind.to_string(), None, 0)
        } else {
            // The flight names the object at the landing path when it holds it.
            let bases: Vec<Digest> = match at_path {
                Some(b) if db::onboard_among(g.db(), system, &[b]).await?.contains(&b) => vec![b],
                _ => Vec::new(),
            };
            match encoder::choose(&g.core, &target, size, &bases, &tenants, &layers).await? {
                Choice::Raw => ("raw".to_string(), None, size),
                Choice::Patch(e) => (e.kind, e.base, e.size),
            }
        };
        planned.push(api::PlannedFile {
            source,
            path: landing.display(),
            digest: target.to_string(),
            size,
            encoding,
            base: base.map(|b| b.to_string()),
            bytes,
        });
    }
    let total = api::PlanTotal {
        files: planned.len() as u64,
        size: planned.iter().map(|p| p.size).sum(),
        bytes: planned.iter().map(|p| p.bytes).sum(),
    };
    let eta = queue::eta_of_more(g, system, total.bytes).await?;
    let generated_at = time::rfc3339(g.now().unix_millis());
    Ok(api::UplinkPlan {
        system: system.to_string(),
        volume,
        generated_at,
        files: planned,
        total,
        eta: api::PlanEta {
            always_in_contact: eta.always_in_contact,
            queued_bytes_ahead: eta.ahead,
            completion: eta.eta.completion.map(crate::passes::rfc3339),
            pass: eta.eta.pass.as_ref().map(|p| api::PassRef {
                station: p.station.clone(),
                aos: crate::passes::rfc3339(p.aos),
                los: crate::passes::rfc3339(p.los),
            }),
            passes: eta.passes,
            error: eta.error,
        },
    })
}
