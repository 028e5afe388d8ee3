//! Images: docker.build (air-gapped, every base checked against the catalogue and the tenant's
//! images, tenant references rewritten), docker.load (an archive judged by `imagefmt`,
//! loaded without its own names, tagged under the tenant's prefix), docker.image.list (the
//! tenant's images, named as the tenant writes them) and docker.image.delete (one of them).

use dockerfile::onboard::{self, RefusalKind, Site, Target};
use std::collections::BTreeSet;

use crate::runtime::{ImageSummary, StepImages};
use wire::names::{TenantImage, TenantName};

use super::*;

/// How often a running build's disk is looked at.
#[cfg(not(test))]
const BUILD_DISK_CHECK: Duration = Duration::from_secs(1);
#[cfg(test)]
const BUILD_DISK_CHECK: Duration = Duration::from_millis(20);

impl Executor {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn build(
        &self,
        tenant: &str,
        execution: &str,
        volume: &str,
        dockerfile: &str,
        context: &str,
        image: &ImageRef,
        limit: Duration,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        names::check_image_name(&image.name).map_err(invalid)?;
        names::check_tag(&image.tag).map_err(invalid)?;
        let df_rel = RelPath::parse(dockerfile).map_err(invalid)?;
        let ctx_rel = RelPath::parse(context).map_err(invalid)?;
        let not_found = || {
            TaskResult::fail(
                ErrorCode::DockerDockerfileNotFound,
                format!("Dockerfile not found: {}", df_rel.display()),
            )
        };
        let root = Arc::new(existing_volume(&self.volumes, tenant, volume, not_found)?);
        let (df_file, df_meta) = volume_file(
            &root,
            &df_rel,
            ErrorCode::DockerDockerfileNotFound,
            "Dockerfile",
        )?;
        let text = read_dockerfile(df_file, df_meta.len).map_err(|m| {
            TaskResult::fail(ErrorCode::FormatError, format!("{}: {m}", df_rel.display()))
        })?;
        let tenant_name = TenantName::new(tenant).map_err(|e| invalid(e.to_string()))?;
        // The judge is linear in its input, but a megabyte of it is still work: off the async
        // workers.
        let catalogue = self.catalogue.clone();
        let settings = onboard::Settings {
            builder: match self.builder {
                wire::Builder::Classic => dockerfile::Builder::Classic,
                wire::Builder::BuildKit => dockerfile::Builder::BuildKit,
            },
            build_args: &[],
        };
        let judged = blocking(move || onboard::judge_with(&text, &catalogue, &settings))
            .await?
            .map_err(|r| {
                let code = match r.kind() {
                    RefusalKind::NotOnboard => ErrorCode::DockerImageNotFound,
                    _ => ErrorCode::DockerBuildFailed,
                };
                TaskResult::fail(code, r.to_string())
            })?;

        // Every image the build names must exist onboard.
        let mut bases = BTreeSet::new();
        for u in judged.uses() {
            match &u.target {
                Target::Scratch | Target::Stage(_) => {}
                Target::Catalogue(name) => {
                    bases.insert(name.clone());
                    self.inspect(name).await?.ok_or_else(|| {
                        TaskResult::fail(
                            ErrorCode::DockerImageNotFound,
                            format!("{} (Dockerfile line {}): the catalogue image {name} is not loaded onboard", u.image, u.line),
                        )
                    })?;
                }
                Target::Tenant(image) => {
                    bases.insert(image.onboard(&tenant_name));
                    let info = self
                        .inspect(&image.onboard(&tenant_name))
                        .await?
                        .ok_or_else(|| {
                            TaskResult::fail(
                                ErrorCode::DockerImageNotFound,
                                u.not_found(&self.catalogue),
                            )
                        })?;
                    // ONBUILD triggers run in the build that uses the image as its base, as
                    // the tenant wrote them (the judge never saw them): a base with any is
                    // refused, whatever they do.
                    if u.site == Site::From && !info.on_build.is_empty() {
                        return Err(TaskResult::fail(
                            ErrorCode::DockerBuildFailed,
                            format!(
                                "{} (Dockerfile line {}): the image has ONBUILD triggers, and onboard an image with ONBUILD triggers cannot be used as a base; rebuild it without ONBUILD",
                                u.image, u.line
                            ),
                        ));
                    }
                }
            }
        }
        // The daemon is always given the judged text, every image position holding the literal
        // the judge read, as `.orbitdock.Dockerfile` in the context: it never reads the
        // Dockerfile from the volume, and never expands a variable where an image is named.
        let rewritten = judged.rewrite(&tenant_name);

        let ctx_dir = root.open_dir(&ctx_rel).map_err(|e| match e {
            PathError::NotFound(_) => {
                execution_error(format!("Build context not found: {}", ctx_rel.display()))
            }
            PathError::Invalid(_) => execution_error(format!(
                "Build context {} is not a folder",
                ctx_rel.display()
            )),
            e => path_failure(e, ErrorCode::ExecutionError),
        })?;
        // From the staged context to the build's end, the engine's storage is this build's.
        let _storage = self.storage_unless_cancelled(execution, "build").await?;
        self.room_for_work().await?;
        self.images_within_quota(tenant).await?;
        let tar_path = self.scratch_file("build");
        let (ctx, out) = (ctx_dir, tar_path.clone());
        let cap = self.disk.limits.build_context_bytes;
        let packed = blocking(move || tar_context(&ctx, rewritten.as_bytes(), &out, cap)).await;
        let packed = match packed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Packing::TooLarge { file, bytes })) => Err(limits::over_limit(
                &format!(
                    "the build context {} (over at {}{file})",
                    ctx_rel.display(),
                    ctx_rel.display().trim_end_matches('/')
                ),
                bytes,
                cap,
                "of a build context",
            )),
            Ok(Err(Packing::Io(e))) => Err(execution_error(format!(
                "cannot pack the build context {}: {e}",
                ctx_rel.display()
            ))),
            Err(failed) => Err(failed),
        };
        if let Err(failed) = packed {
            let _ = fs::remove_file(&tar_path);
            return Err(failed);
        }

        // Where the engine stores what the build writes: watched while it runs, or no build.
        let watched = match self.runtime.data_root().await {
            Ok(root) => self.room_for_build(&root, &tar_path, &bases).await,
            Err(e) => Err(execution_error(format!(
                "cannot watch the Docker Engine's storage: {}; a build runs only while its storage can be watched",
                e.message
            ))),
        };
        let watch = match watched {
            Ok(watch) => watch,
            Err(failed) => {
                let _ = fs::remove_file(&tar_path);
                return Err(failed);
            }
        };

        let full = tenant_image(tenant, &image.name, &image.tag);
        let replaced = self.inspect(&full).await?.map(|i| i.id);
        let request = BuildRequest {
            tag: full.clone(),
            dockerfile: CONTEXT_DOCKERFILE.to_string(),
            labels: labels(tenant, execution),
            context: Body::File(tar_path.clone()),
            cache_from: self.own_images(tenant).await?,
        };
        let log = LogBook::new(0);
        let steps = StepImages::default();
        // What it leaves dangling if it fails is what the engine made from here.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // The classic builder has no storage quota: the disks are watched while it runs, and
        // the build is stopped (its request dropped, which cancels it) once it would take free
        // space below the reserve or took more than a build may.
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limit, self.runtime.build_image(&request, &log, &steps)) => outcome,
            full = self.disk_fills(watch) => {
                let _ = fs::remove_file(&tar_path);
                self.drop_failed_build(started, &steps).await;
                return Err(TaskResult::fail(
                    ErrorCode::ExecutionError,
                    format!("the build was stopped: {full}"),
                )
                .tail(log.tail()));
            }
            () = self.cancels.cancelled(execution) => {
                let _ = fs::remove_file(&tar_path);
                self.drop_failed_build(started, &steps).await;
                return Err(TaskResult::cancelled(
                    "the build was stopped: the execution was cancelled",
                )
                .tail(log.tail()));
            }
        };
        let _ = fs::remove_file(&tar_path);
        if !matches!(outcome, Ok(Ok(()))) {
            self.drop_failed_build(started, &steps).await;
        }
        match outcome {
            Err(_) => Err(TaskResult::fail(
                ErrorCode::MaxDurationExceeded,
                format!("build stopped after {}", duration(limit)),
            )
            .tail(log.tail())),
            Ok(Err(e)) => {
                Err(TaskResult::fail(ErrorCode::DockerBuildFailed, e.message).tail(log.tail()))
            }
            Ok(Ok(())) => {
                let id = self.inspect(&full).await?.map(|i| i.id).unwrap_or_default();
                self.image_quota_after(tenant, image, replaced.as_deref(), &id)
                    .await
                    .map_err(|failed| failed.tail(log.tail()))?;
                self.drop_replaced(replaced, &id).await;
                Ok(TaskResult::ok(TaskOutputs {
                    image: Some(full.clone()),
                    message: Some(format!("built {full} ({})", names::short_id(&id))),
                    ..TaskOutputs::default()
                })
                .tail(log.tail()))
            }
        }
    }

    /// Refuses to start a build the engine's storage (its data root, `root`) cannot take beyond
    /// the reserve: the daemon's copy of the packed context (`tar`) and, for the images the
    /// build names (`bases`), as much again as they hold, which steps that rewrite their files
    /// copy up into new layers. An estimate: what `RUN` steps write is not known before they run
    /// (see `docs/operations.md`, "Disk limits onboard"); the build is watched while it runs
    /// (the [`BuildWatch`](crate::disk::BuildWatch) returned).
    async fn room_for_build(
        &self,
        root: &Path,
        tar: &Path,
        bases: &BTreeSet<String>,
    ) -> Step<crate::disk::BuildWatch> {
        let context = fs::metadata(tar).map_or(0, |m| m.len());
        let mut images = 0u64;
        for reference in bases {
            let listed =
                self.runtime.list_images(reference).await.map_err(|e| {
                    execution_error(format!("cannot list {reference}: {}", e.message))
                })?;
            let size = listed.iter().map(|i| i.size).max().unwrap_or(0);
            images = images.saturating_add(u64::try_from(size).unwrap_or(0));
        }
        let disk = self.disk.clone();
        let what = format!(
            "this build (its context of {}, its base images of {})",
            crate::disk::size(context),
            crate::disk::size(images)
        );
        let root = root.to_path_buf();
        blocking(move || {
            disk.room_for_build(&root, context.saturating_add(images), &what)?;
            disk.watch_build(&root)
        })
        .await?
        .map_err(|m| TaskResult::fail(ErrorCode::ExecutionError, m))
    }

    /// Resolves, with the reason, once a look (every [`BUILD_DISK_CHECK`]) finds free space
    /// under the volumes below the reserve, or the build's storage over its limits
    /// ([`Disk::check_build`](crate::disk::Disk::check_build)); never otherwise.
    async fn disk_fills(&self, mut watch: crate::disk::BuildWatch) -> String {
        loop {
            tokio::time::sleep(BUILD_DISK_CHECK).await;
            let disk = self.disk.clone();
            let looked = tokio::task::spawn_blocking(move || {
                let verdict = disk
                    .room_for_work()
                    .and_then(|()| disk.check_build(&mut watch));
                (watch, verdict)
            })
            .await;
            match looked {
                Ok((_, Err(m))) => return m,
                Ok((w, Ok(()))) => watch = w,
                Err(e) => return format!("the build's storage cannot be watched: {e}"),
            }
        }
    }

    /// The images the engine holds under the tenant's prefix, and that prefix
    /// (`tenants/<tenant>/`).
    pub(super) async fn tenant_images(&self, tenant: &str) -> Step<(String, Vec<ImageSummary>)> {
        let prefix = names::tenant_prefix(tenant);
        let listed = self
            .runtime
            .list_images(&format!("{prefix}*"))
            .await
            .map_err(|e| execution_error(format!("cannot list images: {}", e.message)))?;
        Ok((prefix, listed))
    }

    /// Every `tenants/<tenant>/<name>:<tag>` reference the engine holds: what the tenant's
    /// builds may take cached steps from.
    async fn own_images(&self, tenant: &str) -> Step<Vec<String>> {
        let (prefix, listed) = self.tenant_images(tenant).await?;
        let mut refs: Vec<String> = listed
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t.starts_with(&prefix))
            .collect();
        refs.sort();
        Ok(refs)
    }

    /// The tenant's own images: every `tenants/<tenant>/<name>:<tag>` the engine holds.
    pub(super) async fn image_list(&self, tenant: &str) -> Step<TaskResult> {
        let (prefix, listed) = self.tenant_images(tenant).await?;
        let mut images: Vec<ImageEntry> = listed
            .iter()
            .flat_map(|i| {
                i.repo_tags.iter().filter_map(|t| {
                    let (name, tag) = t.strip_prefix(&prefix)?.rsplit_once(':')?;
                    Some(ImageEntry {
                        name: name.to_string(),
                        tag: tag.to_string(),
                        id: i.id.clone(),
                        created_ms: u64::try_from(i.created).unwrap_or(0).saturating_mul(1000),
                        size: u64::try_from(i.size).unwrap_or(0),
                    })
                })
            })
            .collect();
        images.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{} images", images.len())),
            images,
            ..TaskOutputs::default()
        }))
    }

    /// Takes the engine's storage for a build or a load (`what`), in turn with the other
    /// tenants' (see `Executor::engine_storage`); a cancel of `execution` meanwhile ends the
    /// wait, the task not started.
    async fn storage_unless_cancelled(
        &self,
        execution: &str,
        what: &str,
    ) -> Step<tokio::sync::MutexGuard<'_, ()>> {
        tokio::select! {
            guard = self.engine_storage.lock() => Ok(guard),
            () = self.cancels.cancelled(execution) => Err(TaskResult::cancelled(format!(
                "the {what} did not start: the execution was cancelled while it waited for the engine"
            ))),
        }
    }

    pub(super) async fn load(
        &self,
        tenant: &str,
        execution: &str,
        volume: &str,
        tarfile: &str,
        image: &ImageRef,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        names::check_image_name(&image.name).map_err(invalid)?;
        names::check_tag(&image.tag).map_err(invalid)?;
        let rel = RelPath::parse(tarfile).map_err(invalid)?;
        let not_found = || {
            TaskResult::fail(
                ErrorCode::DockerTarfileNotFound,
                format!("Tar file not found: {}", rel.display()),
            )
        };
        let root = existing_volume(&self.volumes, tenant, volume, not_found)?;
        // Opened once, beneath the volume root: judged and copied from this open file, whatever
        // happens to the path meanwhile.
        let (archive, meta) =
            volume_file(&root, &rel, ErrorCode::DockerTarfileNotFound, "Tar file")?;
        let load_failed = |m: String| TaskResult::fail(ErrorCode::DockerTarfileLoadFailed, m);
        // Its logical size: a sparse archive is refused before it is read or staged.
        let limit = self.disk.limits.archive_bytes;
        if meta.len > limit {
            return Err(limits::over_limit(
                &rel.display(),
                meta.len,
                limit,
                "of an image archive",
            ));
        }
        // From the staged copy to the tag, the engine's storage is this load's.
        let _storage = self.storage_unless_cancelled(execution, "load").await?;
        self.room_for_work().await?;
        self.images_within_quota(tenant).await?;
        // The whole decision, in the one function preflight calls too.
        let wanted = format!("{}:{}", image.name, image.tag);
        let (archive, chosen) = blocking(move || {
            let chosen = imagefmt::judge_load_from(BufReader::new(&archive), &wanted);
            (archive, chosen)
        })
        .await?;
        let chosen = chosen.map_err(|e| match e.kind() {
            imagefmt::ErrorKind::NotTagged => {
                TaskResult::fail(ErrorCode::DockerImageLoadFailed, e.to_string())
            }
            _ => load_failed(format!("{}: {e}", rel.display())),
        })?;
        let id = chosen.image().id.to_string();
        // An image the engine held before this load is never removed for it.
        let existed = self.inspect(&id).await?.is_some();

        // Load a copy that names nothing, then tag the image id ourselves.
        let staged = self.scratch_file("load");
        let out = staged.clone();
        let rewritten = blocking(move || -> Result<(), String> {
            let output = File::create(&out).map_err(|e| e.to_string())?;
            // The staged copy holds no more than the archive did when it was measured.
            let mut output = limits::LimitedWriter::new(BufWriter::new(output), limit);
            imagefmt::write_unnamed(
                BufReader::new(&archive),
                chosen.archive(),
                chosen.index(),
                &mut output,
            )
            .map_err(|e| e.to_string())?;
            output.into_inner().flush().map_err(|e| e.to_string())
        })
        .await?;
        if let Err(m) = rewritten {
            let _ = fs::remove_file(&staged);
            return Err(load_failed(format!("{}: {m}", rel.display())));
        }
        let log = LogBook::new(0);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(LOAD_TIMEOUT, self.runtime.load_image(&staged, &log)) => outcome,
            // The request dropped stops the load.
            () = self.cancels.cancelled(execution) => {
                let _ = fs::remove_file(&staged);
                self.sweep_stopped_load(&id, existed);
                return Err(TaskResult::cancelled(
                    "the load was stopped: the execution was cancelled",
                )
                .tail(log.tail()));
            }
        };
        let _ = fs::remove_file(&staged);
        match outcome {
            Err(_) => {
                self.sweep_stopped_load(&id, existed);
                return Err(load_failed(format!(
                    "docker load did not finish within {}",
                    duration(LOAD_TIMEOUT)
                ))
                .tail(log.tail()));
            }
            Ok(Err(e)) => {
                self.sweep_stopped_load(&id, existed);
                return Err(load_failed(e.message).tail(log.tail()));
            }
            Ok(Ok(())) => {}
        }
        if self.inspect(&id).await?.is_none() {
            return Err(load_failed(format!(
                "the archive loaded, but its image {id} is not there"
            ))
            .tail(log.tail()));
        }
        let repo = names::tenant_repo(tenant, &image.name);
        let replaced = self
            .inspect(&tenant_image(tenant, &image.name, &image.tag))
            .await?
            .map(|i| i.id);
        self.runtime
            .tag_image(&id, &repo, &image.tag)
            .await
            .map_err(|e| {
                self.sweep_stopped_load(&id, existed);
                load_failed(format!(
                    "cannot tag {id} as {repo}:{}: {}",
                    image.tag, e.message
                ))
            })?;
        self.image_quota_after(tenant, image, replaced.as_deref(), &id)
            .await
            .map_err(|failed| failed.tail(log.tail()))?;
        self.drop_replaced(replaced, &id).await;
        let full = tenant_image(tenant, &image.name, &image.tag);
        Ok(TaskResult::ok(TaskOutputs {
            image: Some(full.clone()),
            message: Some(format!("loaded {full} ({})", names::short_id(&id))),
            ..TaskOutputs::default()
        })
        .tail(log.tail()))
    }
}

impl Executor {
    /// Deletes one of the tenant's own images, named as the tenant writes it (`app:1`): the
    /// onboard reference `tenants/<tenant>/app:1`, and nothing else, is removed. A catalogue
    /// image (the operator's, shared) is refused, and so is a name with a `/` (the tenant writes
    /// only `<name>`; `tenants/<other>/…` would be another tenant's). The one case where both
    /// could apply, a tenant's own image named like a catalogue image (a `docker.load` of a
    /// saved `busybox`), deletes the tenant's, which is what the name can only mean here.
    ///
    /// The engine removes the reference, not the id: an id that the catalogue, another tenant
    /// or another of the tenant's names still holds stays, only untagged here; when the last
    /// name goes, so do the image and the layers and parent images (a classic build's steps)
    /// that nothing else holds. A container still using it makes the engine refuse.
    pub(super) async fn image_delete(&self, tenant: &str, image: &ImageRef) -> Step<TaskResult> {
        let written = format!("{}:{}", image.name, image.tag);
        let tenant_name = TenantName::new(tenant).map_err(|e| invalid(e.to_string()))?;
        let not_yours = |why: &str| {
            invalid(format!(
                "{written} is not one of your images: {why}; only your own images (built or loaded) can be deleted"
            ))
        };
        let catalogue = || match onboard::classify(&written, &self.catalogue) {
            Some(Target::Catalogue(name)) => Some(invalid(format!(
                "{written} is the catalogue image {name}, shared by every tenant: only your own images (built or loaded) can be deleted"
            ))),
            _ => None,
        };
        let own = match TenantImage::new(&image.name, &image.tag) {
            Ok(own) => own,
            Err(_)
                if image
                    .name
                    .starts_with(&format!("{}/", names::TENANT_IMAGE_PREFIX)) =>
            {
                return Err(not_yours(
                    "name yours as you built or loaded it (app:1); another tenant's is never yours to delete",
                ));
            }
            Err(_) => {
                return Err(catalogue().unwrap_or_else(|| not_yours("their names have no '/'")));
            }
        };
        let reference = own.onboard(&tenant_name);
        // What it frees would read as less written by a build being watched.
        let _storage = self.engine_storage.lock().await;
        let Some(info) = self.inspect(&reference).await? else {
            return Err(catalogue().unwrap_or_else(|| {
                TaskResult::fail(
                    ErrorCode::DockerImageNotFound,
                    format!("{written} is not among your images onboard"),
                )
            }));
        };
        self.runtime
            .remove_image(&reference)
            .await
            .map_err(|e| execution_error(format!("cannot delete {written}: {}", e.message)))?;
        let id = names::short_id(&info.id);
        // Whether the image itself went, or only this name of it.
        let message = match self.inspect(&info.id).await? {
            None => format!("deleted {written} ({id}) and the layers only it held"),
            Some(_) => {
                // Nothing is said of what holds it: it may be another tenant's load of the same
                // archive.
                format!(
                    "deleted the name {written}; its image {id} stays while other names or images still use it"
                )
            }
        };
        Ok(TaskResult::ok(TaskOutputs {
            image: Some(reference),
            message: Some(message),
            ..TaskOutputs::default()
        }))
    }

    /// A build or load under a name that already named an image moves the name; the image it
    /// named stays behind, dangling, and fills the disk build after build. It goes when no name
    /// and no container hold it any more (the engine refuses otherwise, and that is fine).
    /// After a load that did not end tagged (stopped by a cancel or its timeout, or failed): an
    /// image it made would be named by no tenant and counted in no quota, so it goes, now and
    /// once more when the engine has had time to finish what it was given; each time under the
    /// engine's storage, as any image deletion. One the engine held before the load (`existed`)
    /// stays.
    fn sweep_stopped_load(&self, id: &str, existed: bool) {
        if existed {
            return;
        }
        let (runtime, storage, id) = (
            self.runtime.clone(),
            self.engine_storage.clone(),
            id.to_string(),
        );
        tokio::spawn(async move {
            for wait in [Duration::ZERO, LOAD_SETTLE] {
                tokio::time::sleep(wait).await;
                let _storage = storage.lock().await;
                drop_if_unnamed(runtime.as_ref(), &id).await;
            }
        });
    }

    async fn drop_replaced(&self, replaced: Option<String>, now: &str) {
        if let Some(old) = replaced.filter(|old| old != now) {
            drop_if_unnamed(self.runtime.as_ref(), &old).await;
        }
    }
}

/// How long a load stopped by a cancel is given to end in the engine before what it loaded is
/// looked for once more.
const LOAD_SETTLE: Duration = Duration::from_secs(10);

/// Removes image `id` if no name holds it any more (a replaced image, one a stopped load left);
/// one still named, or in use, stays.
async fn drop_if_unnamed(runtime: &dyn Runtime, id: &str) {
    if let Ok(Some(info)) = runtime.inspect_image(id).await
        && info.repo_tags.is_empty()
        && let Err(e) = runtime.remove_image(id).await
    {
        tracing::info!(image = %id, "an image named by no one stays: {}", e.message);
    }
}

fn read_dockerfile(file: File, len: u64) -> Result<String, String> {
    let max = dockerfile::MAX_DOCKERFILE_BYTES as u64;
    if len > max {
        return Err(format!("the Dockerfile is larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    // At most the limit, and one byte more to tell a file that grew since.
    io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("the Dockerfile is larger than {max} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "the Dockerfile is not UTF-8 text".to_string())
}

/// Why a build context was not packed.
#[derive(Debug)]
enum Packing {
    /// Its files' logical sizes add up to `bytes`, over the limit; `file` is where the sum went
    /// over.
    TooLarge {
        file: String,
        bytes: u64,
    },
    Io(io::Error),
}

impl From<io::Error> for Packing {
    fn from(e: io::Error) -> Packing {
        Packing::Io(e)
    }
}

/// Packs a build context (the open folder `dir`) into an uncompressed tar at `out`, without
/// following symlinks (they go in as symlinks; the daemon resolves them inside the context),
/// each file read from the open folder that holds it. Files belong to root in the tar.
/// `dockerfile` is added as [`CONTEXT_DOCKERFILE`] (a file of that name in the folder is left
/// out). The files' logical sizes may add up to `limit` at most, checked before anything is
/// written and again while packing, and no file is copied for more than the size it had then
/// (a file that grew is cut there), so the tar never holds more than the limit.
fn tar_context(dir: &VolumeDir, dockerfile: &[u8], out: &Path, limit: u64) -> Result<(), Packing> {
    let (entries, walked) = volumes::walk(dir, u32::MAX, volumes::MAX_WALK);
    match walked {
        volumes::Walked::Whole => {}
        volumes::Walked::Capped => {
            return Err(Packing::Io(io::Error::other(format!(
                "more than {} entries",
                volumes::MAX_WALK
            ))));
        }
        // A context with files missing is not the one asked for: no build.
        volumes::Walked::Incomplete(why) => return Err(Packing::Io(io::Error::other(why))),
    }
    let too_large = |file: &str, bytes: u64| Packing::TooLarge {
        file: format!("/{file}"),
        bytes,
    };
    let mut total = dockerfile.len() as u64;
    for e in entries.iter().filter(|e| e.meta.is_file()) {
        total = total.saturating_add(e.meta.len);
        if total > limit {
            let bytes = entries
                .iter()
                .filter(|e| e.meta.is_file())
                .fold(dockerfile.len() as u64, |s, e| s.saturating_add(e.meta.len));
            return Err(too_large(&e.rel, bytes));
        }
    }
    let mut tar = tar::Builder::new(BufWriter::new(File::create(out)?));
    let mut packed = dockerfile.len() as u64;
    let mut over = None;
    let walked = volumes::visit(dir.fd(), u32::MAX, volumes::MAX_WALK, &mut |e| {
        if e.rel == CONTEXT_DOCKERFILE {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(e.meta.mode);
        h.set_mtime(e.meta.modified_ms / 1000);
        if e.meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, format!("{}/", e.rel), io::empty())?;
        } else if e.meta.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, e.rel, volumes::read_link_at(e.dir, e.name)?)?;
        } else if e.meta.is_file() {
            packed = packed.saturating_add(e.meta.len);
            if packed > limit {
                over = Some((e.rel.to_string(), packed));
                return Err(io::Error::other("over the limit"));
            }
            // Opened from the folder the walk holds, not by path; copied for the size measured.
            let file = volumes::open_file_at(e.dir, e.name)?;
            let len = file.metadata()?.len().min(e.meta.len);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            tar.append_data(&mut h, e.rel, io::Read::take(file, len))?;
        }
        Ok(())
    })
    .map_err(|e| match over.take() {
        Some((file, bytes)) => too_large(&file, bytes),
        None => Packing::Io(e),
    })?;
    // Changed since the first walk: what was packed is not the whole context.
    if !walked.is_whole() {
        let why = match walked {
            volumes::Walked::Incomplete(why) => why,
            _ => format!("more than {} entries", volumes::MAX_WALK),
        };
        return Err(Packing::Io(io::Error::other(why)));
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(dockerfile.len() as u64);
    tar.append_data(&mut h, CONTEXT_DOCKERFILE, dockerfile)?;
    Ok(tar.into_inner()?.flush()?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[tokio::test]
    async fn build_checks_every_base_and_rewrites_tenant_images() {
        let r = rig(|s| {
            s.images.insert(
                "tenants/alice/base:1".into(),
                ImageInfo {
                    id: "sha256:c".into(),
                    ..Default::default()
                },
            );
            s.build_log = vec!["Step 1/3 : FROM x".into()];
        });
        r.put(&[
            ("app/Dockerfile", b"FROM busybox:latest\nCOPY x /x\n"),
            ("app/x", b"x"),
            (
                "Dockerfile.tenant",
                b"FROM fpga.dphi.space:5000/busybox AS b\nFROM base:1\nCOPY --from=b /bin /bin\n",
            ),
            ("Dockerfile.ubuntu", b"FROM ubuntu:22.04\n"),
            ("Dockerfile.other", b"FROM base:2\n"),
            (
                "Dockerfile.add",
                b"FROM busybox\nADD https://example.com/x /x\n",
            ),
        ]);
        std::os::unix::fs::symlink("/etc/passwd", r.volume().join("app/link")).unwrap();

        // A Dockerfile inside the context: the judged text is sent all the same, as
        // .orbitdock.Dockerfile; the daemon never reads the file from the volume.
        let res = r.run(build("app/Dockerfile")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.image.as_deref(), Some("tenants/alice/hello:v1"));
        assert_eq!(res.outputs.log_tail, ["Step 1/3 : FROM x"]);
        let context = tar_names(&r.fake.script.lock().unwrap().bodies[0]);
        assert_eq!(
            context.keys().collect::<Vec<_>>(),
            [CONTEXT_DOCKERFILE, "Dockerfile", "link", "x"]
        );
        assert_eq!(
            context[CONTEXT_DOCKERFILE],
            "FROM busybox:latest\nCOPY x /x\n"
        );

        // Outside the context: every image position holds the literal the judge read.
        let res = r.run(build("Dockerfile.tenant")).await;
        assert!(res.succeeded(), "{res:?}");
        let context = tar_names(&r.fake.script.lock().unwrap().bodies[1]);
        assert_eq!(
            context[CONTEXT_DOCKERFILE],
            "FROM busybox:latest AS b\nFROM tenants/alice/base:1\nCOPY --from=0 /bin /bin\n"
        );
        let builds: Vec<Call> = r
            .fake
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Build { .. }))
            .collect();
        let Call::Build {
            tag,
            dockerfile,
            labels,
        } = &builds[1]
        else {
            unreachable!()
        };
        assert_eq!(
            (tag.as_str(), dockerfile.as_str()),
            ("tenants/alice/hello:v1", CONTEXT_DOCKERFILE)
        );
        assert_eq!(labels["org.orbitdock.tenant"], "alice");

        let res = r.run(build("Dockerfile.ubuntu")).await;
        assert_eq!(code(&res), Some(15));
        assert!(res.error.unwrap().message.starts_with("FROM ubuntu:22.04 (Dockerfile line 1): not in the onboard catalogue (gcr.io/distroless/static-debian12:latest"));
        let res = r.run(build("Dockerfile.other")).await;
        assert_eq!(code(&res), Some(15));
        let res = r.run(build("Dockerfile.add")).await;
        assert_eq!(code(&res), Some(12));
        assert_eq!(
            res.error.unwrap().message,
            "ADD https://example.com/x (Dockerfile line 2): nothing can be downloaded onboard"
        );
        let res = r.run(build("missing/Dockerfile")).await;
        assert_eq!(code(&res), Some(13));
        assert_eq!(
            res.error.unwrap().message,
            "Dockerfile not found: /missing/Dockerfile"
        );
        // Only the two good builds reached the runtime.
        assert_eq!(
            r.fake
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::Build { .. }))
                .count(),
            2
        );
    }

    /// The review's cases: an `ARG` re-declared without a default, a base with ONBUILD
    /// triggers, an `ADD` whose URL is quoted.
    #[tokio::test]
    async fn the_daemon_builds_only_what_was_judged() {
        let r = rig(|s| {
            s.images.insert(
                "tenants/alice/mine:1".into(),
                ImageInfo {
                    id: "sha256:m".into(),
                    on_build: vec!["RUN echo hi".into()],
                    ..Default::default()
                },
            );
            s.images.insert(
                "tenants/alice/9a27fa:latest".into(),
                ImageInfo {
                    id: "sha256:9".into(),
                    ..Default::default()
                },
            );
        });
        r.put(&[
            (
                "Dockerfile.arg",
                b"ARG A=busybox:latest\nARG A\nFROM ${A:-9a27fa}\nRUN true\n",
            ),
            ("Dockerfile.onbuild", b"FROM mine:1\n"),
            (
                "Dockerfile.copy",
                b"FROM busybox\nCOPY --from=mine:1 /a /a\n",
            ),
            (
                "Dockerfile.add",
                b"FROM busybox\nADD http:'//'127.0.0.1:9/x /x\n",
            ),
            ("app/x", b"x"),
        ]);
        // `ARG A` unsets A: the judge reads `9a27fa`, one of the tenant's images, and the
        // daemon is given exactly that.
        let res = r.run(build("Dockerfile.arg")).await;
        assert!(res.succeeded(), "{res:?}");
        let context = tar_names(&r.fake.script.lock().unwrap().bodies[0]);
        assert_eq!(
            context[CONTEXT_DOCKERFILE],
            "ARG A=busybox:latest\nARG A\nFROM tenants/alice/9a27fa:latest\nRUN true\n"
        );
        // Any ONBUILD trigger on a tenant base refuses it; copying from the image is fine.
        let res = r.run(build("Dockerfile.onbuild")).await;
        assert_eq!(code(&res), Some(12));
        assert!(
            res.error
                .unwrap()
                .message
                .contains("ONBUILD triggers cannot be used as a base"),
        );
        let res = r.run(build("Dockerfile.copy")).await;
        assert!(res.succeeded(), "{res:?}");
        let res = r.run(build("Dockerfile.add")).await;
        assert_eq!(code(&res), Some(12));
        assert_eq!(
            res.error.unwrap().message,
            "ADD http:'//'127.0.0.1:9/x (Dockerfile line 2): nothing can be downloaded onboard"
        );
    }

    /// A failed build's leftovers are the dangling images the engine made while it ran that
    /// the build named as its steps' results: an image id a `RUN` step prints (another dangling
    /// image, made before) is left alone, and so is one something else building on the same
    /// engine made meanwhile (not named by this build).
    #[tokio::test]
    async fn a_failed_build_removes_only_what_it_made() {
        let victim = format!("sha256:{}", "ab".repeat(32));
        let left = format!("sha256:{}", "cd".repeat(32));
        let neighbour = format!("sha256:{}", "ef".repeat(32));
        let (v, l, n) = (victim.clone(), left.clone(), neighbour.clone());
        let r = rig(move |s| {
            s.dangling.push(crate::runtime::ImageSummary {
                id: n,
                created: i64::MAX,
                ..Default::default()
            });
            s.build_log = vec![
                "Step 2/2 : RUN echo ' ---> abababababab'; false".into(),
                " ---> abababababab".into(),
            ];
            s.build_error =
                Some("The command '/bin/sh -c false' returned a non-zero code: 1".into());
            let old = crate::runtime::ImageSummary {
                id: v.clone(),
                created: 1_700_000_000,
                ..Default::default()
            };
            s.dangling.push(old);
            s.images.insert(
                "abababababab".into(),
                ImageInfo {
                    id: v,
                    ..Default::default()
                },
            );
            s.build_leaves = Some(l);
        });
        r.put(&[("app/Dockerfile", b"FROM busybox\nRUN false\n")]);
        let res = r.run(build("app/Dockerfile")).await;
        assert_eq!(code(&res), Some(12), "{res:?}");
        let removed: Vec<String> = r
            .fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::RemoveImage(id) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(removed, [left]);
        let dangling = r.fake.script.lock().unwrap().dangling.clone();
        let ids: Vec<&str> = dangling.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [neighbour.as_str(), victim.as_str()]);
    }

    /// A build waiting for the engine's storage (another tenant's build holds it) is cancelled
    /// without ever reaching the engine.
    #[tokio::test]
    async fn a_build_waiting_for_the_engine_is_cancelled_before_it_starts() {
        let r = rig(|_| {});
        r.put(&[("app/Dockerfile", b"FROM busybox\nRUN true\n")]);
        let held = r.exec.engine_storage.clone().lock_owned().await;
        let exec = r.exec.clone();
        let waiting = tokio::spawn(async move {
            let task = PlanTask {
                trigger: None,
                id: "build".into(),
                on_failure: OnFailure::Stop,
                kind: build("app/Dockerfile"),
            };
            exec.run("alice", "exec0123456789", 0, &task).await
        });
        r.exec
            .cancels
            .record(&wire::CancelOrder {
                execution: "exec0123456789".into(),
                system: "em".into(),
                by: "alice".into(),
                issued_ms: 1,
                signature: Vec::new(),
            })
            .unwrap();
        let result = waiting.await.unwrap();
        assert_eq!(code(&result), Some(23), "{result:?}");
        assert!(result.was_cancelled());
        assert_eq!(
            result.error.unwrap().message,
            "the build did not start: the execution was cancelled while it waited for the engine"
        );
        drop(held);
        assert!(
            !r.fake
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Build { .. })),
            "nothing reached the engine"
        );
    }

    #[tokio::test]
    async fn build_failures_carry_the_daemon_message_and_log() {
        let r = rig(|s| {
            s.build_log = vec![
                "Step 2/2 : RUN wget x".into(),
                "wget: bad address 'x'".into(),
            ];
            s.build_error =
                Some("The command '/bin/sh -c wget x' returned a non-zero code: 1".into());
        });
        r.put(&[("app/Dockerfile", b"FROM busybox\nRUN wget x\n")]);
        let res = r.run(build("app/Dockerfile")).await;
        let e = res.error.unwrap();
        assert_eq!(e.code.code(), 12);
        assert_eq!(
            e.message,
            "The command '/bin/sh -c wget x' returned a non-zero code: 1"
        );
        assert_eq!(e.log_tail.len(), 3);

        let r = rig(|s| s.build_hangs = true);
        r.put(&[("app/Dockerfile", b"FROM busybox\n")]);
        let mut kind = build("app/Dockerfile");
        if let TaskKind::DockerBuild {
            max_duration_ms, ..
        } = &mut kind
        {
            *max_duration_ms = Some(50);
        }
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(20));
    }

    #[tokio::test]
    async fn a_build_needs_room_beyond_the_reserve_and_stops_when_the_disk_fills() {
        let r = rig(|s| s.build_hangs = true);
        r.put(&[
            ("app/Dockerfile", b"FROM busybox\n"),
            ("app/data.bin", &[1u8; 64 << 10]),
        ]);
        let reserve = r.exec.disk.limits.reserve_bytes;
        let set_free = |free: u64| *r.exec.disk.free_override.lock().unwrap() = Some(free);
        let builds = || {
            r.fake
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::Build { .. }))
                .count()
        };
        // Room for the reserve, not for the context and the base besides.
        set_free(reserve + 10_000);
        let res = r.run(build("app/Dockerfile")).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with(&format!(
                "not enough disk: {} free under the Docker Engine's data root {}, and this build (its context of ",
                crate::disk::size(reserve + 10_000),
                r._dir.path().display()
            )) && m.contains("its base images of 1000 bytes)"),
            "{m}"
        );
        assert_eq!(builds(), 0, "the daemon was not asked");
        // With room, it starts; once the engine's disk fills (the volumes' keeps room), it is
        // stopped by the watch of the data root.
        set_free(reserve + (10 << 20));
        let engine = r._dir.path().join("engine");
        fs::create_dir_all(&engine).unwrap();
        r.fake.script.lock().unwrap().data_root = Some(engine.clone());
        let disk = r.exec.disk.clone();
        let at = engine.clone();
        let filler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            disk.free_override_at
                .lock()
                .unwrap()
                .insert(at, reserve - 1);
        });
        let res = r.run(build("app/Dockerfile")).await;
        filler.await.unwrap();
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with(&format!(
                "the build was stopped: the disk is full: {} free under the Docker Engine's data root {}, below the limit",
                crate::disk::size(reserve - 1),
                engine.display()
            )),
            "{m}"
        );
        assert_eq!(builds(), 1);
        assert_eq!(
            fs::read_dir(&r.exec.scratch).unwrap().count(),
            0,
            "no staged context left"
        );
    }

    /// While a build runs, the engine's storage is watched: a build that takes more of it than
    /// `build_bytes`, or whose pace would take free space below the reserve by the next look,
    /// is stopped; an engine whose data root cannot be read runs no build (fail closed).
    #[tokio::test]
    async fn a_build_is_stopped_when_the_engines_storage_grows_too_much_or_too_fast() {
        let mut r = rig(|s| s.build_hangs = true);
        let mut limits = r.exec.disk.limits;
        limits.build_bytes = 4 << 20;
        r.exec.disk = Arc::new(crate::disk::Disk::open(
            limits,
            r._dir.path(),
            r._dir.path(),
        ));
        r.put(&[("app/Dockerfile", b"FROM busybox\n")]);
        let reserve = limits.reserve_bytes;
        let root = r._dir.path().display().to_string();
        async fn stopped(r: &Rig, start: u64, then: u64) -> String {
            let disk = r.exec.disk.clone();
            *disk.free_override.lock().unwrap() = Some(start);
            let fill = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                *disk.free_override.lock().unwrap() = Some(then);
            });
            let res = tokio::time::timeout(Duration::from_secs(20), r.run(build("app/Dockerfile")))
                .await
                .expect("the build was not stopped");
            fill.await.unwrap();
            assert_eq!(code(&res), Some(4), "{res:?}");
            res.error.unwrap().message
        }
        // More than the build may take, slowly: 5 MiB over the 4 MiB of a build.
        let m = stopped(&r, 1 << 30, (1 << 30) - (5 << 20)).await;
        assert_eq!(
            m,
            format!(
                "the build was stopped: what it wrote to the Docker Engine's storage ({root}) is 5242880 bytes (5.0 MiB), over the limit of 4194304 bytes (4.0 MiB) of a build"
            )
        );
        // Within the limit, but at a pace that would reach the reserve before the next look.
        let m = stopped(&r, reserve + (6 << 20), reserve + (2 << 20)).await;
        assert!(
            m.starts_with("the build was stopped: the disk is nearly full: ")
                && m.contains(&format!("under the Docker Engine's data root {root}, 4194304 bytes (4.0 MiB) less than at the last look")),
            "{m}"
        );
        // No data root: no build.
        r.fake.script.lock().unwrap().data_root = None;
        *r.exec.disk.free_override.lock().unwrap() = None;
        let res = r.run(build("app/Dockerfile")).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        assert_eq!(
            res.error.unwrap().message,
            "cannot watch the Docker Engine's storage: docker info names no data root; a build runs only while its storage can be watched"
        );
        r.fake.script.lock().unwrap().data_root = Some(r._dir.path().join("gone"));
        let res = r.run(build("app/Dockerfile")).await;
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with(&format!(
                "the free space of the Docker Engine's data root {root}/gone cannot be read ("
            )) && m.ends_with("a build runs only while its storage can be watched"),
            "{m}"
        );
        let builds = r
            .fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Build { .. }))
            .count();
        assert_eq!(
            builds, 2,
            "the daemon was asked only for the watched builds"
        );
        assert_eq!(fs::read_dir(&r.exec.scratch).unwrap().count(), 0);
    }

    /// A build, a load or an image deletion of one tenant waits while another tenant's build
    /// has the engine's storage (its measure would count theirs), and goes once it ended.
    #[tokio::test(start_paused = true)]
    async fn builds_loads_and_deletions_of_all_tenants_take_the_engines_storage_in_turn() {
        let r = rig(|s| s.build_hangs = true);
        *r.exec.disk.free_override.lock().unwrap() = Some(1 << 40);
        r.put(&[("app/Dockerfile", b"FROM busybox\n")]);
        r.exec.volumes.ensure_volume("bob", "pvc").unwrap();
        let bob = r.exec.volumes.volume_dir("bob", "pvc");
        fs::create_dir_all(bob.join("app")).unwrap();
        fs::write(bob.join("app/Dockerfile"), b"FROM busybox\n").unwrap();
        fs::write(bob.join("img.tar"), save_archive(&["app:1"])).unwrap();
        r.fake.script.lock().unwrap().images.insert(
            "tenants/bob/old:1".into(),
            ImageInfo {
                id: "sha256:0ld".into(),
                ..Default::default()
            },
        );
        let engine_calls = || {
            r.fake
                .calls()
                .into_iter()
                .filter(|c| matches!(c, Call::Build { .. } | Call::Load | Call::RemoveImage(_)))
                .count()
        };
        let load = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "img.tar".into(),
            image: image("app", "1"),
        };
        let delete = TaskKind::ImageDelete {
            image: image("old", "1"),
        };
        let mut alice = Box::pin(r.run(build("app/Dockerfile")));
        for kind in [build("app/Dockerfile"), load.clone(), delete.clone()] {
            let waited = tokio::select! {
                res = &mut alice => panic!("alice's build ended: {res:?}"),
                waited = async {
                    while engine_calls() == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // Bob's would not hang: it is held back only by alice's.
                    r.fake.script.lock().unwrap().build_hangs = false;
                    let waited =
                        tokio::time::timeout(Duration::from_secs(60), r.run_as("bob", kind.clone()))
                            .await;
                    r.fake.script.lock().unwrap().build_hangs = true;
                    waited
                } => waited,
            };
            assert!(
                waited.is_err(),
                "{kind:?} ran beside alice's build: {waited:?}"
            );
            assert_eq!(engine_calls(), 1, "{:?}", r.fake.calls());
        }
        // Once alice's build is gone, bob's work goes.
        drop(alice);
        r.fake.script.lock().unwrap().build_hangs = false;
        for kind in [build("app/Dockerfile"), load, delete] {
            let res = r.run_as("bob", kind).await;
            assert!(res.succeeded(), "{res:?}");
        }
        assert_eq!(engine_calls(), 4);
    }

    /// sha256 of `{}`, the config of [`save_archive`]'s image.
    const CONFIG_HEX: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn save_archive(tags: &[&str]) -> Vec<u8> {
        save_archive_with(tags, CONFIG_HEX)
    }

    fn save_archive_with(tags: &[&str], hex: &str) -> Vec<u8> {
        let manifest =
            serde_json::json!([{"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": []}]);
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            (format!("{hex}.json"), b"{}".to_vec()),
            ("repositories".into(), b"{}".to_vec()),
            (
                "manifest.json".into(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[tokio::test]
    async fn load_refuses_a_config_that_is_not_its_id() {
        let r = rig(|_| {});
        // The manifest claims an id (perhaps another tenant's image) its config does not hash to.
        r.put(&[("app.tar", &save_archive_with(&["app:1"], &"d".repeat(64)))]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("app", "1"),
        };
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(11), "{res:?}");
        assert!(
            res.error.unwrap().message.contains("not the sha256:dddd"),
            "message names the mismatch"
        );
        assert!(r.fake.script.lock().unwrap().bodies.is_empty());
    }

    #[tokio::test]
    async fn load_strips_names_and_tags_the_id() {
        let r = rig(|_| {});
        r.put(&[("app.tar", &save_archive(&["busybox:latest"]))]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("busybox", "latest"),
        };
        let res = r.run(kind).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(
            res.outputs.image.as_deref(),
            Some("tenants/alice/busybox:latest")
        );
        let loaded = r.fake.script.lock().unwrap().bodies[0].clone();
        let names = tar_names(&loaded);
        assert!(!names.contains_key("repositories"));
        assert!(
            names["manifest.json"].contains(r#""RepoTags":[]"#),
            "{}",
            names["manifest.json"]
        );
        assert!(r.fake.calls().contains(&Call::Tag {
            image: format!("sha256:{CONFIG_HEX}"),
            repo: "tenants/alice/busybox".into(),
            tag: "latest".into()
        }));

        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("other", "1"),
        };
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(16));
        assert_eq!(
            res.error.unwrap().message,
            "archive holds [busybox:latest], not other:1"
        );
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/nope.tar".into(),
            image: image("x", "1"),
        };
        assert_eq!(code(&r.run(kind).await), Some(10));
        r.put(&[("junk.tar", b"junk")]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/junk.tar".into(),
            image: image("x", "1"),
        };
        assert_eq!(code(&r.run(kind).await), Some(11));
    }

    #[tokio::test]
    async fn image_delete_removes_only_the_tenants_own_name() {
        let own = |name: &str| {
            (
                format!("tenants/alice/{name}"),
                ImageInfo {
                    id: format!("sha256:{}", "a".repeat(64)),
                    ..Default::default()
                },
            )
        };
        let r = rig(|s| {
            s.images.extend([own("app:1"), own("busybox:latest")]);
            s.images.insert(
                "tenants/bob/app:1".into(),
                ImageInfo {
                    id: format!("sha256:{}", "c".repeat(64)),
                    ..Default::default()
                },
            );
        });
        let delete = |name: &str, tag: &str| TaskKind::ImageDelete {
            image: image(name, tag),
        };
        let res = r.run(delete("app", "1")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.image.as_deref(), Some("tenants/alice/app:1"));
        // A tenant's own image named like a catalogue image is the tenant's to delete.
        assert!(r.run(delete("busybox", "latest")).await.succeeded());

        for (name, tag, want, message) in [
            (
                "gcr.io/distroless/static-debian12",
                "latest",
                2,
                "gcr.io/distroless/static-debian12:latest is the catalogue image gcr.io/distroless/static-debian12:latest, shared by every tenant: only your own images (built or loaded) can be deleted",
            ),
            (
                "busybox",
                "1.36",
                15,
                "busybox:1.36 is not among your images onboard",
            ),
            (
                "tenants/bob/app",
                "1",
                2,
                "tenants/bob/app:1 is not one of your images: name yours as you built or loaded it (app:1); another tenant's is never yours to delete; only your own images (built or loaded) can be deleted",
            ),
            (
                "registry:5000/app",
                "1",
                2,
                "registry:5000/app:1 is not one of your images: their names have no '/'; only your own images (built or loaded) can be deleted",
            ),
            ("nope", "1", 15, "nope:1 is not among your images onboard"),
        ] {
            let res = r.run(delete(name, tag)).await;
            assert_eq!(code(&res), Some(want), "{name}: {res:?}");
            assert_eq!(res.error.unwrap().message, message);
        }
        // Without an own image of that name, the catalogue's is refused.
        let bare = rig(|_| {});
        let res = bare.run(delete("busybox", "latest")).await;
        assert_eq!(code(&res), Some(2), "{res:?}");
        assert!(res.error.unwrap().message.starts_with(
            "busybox:latest is the catalogue image busybox:latest, shared by every tenant"
        ));
        assert!(
            !bare
                .fake
                .calls()
                .iter()
                .any(|c| matches!(c, Call::RemoveImage(_)))
        );
        let removed: Vec<Call> = r
            .fake
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::RemoveImage(_)))
            .collect();
        assert_eq!(
            removed,
            [
                Call::RemoveImage("tenants/alice/app:1".into()),
                Call::RemoveImage("tenants/alice/busybox:latest".into())
            ]
        );
    }

    #[tokio::test]
    async fn image_list_shows_only_the_tenants_images_by_their_own_names() {
        let r = rig(|s| {
            for name in [
                "tenants/alice/app:v1",
                "tenants/alice/app:v2",
                "tenants/alice/x.y:latest",
                "tenants/alicex/app:v1",
                "tenants/bob/app:v1",
            ] {
                s.images.insert(
                    name.into(),
                    ImageInfo {
                        id: format!("sha256:{name}"),
                        ..Default::default()
                    },
                );
            }
        });
        let res = r.run(TaskKind::ImageList).await;
        assert!(res.succeeded(), "{res:?}");
        let got: Vec<(&str, &str)> = res
            .outputs
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.tag.as_str()))
            .collect();
        assert_eq!(got, [("app", "v1"), ("app", "v2"), ("x.y", "latest")]);
        assert_eq!(res.outputs.images[0].id, "sha256:tenants/alice/app:v1");
        assert_eq!(res.outputs.images[0].created_ms, 1_700_000_000_000);
        assert_eq!(res.outputs.message.as_deref(), Some("3 images"));
        assert!(
            r.fake
                .calls()
                .contains(&Call::List("tenants/alice/*".into()))
        );
    }

    #[tokio::test]
    async fn sparse_archives_and_contexts_are_refused_before_they_are_read() {
        let r = rig(|_| {});
        r.put(&[
            ("Dockerfile", b"FROM busybox\nCOPY . /app\n"),
            ("app/x", b"x"),
        ]);
        for p in ["app/big.bin", "big.tar"] {
            File::create(r.volume().join(p))
                .unwrap()
                .set_len(8 << 30)
                .unwrap();
        }
        let limits = r.exec.disk.limits;

        let res = r.run(build("Dockerfile")).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        // The context's files and the judged Dockerfile added to it.
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("the build context /app (over at /app/big.bin) is 85899346")
                && m.ends_with(&format!(
                    " bytes (8.0 GiB), over the limit of {} of a build context",
                    crate::disk::size(limits.build_context_bytes)
                )),
            "{m}"
        );
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/big.tar".into(),
            image: image("busybox", "latest"),
        };
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        assert_eq!(
            res.error.unwrap().message,
            format!(
                "/big.tar is 8589934592 bytes (8.0 GiB), over the limit of {} of an image archive",
                crate::disk::size(limits.archive_bytes)
            )
        );
        // Nothing reached the daemon, nothing is left staged.
        assert!(r.fake.script.lock().unwrap().bodies.is_empty());
        assert_eq!(fs::read_dir(&r.exec.scratch).unwrap().count(), 0);

        // Within the limit, the context goes to the daemon, each file its measured size.
        fs::remove_file(r.volume().join("app/big.bin")).unwrap();
        let res = r.run(build("Dockerfile")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(fs::read_dir(&r.exec.scratch).unwrap().count(), 0);
    }
}
