//! orbitdock imagefmt: the one reader of `docker save` archives, and the one judge of them.
//!
//! [`inspect`] reads an archive (a file, or any `Read + Seek`) in the Docker layout
//! (`manifest.json`, `<hex>.json` configs, `<id>/layer.tar` layers, `repositories`) and, when
//! present, the OCI layout Docker 25 and later writes beside it (`oci-layout`, `index.json`,
//! `blobs/sha256/…`, nested indexes, each blob checked). It returns an [`Archive`]: its
//! [`Image`]s with their repo tags, [`Config`] (platform, user, entrypoint, env, DiffIDs as
//! [`wire::Digest`]) and [`Layer`]s in order, each with its member, offset and size in the tar
//! so that a caller can seek to a layer and hash it. Or it refuses the archive with an
//! [`ArchiveError`] whose [`ErrorKind`] says why and whose message names what and where: a second
//! manifest smuggled under an unclean name or a header that tar readers read differently, a
//! member twice, a link leaving the archive, a config that does not hash to the id it claims, an
//! image with ONBUILD triggers, a missing layer or blob, a truncated tar, a bound exceeded (the
//! `MAX_*` constants, defined here once).
//!
//! [`judge_load`] is the whole decision the flight agent takes before a `docker load`: the
//! archive inspected, then the image the task names chosen ([`Loadable`]). The flight loads the
//! copy [`write_unnamed`] writes (one image, no names); preflight runs the same `judge_load` on
//! the ground and maps its refusals to diagnostics, so an archive that passes preflight is not
//! refused onboard. The coming delta planner reads layer offsets from the same [`Archive`].
//!
//! **Architecture invariant:** never touches the network, reads only the archive it is given
//! (layer bodies are skipped by seeking, never decompressed; names and extended headers are
//! bounded before they are read), and never panics on its input.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let path = std::path::Path::new("/nonexistent/image.tar");
//! match imagefmt::judge_load(path, "app:1") {
//!     Ok(load) => {
//!         let image = load.image();
//!         println!("{} {:?}: {} layers", image.id, image.repo_tags, image.layers.len());
//!     }
//!     Err(e) => println!("refused ({:?}): {e}", e.kind()),
//! }
//! # Ok(())
//! # }
//! ```

mod docker;
mod error;
mod headers;
mod json;
mod members;
mod oci;
mod write;

use std::io::{BufReader, Read, Seek, Write};
use std::path::Path;

pub use error::{ArchiveError, ErrorKind};

/// Largest metadata member read whole: `manifest.json`, `index.json`, an image config, an OCI
/// manifest or index blob.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;
/// Most metadata bytes read from one archive, all members together.
pub const MAX_METADATA_TOTAL: u64 = 64 << 20;
/// Most members (tar entries) in one archive. A `docker save` archive has a few per layer.
pub const MAX_MEMBERS: usize = 200_000;
/// Most images in `manifest.json`, and most manifests reached through the OCI indexes.
pub const MAX_IMAGES: usize = 256;
/// Most layers of one image: the engine's own limit (moby's `maxLayerDepth`).
pub const MAX_LAYERS: usize = 125;
/// Deepest nesting of OCI indexes below `index.json`.
pub const MAX_INDEX_DEPTH: usize = 4;
/// Most symlinks followed from one name to the member it leads to.
pub const MAX_LINK_HOPS: usize = 8;
/// Largest GNU long name or link (`L`, `K` members) and pax extended header (`x`, `g`): the
/// engine's reader (Go's `archive/tar`) refuses a larger one, and these are read whole.
pub const MAX_EXTENSION_BYTES: u64 = 1 << 20;
/// Most bytes of member names and link targets kept from one archive, all members together.
pub const MAX_NAMES_TOTAL: u64 = 32 << 20;

/// A `docker save` archive that [`inspect`] accepted.
#[derive(Debug, Clone)]
pub struct Archive {
    images: Vec<Image>,
    members: members::Members,
}

/// One image of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image id: the sha256 of its config, which the config's name states and its content
    /// was checked to hash to.
    pub id: wire::Digest,
    /// The config's member, as `manifest.json` names it (`<hex>.json` or `blobs/sha256/<hex>`).
    pub config_path: String,
    /// Its tags as written (`RepoTags`).
    pub repo_tags: Vec<String>,
    /// What its config says.
    pub config: Config,
    /// Its layers, bottom first; as many as `config.diff_ids`.
    pub layers: Vec<Layer>,
}

/// The fields of an image config that orbitdock reads. Absent strings are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `os`, e.g. `linux`.
    pub os: String,
    /// `architecture`, e.g. `arm64`.
    pub architecture: String,
    /// `variant`, e.g. `v8`; often empty.
    pub variant: String,
    /// `config.User`.
    pub user: String,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `config.Env`, `KEY=value`.
    pub env: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: String,
    /// `rootfs.diff_ids`: the uncompressed digest of each layer, bottom first.
    pub diff_ids: Vec<wire::Digest>,
}

impl Config {
    /// `os/architecture[/variant]`, e.g. `linux/arm64`.
    pub fn platform(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

/// One layer of an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The path `manifest.json` gives (`<id>/layer.tar` or `blobs/sha256/<hex>`).
    pub path: String,
    /// The member holding its bytes, after following links.
    pub member: String,
    /// Where its bytes start in the archive.
    pub offset: u64,
    /// How many bytes it has in the archive (as stored: a tar, or a compressed tar).
    pub size: u64,
    /// Its DiffID from the config: the sha256 of the uncompressed layer tar.
    pub diff_id: wire::Digest,
}

/// The image a `docker.load` loads from an archive, as [`judge_load`] chose it.
#[derive(Debug, Clone)]
pub struct Loadable {
    archive: Archive,
    index: usize,
}

impl Archive {
    /// The images of `manifest.json`, in order (never empty).
    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// The index of the image tagged `wanted` (tags compared with [`wire::normalize_image_ref`]).
    fn find(&self, wanted: &str) -> Option<usize> {
        let wanted = wire::normalize_image_ref(wanted);
        self.images.iter().position(|i| {
            i.repo_tags
                .iter()
                .any(|t| wire::normalize_image_ref(t) == wanted)
        })
    }

    /// Every tag the archive carries, for messages: `[a:1, b:2]`.
    fn describe_tags(&self) -> String {
        let tags: Vec<&str> = self
            .images
            .iter()
            .flat_map(|i| i.repo_tags.iter().map(String::as_str))
            .collect();
        format!("[{}]", tags.join(", "))
    }
}

impl Loadable {
    /// The archive, as [`inspect_file`] read it.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Which of [`Archive::images`] is loaded: the `keep` of [`write_unnamed`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The image loaded.
    pub fn image(&self) -> &Image {
        &self.archive.images[self.index]
    }
}

/// What the flight agent decides before a `docker.load` of image `wanted` (`name:tag`, as the
/// task names it) from the archive at `path`, and what preflight decides on the ground: the
/// archive read and judged by [`inspect_file`], then the image tagged `wanted` chosen (tags
/// compared with [`wire::normalize_image_ref`]). An archive that holds no such image is refused
/// with [`ErrorKind::NotTagged`].
pub fn judge_load(path: &Path, wanted: &str) -> Result<Loadable, ArchiveError> {
    let file = std::fs::File::open(path).map_err(error::io("cannot open the archive"))?;
    judge_load_from(BufReader::new(file), wanted)
}

/// [`judge_load`] of an archive already open (the flight agent opens it beneath a volume, by
/// descriptor, and loads from the same open file).
pub fn judge_load_from<R: Read + Seek>(reader: R, wanted: &str) -> Result<Loadable, ArchiveError> {
    let archive = inspect(reader)?;
    let Some(index) = archive.find(wanted) else {
        return Err(ArchiveError::new(
            ErrorKind::NotTagged,
            format!("archive holds {}, not {wanted}", archive.describe_tags()),
        ));
    };
    Ok(Loadable { archive, index })
}

/// Reads and judges the archive at `path`: every member's header, then the metadata.
pub fn inspect_file(path: &Path) -> Result<Archive, ArchiveError> {
    let file = std::fs::File::open(path).map_err(error::io("cannot open the archive"))?;
    inspect(BufReader::new(file))
}

/// Reads and judges an archive: every member's header, then the metadata (`manifest.json`, the
/// configs, `index.json` and the blobs it leads to). Layer bodies are skipped, not read.
pub fn inspect<R: Read + Seek>(mut reader: R) -> Result<Archive, ArchiveError> {
    inspect_dyn(&mut reader)
}

fn inspect_dyn(reader: &mut dyn members::ReadSeek) -> Result<Archive, ArchiveError> {
    let members = members::index(reader)?;
    let mut budget = MAX_METADATA_TOTAL;
    let images = docker::read_manifest(reader, &members, &mut budget)?;
    oci::read_index(reader, &members, &mut budget)?;
    Ok(Archive { images, members })
}

/// Copies the archive `archive` was inspected from to `out`, keeping only image `keep` in
/// `manifest.json` with its `RepoTags` emptied, without the `repositories` file, and without
/// the name annotations of `index.json`. Refuses (kind [`ErrorKind::Changed`]) when `reader`
/// is not the archive inspected: another member list, or a kept config of another digest.
pub fn write_unnamed<R: Read + Seek, W: Write>(
    mut reader: R,
    archive: &Archive,
    keep: usize,
    mut out: W,
) -> Result<(), ArchiveError> {
    write::write_unnamed(&mut reader, archive, keep, &mut out)
}
