//! The layers a `docker save` archive sent as a `delta` layers patch leaves out, produced
//! onboard from the Docker Engine: [`EngineLayers`] finds a catalogue base image whose layers
//! hold the DiffID asked for, `docker save`s it into a scratch file and returns the member of
//! that archive whose sha256 is the DiffID (the engine regenerates each layer's tar byte-exact).
//! `delta` checks size and digest again before it uses the bytes; a layer that cannot be had
//! fails the patch, and the agent asks for the object itself.
//!
//! Only the catalogue's images are ever exported: a tenant's image never gives its layers to
//! another tenant's archive. [`base_layers`] is what the agent reports of them after each
//! `Hello` (`Message::BaseLayers`), so the ground knows which layers it may leave out.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wire::{BaseImage, Digest, ImageLayers, MAX_ENGINE_IMAGES, MAX_IMAGE_LAYERS};

use crate::runtime::Runtime;

/// The catalogue's images present in the engine, with their ids and layers.
pub(crate) async fn base_layers(runtime: &dyn Runtime, bases: &[BaseImage]) -> Vec<ImageLayers> {
    let mut out = Vec::new();
    for base in bases.iter().take(MAX_ENGINE_IMAGES) {
        let id = match runtime.inspect_image(&base.name).await {
            Ok(Some(info)) => info.id,
            _ => continue,
        };
        let layers = match runtime.image_layers(&base.name).await {
            Ok(Some(l)) => l,
            _ => continue,
        };
        let layers: Vec<Digest> = layers
            .iter()
            .filter_map(|l| l.strip_prefix("sha256:")?.parse().ok())
            .take(MAX_IMAGE_LAYERS)
            .collect();
        out.push(ImageLayers {
            name: base.name.clone(),
            id,
            layers,
        });
    }
    out
}

/// A [`delta::LayerSource`] over the engine's catalogue images. Blocking: call it on the
/// blocking pool (it waits for the engine through `handle`). Each image is saved at most once
/// per source; the scratch files go when the source is dropped.
pub(crate) struct EngineLayers {
    runtime: Arc<dyn Runtime>,
    handle: tokio::runtime::Handle,
    bases: Vec<BaseImage>,
    scratch: PathBuf,
    saved: HashMap<String, PathBuf>,
}

impl EngineLayers {
    /// A source exporting from `bases` (the catalogue) through `runtime`, saving archives
    /// into the folder `scratch` (created if missing).
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        handle: tokio::runtime::Handle,
        bases: Vec<BaseImage>,
        scratch: PathBuf,
    ) -> EngineLayers {
        EngineLayers {
            runtime,
            handle,
            bases,
            scratch,
            saved: HashMap::new(),
        }
    }

    /// The saved archive of the catalogue image that holds `diff_id`.
    fn archive_with(&mut self, diff_id: &str) -> Result<PathBuf, String> {
        let runtime = self.runtime.clone();
        let bases = self.bases.clone();
        let wanted = diff_id.to_string();
        let image = self.handle.block_on(async move {
            for b in &bases {
                if let Ok(Some(layers)) = runtime.image_layers(&b.name).await
                    && layers.contains(&wanted)
                {
                    return Some(b.name.clone());
                }
            }
            None
        });
        let image = image.ok_or_else(|| format!("no catalogue image onboard holds {diff_id}"))?;
        if let Some(p) = self.saved.get(&image) {
            return Ok(p.clone());
        }
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| format!("scratch folder {}: {e}", self.scratch.display()))?;
        let path = self.scratch.join(format!(
            "save-{}-{}.tar",
            std::process::id(),
            rand::random::<u64>()
        ));
        let runtime = self.runtime.clone();
        let (name, to) = (image.clone(), path.clone());
        let saved = self
            .handle
            .block_on(async move { runtime.save_image(&name, &to).await });
        // Registered before the result is looked at: a partial file is removed on drop too.
        self.saved.insert(image.clone(), path.clone());
        saved.map_err(|e| format!("docker save {image}: {}", e.message))?;
        Ok(path)
    }
}

impl Drop for EngineLayers {
    fn drop(&mut self) {
        for p in self.saved.values() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The member of the tar `archive` of `size` bytes whose sha256 is `diff_id`.
fn member(archive: &Path, diff_id: &[u8; 32], size: u64) -> Result<Option<Vec<u8>>, String> {
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut a = tar::Archive::new(std::io::BufReader::new(file));
    for e in a.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        if e.header().entry_size().ok() != Some(size) {
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        e.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        if delta::sha256(&bytes) == *diff_id {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

impl delta::LayerSource for EngineLayers {
    fn layer(&mut self, diff_id: &[u8; 32], size: u64) -> Result<Vec<u8>, String> {
        let name = Digest(*diff_id).to_string();
        let archive = self.archive_with(&name)?;
        member(&archive, diff_id, size)?
            .ok_or_else(|| format!("the engine's archive holds no layer {name} of {size} bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ImageInfo;
    use crate::runtime::fake::FakeRuntime;
    use delta::LayerSource as _;

    fn layer(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect()
    }

    fn hex_id(bytes: &[u8]) -> String {
        Digest::of(bytes).to_string()
    }

    /// The catalogue's static base holds two layers; a tenant image holds a third.
    fn runtime(base: &[Vec<u8>], tenant: &[u8]) -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime::with(|s| {
            let info = ImageInfo {
                id: "sha256:aaaa".into(),
                ..Default::default()
            };
            s.images.insert(
                "gcr.io/distroless/static-debian12:latest".into(),
                info.clone(),
            );
            s.images.insert("tenants/alice/app:v1".into(), info);
            s.layers.insert(
                "gcr.io/distroless/static-debian12:latest".into(),
                base.iter().map(|l| (hex_id(l), l.clone())).collect(),
            );
            s.layers.insert(
                "tenants/alice/app:v1".into(),
                vec![(hex_id(tenant), tenant.to_vec())],
            );
        }))
    }

    fn catalogue() -> Vec<BaseImage> {
        wire::catalogue("linux/amd64")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn catalogue_layers_are_reported_and_produced_and_no_tenant_image_is() {
        let dir = tempfile::tempdir().unwrap();
        let base = vec![layer(3, 10_000), layer(5, 7_000)];
        let tenant = layer(7, 9_000);
        let rt = runtime(&base, &tenant);
        let report = base_layers(rt.as_ref(), &catalogue()).await;
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(
            report[0].layers,
            vec![Digest::of(&base[0]), Digest::of(&base[1])]
        );

        let scratch = dir.path().join("scratch");
        let handle = tokio::runtime::Handle::current();
        let rt2: Arc<dyn Runtime> = rt.clone();
        let (base2, tenant2, scratch2) = (base.clone(), tenant.clone(), scratch.clone());
        tokio::task::spawn_blocking(move || {
            let mut src = EngineLayers::new(rt2, handle, catalogue(), scratch2.clone());
            for l in &base2 {
                let got = src.layer(&Digest::of(l).0, l.len() as u64).unwrap();
                assert!(got == *l);
            }
            assert_eq!(
                std::fs::read_dir(&scratch2).unwrap().count(),
                1,
                "saved once"
            );
            // A tenant image's layer is never produced, nor a size that does not match.
            let e = src
                .layer(&Digest::of(&tenant2).0, tenant2.len() as u64)
                .unwrap_err();
            assert!(e.contains("no catalogue image"), "{e}");
            let e = src
                .layer(&Digest::of(&base2[0]).0, base2[0].len() as u64 + 1)
                .unwrap_err();
            assert!(e.contains("holds no layer"), "{e}");
            drop(src);
            assert_eq!(std::fs::read_dir(&scratch2).unwrap().count(), 0, "removed");
        })
        .await
        .unwrap();
    }
}
