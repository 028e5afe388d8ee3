//! Files in a volume: uplink (objects placed atomically after their digest verified),
//! downlink (files become objects queued for the ground), files.list and files.delete.
//!
//! A volume that does not exist yet is empty, as Clustergate-2 has it ("a new name is a new,
//! empty volume"): listing it lists nothing, and a file downlinked or deleted from it is not
//! found.

use super::*;

impl Executor {
    /// The objects a finished downlink (`kind`, with its recorded `outputs`) sent, to send again:
    /// they went to the outbox in memory, and a restart before the link stored them lost them,
    /// while the task's event is sent again from the plan's record. The ground then waits for
    /// files that never come. Those no longer in the store are left out; the link delivers an
    /// object the ground has already at no harm.
    pub(crate) fn downlinked(
        &self,
        kind: &TaskKind,
        outputs: Option<&TaskOutputs>,
    ) -> Vec<Outgoing> {
        let (TaskKind::Downlink { .. }, Some(outputs)) = (kind, outputs) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        outputs
            .files
            .iter()
            .filter(|f| seen.insert(f.digest) && self.store.missing([f.digest]).is_empty())
            .map(|f| Outgoing::Object {
                digest: f.digest,
                size: f.size,
                priority: DOWNLINK_PRIORITY,
            })
            .collect()
    }

    #[allow(clippy::result_large_err)]
    pub(super) async fn uplink(
        &self,
        tenant: &str,
        volume: &str,
        files: &[UplinkFile],
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        let mut targets = Vec::with_capacity(files.len());
        for f in files {
            let rel = RelPath::parse(&f.path).map_err(invalid)?;
            if rel.is_root() {
                return Err(invalid(format!(
                    "uplink file {:?} names the volume root",
                    f.path
                )));
            }
            targets.push((rel, f.digest, f.mode));
        }
        let digests: Vec<Digest> = files.iter().map(|f| f.digest).collect();
        let outbox = self.outbox.clone();
        let missing = self
            .store
            .wait_for(&digests, self.object_wait, NEED_RETRY, &mut |stalled| {
                tracing::info!(
                    objects = stalled.len(),
                    "asking again for objects that stopped arriving"
                );
                // Best effort: when the outbox is full, the next round asks again.
                let need = Message::Need { digests: stalled };
                let _ = outbox.try_send(Outgoing::Message(need));
            })
            .await;
        // One the link refused to take (no room onboard) fails the task at once, with why.
        if let Some((digest, reason)) = self.store.take_declined(&missing).into_iter().next() {
            return Err(TaskResult::fail(
                ErrorCode::TransferFailed,
                format!("object {digest} could not be received: {reason}"),
            ));
        }
        if !missing.is_empty() {
            let some: Vec<String> = missing.iter().take(3).map(Digest::to_string).collect();
            return Err(TaskResult::fail(
                ErrorCode::TransferFailed,
                format!(
                    "{} of {} objects did not arrive within {}: {}{}",
                    missing.len(),
                    digests.len(),
                    duration(self.object_wait),
                    some.join(", "),
                    if missing.len() > 3 { ", ..." } else { "" }
                ),
            ));
        }
        self.room_for_work().await?;
        let volumes = self.volumes.clone();
        let (tenant_name, volume_name) = (tenant.to_string(), volume.to_string());
        let (root, owner) = blocking(move || volumes.ensure_volume_dir(&tenant_name, &volume_name))
            .await?
            .map_err(execution_error)?;
        let root = Arc::new(root);
        // The tenant's volumes, with what lands (less what it replaces), must stay within the
        // tenant's limit, in logical sizes.
        let used = self.tenant_usage(tenant).await?;
        let (store, measured, at) = (self.store.clone(), targets.clone(), root.clone());
        let incoming = blocking(move || -> i128 {
            measured
                .iter()
                .map(|(rel, digest, _)| {
                    let new = fs::metadata(store.path(digest)).map_or(0, |m| m.len());
                    let old = at
                        .stat(rel)
                        .ok()
                        .flatten()
                        .filter(volumes::Meta::is_file)
                        .map_or(0, |m| m.len);
                    i128::from(new) - i128::from(old)
                })
                .sum()
        })
        .await?;
        let after = u64::try_from((i128::from(used) + incoming).max(0)).unwrap_or(u64::MAX);
        self.volumes_within(
            tenant,
            after,
            &format!(
                "volume {volume} with this uplink ({} already in your volumes)",
                crate::disk::size(used)
            ),
            Some(&format!("with this uplink into volume {volume}")),
        )?;
        let (volumes, store) = (self.volumes.clone(), self.store.clone());
        let (count, bytes) = blocking(move || -> Step<(usize, u64)> {
            let mut bytes = 0;
            for (rel, digest, mode) in &targets {
                let mut source = File::open(store.path(digest)).map_err(|e| {
                    execution_error(format!("object {digest} for {}: {e}", rel.display()))
                })?;
                bytes += root
                    .write_file(&volumes, rel, owner, &mut source, *mode)
                    .map_err(|e| path_failure(e, ErrorCode::ExecutionError))?;
            }
            Ok((targets.len(), bytes))
        })
        .await??;
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{count} files, {bytes} bytes")),
            ..TaskOutputs::default()
        }))
    }

    #[allow(clippy::result_large_err)]
    pub(super) async fn downlink(
        &self,
        tenant: &str,
        execution: &str,
        index: usize,
        volume: &str,
        sources: &[String],
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        if sources.is_empty() {
            return Err(invalid("the downlink names no source".into()));
        }
        let first = sources[0].clone();
        let root = Arc::new(existing_volume(&self.volumes, tenant, volume, || {
            execution_error(format!("File not found: {first}"))
        })?);
        let (sources, at) = (sources.to_vec(), root.clone());
        let files = blocking(move || -> Step<BTreeMap<String, volumes::Found>> {
            let mut all = BTreeMap::new();
            for source in &sources {
                let found = volumes::expand(&at, source)
                    .map_err(|e| path_failure(e, ErrorCode::ExecutionError))?;
                if found.is_empty() {
                    return Err(execution_error(format!("File not found: {source}")));
                }
                all.extend(found.into_iter().map(|f| (f.rel.clone(), f)));
                if all.len() > MAX_DOWNLINK_FILES {
                    return Err(invalid(format!(
                        "the downlink names more than {MAX_DOWNLINK_FILES} files"
                    )));
                }
            }
            Ok(all)
        })
        .await??;
        // Every file is measured before anything is copied: its logical size (a sparse file
        // counts what a reader gets), against the limit of a file and what the object store may
        // still take. Each is opened beneath the volume root, following no symlink.
        let caps = self.disk.limits;
        let file_limit = caps.downlink_file_bytes;
        let (store_root, measured) = (self.store.layout().root().to_path_buf(), files.clone());
        let (disk, at) = (self.disk.clone(), root.clone());
        let (store_used, measured_total) = blocking(move || -> Step<(u64, u64)> {
            let mut total = 0u64;
            for (rel, found) in &measured {
                let shown = format!("/{rel}");
                let (_, meta) = at
                    .open_file_parts(&found.parts(), &shown)
                    .map_err(|e| execution_error(format!("cannot read {}", e.message())))?;
                if meta.len > file_limit {
                    return Err(limits::over_limit(
                        &shown,
                        meta.len,
                        file_limit,
                        "of a downlinked file",
                    ));
                }
                total = total.saturating_add(meta.len);
            }
            // With the objects the link is still receiving: they land in the store too.
            // Not all counted: the store may be over its cap already.
            let used = disk
                .object_store_usage(&store_root)
                .map_err(execution_error)?;
            Ok((used.saturating_add(total), total))
        })
        .await??;
        if store_used > caps.object_store_bytes {
            return Err(limits::over_limit(
                "the object store with this downlink",
                store_used,
                caps.object_store_bytes,
                "of the object store",
            ));
        }
        self.room_for_work().await?;
        // Within the tenant's downlink quota of the day before anything is copied; charged once
        // the objects exist (a task run again after a restart is charged once).
        let charge_key = format!("{execution}/{index}");
        self.check_downlink(tenant, &charge_key, measured_total)?;
        // Each file becomes an object of the store first: what is sent is that snapshot, whatever
        // happens to the file later. Nothing is queued unless every file could be read. The copy
        // counts what it reads: a file that grew past the limit meanwhile is refused too.
        let mut refs = Vec::with_capacity(files.len());
        let mut objects = Vec::new();
        let mut seen = HashSet::new();
        let mut total = 0;
        for (rel, found) in files {
            let (store, at) = (self.store.clone(), root.clone());
            let shown = format!("/{rel}");
            let copied = blocking(move || {
                let (mut file, _) = at
                    .open_file_parts(&found.parts(), &shown)
                    .map_err(|e| cas::CopyError::Io(io::Error::other(e.message().to_string())))?;
                store.add_file(&mut file, file_limit)
            })
            .await?;
            let (digest, size) = copied.map_err(|e| match e {
                cas::CopyError::TooLarge(limit) => TaskResult::fail(
                    ErrorCode::ExecutionError,
                    format!(
                        "/{rel} grew while it was copied, over the limit of {} of a downlinked file",
                        crate::disk::size(limit)
                    ),
                ),
                e => execution_error(format!("cannot copy /{rel} for the downlink: {e}")),
            })?;
            if seen.insert(digest) {
                objects.push((digest, size));
            }
            total += size;
            refs.push(FileRef {
                path: format!("/{rel}"),
                digest,
                size,
            });
        }
        self.charge_downlink(tenant, &charge_key, total)?;
        // The link delivers the objects, perhaps long after the task's event; the ground waits
        // for them.
        for (digest, size) in objects {
            let object = Outgoing::Object {
                digest,
                size,
                priority: DOWNLINK_PRIORITY,
            };
            self.outbox
                .send(object)
                .await
                .map_err(|_| execution_error("the link to the ground has stopped"))?;
        }
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{} files, {total} bytes", refs.len())),
            files: refs,
            ..TaskOutputs::default()
        }))
    }

    #[allow(clippy::result_large_err)]
    pub(super) async fn files_list(
        &self,
        tenant: &str,
        volume: Option<&str>,
        folder: &str,
        depth: u32,
    ) -> Step<TaskResult> {
        let folder = RelPath::parse(folder).map_err(invalid)?;
        let opened = match volume {
            Some(v) => {
                names::check_volume(v).map_err(invalid)?;
                self.volumes.open_volume(tenant, v)
            }
            None => self.volumes.open_tenant(tenant),
        }
        .map_err(execution_error)?;
        let Some(root) = opened else {
            if !folder.is_root() {
                return Err(execution_error(format!(
                    "Folder not found: {}",
                    folder.display()
                )));
            }
            let message = match volume {
                Some(v) => format!("0 entries (volume {v} is empty)"),
                None => "0 entries".into(),
            };
            return Ok(TaskResult::ok(TaskOutputs {
                message: Some(message),
                ..TaskOutputs::default()
            }));
        };
        let prefix = if folder.is_root() {
            String::new()
        } else {
            folder.display()
        };
        let (listing, walked) = blocking(move || -> Step<_> {
            let dir = root.open_dir(&folder).map_err(|e| match e {
                PathError::NotFound(_) => {
                    execution_error(format!("Folder not found: {}", folder.display()))
                }
                PathError::Invalid(_) => {
                    execution_error(format!("{} is not a folder", folder.display()))
                }
                e => path_failure(e, ErrorCode::ExecutionError),
            })?;
            Ok(volumes::list(&dir, &prefix, depth.max(1), MAX_LISTING))
        })
        .await??;
        let mut message = format!("{} entries", listing.len());
        match walked {
            volumes::Walked::Whole => {}
            volumes::Walked::Capped => message.push_str(&format!(", cut at {MAX_LISTING}")),
            volumes::Walked::Incomplete(why) => message.push_str(&format!(", incomplete: {why}")),
        }
        Ok(TaskResult::ok(TaskOutputs {
            listing,
            message: Some(message),
            ..TaskOutputs::default()
        }))
    }

    /// Deletes files and folders; the volume root deletes the volume. Every path is resolved
    /// before anything is deleted, so a missing one deletes nothing.
    #[allow(clippy::result_large_err)]
    pub(super) async fn files_delete(
        &self,
        tenant: &str,
        volume: &str,
        paths: &[String],
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        if paths.is_empty() {
            return Err(invalid("the delete names no path".into()));
        }
        let rels = paths
            .iter()
            .map(|p| RelPath::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let not_found =
            |rel: &RelPath| execution_error(format!("File not found: {}", rel.display()));
        if rels.iter().any(RelPath::is_root) {
            let (volumes, t, v) = (self.volumes.clone(), tenant.to_string(), volume.to_string());
            let deleted = blocking(move || volumes.delete_volume(&t, &v))
                .await?
                .map_err(|e| execution_error(format!("cannot delete the volume {volume}: {e}")))?;
            if !deleted {
                return Err(execution_error(format!("Volume not found: {volume}")));
            }
            return Ok(TaskResult::ok(TaskOutputs {
                message: Some(format!("deleted the volume {volume}")),
                ..TaskOutputs::default()
            }));
        }
        let root = existing_volume(&self.volumes, tenant, volume, || not_found(&rels[0]))?;
        let deleted = blocking(move || -> Step<usize> {
            // Every path is there before anything is deleted.
            for rel in &rels {
                match root.stat(rel) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(not_found(rel)),
                    Err(PathError::NotFound(_)) => return Err(not_found(rel)),
                    Err(e) => return Err(path_failure(e, ErrorCode::ExecutionError)),
                }
            }
            let mut deleted = 0;
            for rel in &rels {
                match root.remove(rel) {
                    Ok(()) => deleted += 1,
                    // An earlier path held this one.
                    Err(PathError::NotFound(_)) => {}
                    Err(e) => return Err(path_failure(e, ErrorCode::ExecutionError)),
                }
            }
            Ok(deleted)
        })
        .await??;
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{deleted} deleted")),
            ..TaskOutputs::default()
        }))
    }
}

impl Executor {
    /// Moves a file or a folder within a volume by one rename: the source disappears and the
    /// destination appears in the same instant, and a crash leaves one or the other. A symlink
    /// is moved as a link, never followed. The destination is the new path of the source (its
    /// missing parent folders are created, owned by the tenant), never a folder to move into,
    /// and an existing destination is refused, not replaced: the rename itself refuses it
    /// (`RENAME_NOREPLACE`), so nothing written meanwhile is lost either. The paths are judged
    /// by `wire::FileMove`, the ground's rule; both are resolved beneath the volume's open root,
    /// and a path through a symlink is refused.
    #[allow(clippy::result_large_err)]
    pub(super) async fn files_move(
        &self,
        tenant: &str,
        volume: &str,
        source: &str,
        destination: &str,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        // The one judge of a move's paths, the ground's too.
        let judged =
            wire::names::FileMove::new(source, destination).map_err(|e| invalid(e.to_string()))?;
        let (from, to) = (
            RelPath::of(judged.source()),
            RelPath::of(judged.destination()),
        );
        let not_found =
            |rel: &RelPath| execution_error(format!("File not found: {}", rel.display()));
        let root = existing_volume(&self.volumes, tenant, volume, || not_found(&from))?;
        let owner = self.volumes.owner(tenant).map_err(execution_error)?;
        let volumes = self.volumes.clone();
        let (shown_from, shown_to) = (from.display(), to.display());
        let is_dir = blocking(move || -> Step<bool> {
            root.rename_new(&volumes, &from, &to, owner)
                .map_err(|e| match e {
                    PathError::NotFound(_) => not_found(&from),
                    PathError::Exists(shown) => execution_error(format!(
                        "{shown} exists; files.move never replaces anything (delete it first with files.delete)"
                    )),
                    e => path_failure(e, ErrorCode::ExecutionError),
                })
        })
        .await??;
        let what = if is_dir { "folder" } else { "file" };
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("moved the {what} {shown_from} to {shown_to}")),
            ..TaskOutputs::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[tokio::test]
    async fn uplink_places_verified_objects() {
        let r = rig(|_| {});
        let a = r.exec.store.put(b"input data\n");
        let b = r.exec.store.put(b"#!/bin/sh\n");
        let files = vec![
            UplinkFile {
                path: "/in/input.txt".into(),
                digest: a,
                size: 11,
                mode: 0o644,
            },
            UplinkFile {
                path: "bin/run.sh".into(),
                digest: b,
                size: 10,
                mode: 0o755,
            },
        ];
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files,
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.message.as_deref(), Some("2 files, 21 bytes"));
        assert_eq!(
            fs::read(r.volume().join("in/input.txt")).unwrap(),
            b"input data\n"
        );
        let mode = fs::metadata(r.volume().join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    /// Issue 11: an object the link refused to take (no room onboard) fails the uplink waiting
    /// for it at once, with the reason, instead of a wait for as long as objects may take (in
    /// paused time: the reason says which ended it).
    #[tokio::test(start_paused = true)]
    async fn uplink_fails_at_once_when_its_object_is_declined() {
        let mut r = rig(|_| {});
        r.exec.object_wait = Duration::from_secs(600);
        let d = Digest::of(b"too big");
        let files = vec![UplinkFile {
            path: "x".into(),
            digest: d,
            size: 10,
            mode: 0o644,
        }];
        let store = r.exec.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.declined(&d, "no room onboard for an object of 10 bytes");
        });
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files: files.clone(),
            })
            .await;
        assert_eq!(code(&res), Some(21), "{res:?}");
        assert_eq!(
            res.error.unwrap().message,
            format!("object {d} could not be received: no room onboard for an object of 10 bytes")
        );
        // Taken: asked for again, the object is waited for as any other.
        r.exec.object_wait = Duration::from_millis(100);
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files,
            })
            .await;
        let m = res.error.unwrap().message;
        assert!(m.starts_with("1 of 1 objects did not arrive"), "{m}");
    }

    #[tokio::test]
    async fn uplink_fails_when_objects_never_come() {
        let r = rig(|_| {});
        let d = Digest::of(b"never sent");
        let files = vec![UplinkFile {
            path: "x".into(),
            digest: d,
            size: 10,
            mode: 0o644,
        }];
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files,
            })
            .await;
        assert_eq!(code(&res), Some(21), "{res:?}");
        for bad in ["../x", "/"] {
            let files = vec![UplinkFile {
                path: bad.into(),
                digest: d,
                size: 1,
                mode: 0o644,
            }];
            let res = r
                .run(TaskKind::Uplink {
                    volume: "pvc".into(),
                    files,
                })
                .await;
            assert_eq!(code(&res), Some(2), "{bad}: {res:?}");
        }
        let res = r
            .run(TaskKind::Uplink {
                volume: "../pvc".into(),
                files: vec![],
            })
            .await;
        assert_eq!(code(&res), Some(2));
    }

    #[tokio::test]
    async fn downlink_makes_objects_and_queues_each_once() {
        let mut r = rig(|_| {});
        let big = vec![7u8; (1 << 20) + 10];
        r.put(&[
            ("out/a.txt", b"a"),
            ("out/b.bin", &big),
            ("out/same.txt", b"a"),
            ("out/empty", b""),
        ]);
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/*".into()],
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        let paths: Vec<(&str, u64)> = res
            .outputs
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size))
            .collect();
        assert_eq!(
            paths,
            [
                ("/out/a.txt", 1),
                ("/out/b.bin", big.len() as u64),
                ("/out/empty", 0),
                ("/out/same.txt", 1)
            ]
        );
        // Every file is an object of the store; identical files are queued once.
        let mut queued = Vec::new();
        while let Ok(Outgoing::Object {
            digest,
            size,
            priority,
        }) = r.rx.try_recv()
        {
            assert_eq!(priority, DOWNLINK_PRIORITY);
            assert_eq!(
                fs::metadata(r.exec.store.path(&digest)).unwrap().len(),
                size
            );
            queued.push(digest);
        }
        assert_eq!(queued.len(), 3);
        for f in &res.outputs.files {
            assert!(queued.contains(&f.digest));
            assert_eq!(
                Digest::of(&fs::read(r.exec.store.path(&f.digest)).unwrap()),
                f.digest
            );
        }

        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/a.txt".into(), "nope*.txt".into()],
            })
            .await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(res.error.unwrap().message, "File not found: nope*.txt");
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["../../etc/passwd".into()],
            })
            .await;
        assert_eq!(code(&res), Some(2));
    }

    #[tokio::test]
    async fn lists_a_volume_or_all_of_them() {
        let r = rig(|_| {});
        r.put(&[("a/b/c.txt", b"abc"), ("top.txt", b"t")]);
        let res = r
            .run(TaskKind::FilesList {
                volume: Some("pvc".into()),
                folder: "/a".into(),
                depth: 1,
            })
            .await;
        let paths: Vec<&str> = res
            .outputs
            .listing
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["/a/b"]);
        let res = r
            .run(TaskKind::FilesList {
                volume: None,
                folder: "/".into(),
                depth: 2,
            })
            .await;
        let paths: Vec<&str> = res
            .outputs
            .listing
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["/pvc", "/pvc/a", "/pvc/top.txt"]);
        let res = r
            .run(TaskKind::FilesList {
                volume: Some("pvc".into()),
                folder: "/nope".into(),
                depth: 1,
            })
            .await;
        assert_eq!(code(&res), Some(4));
    }

    #[tokio::test]
    async fn a_volume_that_does_not_exist_is_empty() {
        let r = rig(|_| {});
        let res = r
            .run(TaskKind::FilesList {
                volume: Some("new".into()),
                folder: "/".into(),
                depth: 2,
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert!(res.outputs.listing.is_empty());
        let res = r
            .run(TaskKind::Downlink {
                volume: "new".into(),
                sources: vec!["out/a.txt".into()],
            })
            .await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(res.error.unwrap().message, "File not found: out/a.txt");
        let res = r
            .run(TaskKind::FilesDelete {
                volume: "new".into(),
                paths: vec!["/".into()],
            })
            .await;
        assert_eq!(res.error.unwrap().message, "Volume not found: new");
    }

    #[tokio::test]
    async fn delete_removes_files_folders_links_or_the_volume() {
        let r = rig(|_| {});
        r.put(&[
            ("a/b/c.txt", b"abc"),
            ("a/d.txt", b"d"),
            ("top.txt", b"t"),
            ("keep.txt", b"k"),
        ]);
        let outside = r._dir.path().join("outside.txt");
        fs::write(&outside, b"o").unwrap();
        std::os::unix::fs::symlink(&outside, r.volume().join("link")).unwrap();
        let delete = |paths: &[&str]| TaskKind::FilesDelete {
            volume: "pvc".into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        };

        // A missing path deletes nothing, not even the paths before it.
        let res = r.run(delete(&["top.txt", "nope/x"])).await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(res.error.unwrap().message, "File not found: /nope/x");
        assert!(r.volume().join("top.txt").exists());
        for bad in ["../x", "a/../../x"] {
            assert_eq!(code(&r.run(delete(&[bad])).await), Some(2), "{bad}");
        }

        let res = r.run(delete(&["/a", "a/b/c.txt", "top.txt", "link"])).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.message.as_deref(), Some("3 deleted"));
        assert!(!r.volume().join("a").exists() && !r.volume().join("top.txt").exists());
        assert!(fs::symlink_metadata(r.volume().join("link")).is_err());
        assert_eq!(fs::read(&outside).unwrap(), b"o", "a link's target stays");
        assert!(r.volume().join("keep.txt").exists());

        let res = r.run(delete(&["/"])).await;
        assert!(res.succeeded(), "{res:?}");
        assert!(!r.volume().exists());
    }

    fn mv(from: &str, to: &str) -> TaskKind {
        TaskKind::FilesMove {
            volume: "pvc".into(),
            source: from.into(),
            destination: to.into(),
        }
    }

    #[tokio::test]
    async fn move_renames_files_and_folders_and_makes_parents() {
        let r = rig(|_| {});
        r.put(&[("a/b/c.txt", b"abc"), ("top.txt", b"t")]);
        let res = r.run(mv("top.txt", "/archive/2026/top.txt")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(
            res.outputs.message.as_deref(),
            Some("moved the file /top.txt to /archive/2026/top.txt")
        );
        assert!(!r.volume().join("top.txt").exists());
        assert_eq!(
            fs::read(r.volume().join("archive/2026/top.txt")).unwrap(),
            b"t"
        );
        let res = r.run(mv("/a", "/z")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(
            res.outputs.message.as_deref(),
            Some("moved the folder /a to /z")
        );
        assert_eq!(fs::read(r.volume().join("z/b/c.txt")).unwrap(), b"abc");
        assert!(!r.volume().join("a").exists());
    }

    #[tokio::test]
    async fn move_never_replaces_and_names_what_is_missing() {
        let r = rig(|_| {});
        r.put(&[("a.txt", b"a"), ("b.txt", b"b"), ("dir/x", b"x")]);
        for (to, shown) in [("b.txt", "/b.txt"), ("/dir", "/dir")] {
            let res = r.run(mv("a.txt", to)).await;
            assert_eq!(code(&res), Some(4), "{res:?}");
            assert_eq!(
                res.error.unwrap().message,
                format!(
                    "{shown} exists; files.move never replaces anything (delete it first with files.delete)"
                )
            );
        }
        let res = r.run(mv("dir", "b.txt")).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        assert_eq!(fs::read(r.volume().join("a.txt")).unwrap(), b"a");
        assert_eq!(fs::read(r.volume().join("b.txt")).unwrap(), b"b");

        let res = r.run(mv("nope.txt", "c.txt")).await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(res.error.unwrap().message, "File not found: /nope.txt");
        // A destination under a file: its parent cannot be a folder.
        let res = r.run(mv("a.txt", "b.txt/a.txt")).await;
        assert_eq!(code(&res), Some(2), "{res:?}");
        // A volume that does not exist holds nothing.
        let res = r
            .run(TaskKind::FilesMove {
                volume: "new".into(),
                source: "a.txt".into(),
                destination: "b".into(),
            })
            .await;
        assert_eq!(res.error.unwrap().message, "File not found: /a.txt");
    }

    #[tokio::test]
    async fn move_refuses_the_root_itself_and_escapes() {
        let r = rig(|_| {});
        r.put(&[("dir/x", b"x"), ("f", b"f")]);
        let outside = r._dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, r.volume().join("out")).unwrap();
        std::os::unix::fs::symlink(r.volume().join("dir"), r.volume().join("indir")).unwrap();
        for (from, to, want) in [
            ("/", "x", 2),
            ("f", "/", 2),
            ("f", "f", 2),
            ("../x", "f2", 2),
            ("f", "a/../../f", 2),
            ("dir", "dir/sub/dir", 2),
            // Through a link (out of the volume, or into the folder moved): no link is followed.
            ("out/secret", "stolen", 4),
            ("f", "out/f", 4),
            ("dir", "indir/sub", 4),
        ] {
            let res = r.run(mv(from, to)).await;
            assert_eq!(code(&res), Some(want), "{from} -> {to}: {res:?}");
        }
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"s");
        assert!(!outside.join("f").exists());
        assert!(!r.volume().join("stolen").exists());
        assert!(r.volume().join("dir/x").exists() && r.volume().join("f").exists());

        // A link is moved as a link: its target stays where it is.
        let res = r.run(mv("out", "links/out")).await;
        assert!(res.succeeded(), "{res:?}");
        let moved = r.volume().join("links/out");
        assert!(
            fs::symlink_metadata(&moved)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"s");
    }

    /// What a pod may do to its volume at any instant: swap a folder for a symlink to a folder
    /// outside. A thread swaps `sw` (`RENAME_EXCHANGE`, atomic) between a folder and a symlink to
    /// `outside`, which holds canary files, as fast as it can, while uplinks, moves, deletes,
    /// downlinks, builds and captures go through `sw`. Nothing outside is ever read (no object,
    /// no build context holds a canary), written, moved or deleted; every task either does its
    /// work inside the volume or fails saying why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_folder_swapped_for_a_symlink_never_leads_outside() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        const CANARY: &[u8] = b"FROM busybox\n# canary: outside the volume\n";
        let r = rig(|_| {});
        r.put(&[("seed.txt", b"s")]);
        let outside = r._dir.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        for f in ["canary", "sub/canary", "Dockerfile"] {
            fs::write(outside.join(f), CANARY).unwrap();
        }
        let snapshot = |dir: &Path| {
            let mut all = Vec::new();
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                all.push(e.file_name().to_string_lossy().into_owned());
            }
            all.sort();
            all
        };
        let before = (snapshot(&outside), snapshot(&outside.join("sub")));
        let vol = r.volume();
        let (sw, alt) = (vol.join("sw"), vol.join("alt"));
        fs::create_dir(&sw).unwrap();
        std::os::unix::fs::symlink(&outside, &alt).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = {
            let (stop, swaps) = (stop.clone(), swaps.clone());
            std::thread::spawn(move || {
                use rustix::fs::{CWD, RenameFlags, renameat_with};
                let mut dir_at_sw = true;
                while !stop.load(Ordering::Relaxed) {
                    // The folder, wherever it is now, holds files of the names the tasks use.
                    let real = if dir_at_sw { &sw } else { &alt };
                    let _ = fs::create_dir_all(real.join("sub"));
                    for f in ["canary", "sub/canary"] {
                        let _ = fs::write(real.join(f), b"inside");
                    }
                    // Whole or not at all: a Dockerfile read half-written is not the point here.
                    if fs::write(real.join(".df"), b"FROM busybox\n").is_ok() {
                        let _ = fs::rename(real.join(".df"), real.join("Dockerfile"));
                    }
                    if renameat_with(CWD, &sw, CWD, &alt, RenameFlags::EXCHANGE).is_err() {
                        break;
                    }
                    dir_at_sw = !dir_at_sw;
                    swaps.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                }
            })
        };
        let d = r.exec.store.put(b"uplinked\n");
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut downlinked = Vec::new();
        for i in 0..60 {
            fs::write(vol.join(format!("m{i}")), b"m").unwrap();
            let tasks = [
                TaskKind::Uplink {
                    volume: "pvc".into(),
                    files: vec![UplinkFile {
                        path: "sw/up.txt".into(),
                        digest: d,
                        size: 9,
                        mode: 0o644,
                    }],
                },
                mv("sw/canary", &format!("moved/c{i}")),
                mv("sw/sub", &format!("moved/s{i}")),
                mv(&format!("m{i}"), "sw/m"),
                TaskKind::FilesDelete {
                    volume: "pvc".into(),
                    paths: vec!["sw/sub/canary".into(), "sw/m".into()],
                },
                TaskKind::Downlink {
                    volume: "pvc".into(),
                    sources: vec!["sw/canary".into()],
                },
                TaskKind::Downlink {
                    volume: "pvc".into(),
                    sources: vec!["sw/*".into(), "sw".into()],
                },
                TaskKind::DockerBuild {
                    volume: "pvc".into(),
                    dockerfile: "sw/Dockerfile".into(),
                    context: "sw".into(),
                    image: image("race", "v1"),
                    max_duration_ms: None,
                },
                TaskKind::CameraCapture {
                    volume: "pvc".into(),
                    path: "sw/pic.png".into(),
                    size: 64,
                },
            ];
            for task in tasks {
                let res = r.run(task).await;
                downlinked.extend(res.outputs.files.iter().map(|f| f.digest));
                let outcome = match &res.error {
                    None => "ok".to_string(),
                    Some(e) => {
                        let m = &e.message;
                        // Which path, and why.
                        let clear = [
                            "the agent follows no symlink in a volume",
                            "no such file or folder",
                            "File not found: ",
                            "Dockerfile not found: /sw/Dockerfile",
                            "Build context not found: /sw",
                            "exists; files.move never replaces anything",
                            "removed meanwhile",
                        ];
                        assert!(clear.iter().any(|c| m.contains(c)), "unclear: {m}");
                        if m.contains("symlink") {
                            "refused: a symlink".to_string()
                        } else {
                            "failed: not there".to_string()
                        }
                    }
                };
                *outcomes.entry(outcome).or_default() += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        println!(
            "{} swaps; outcomes: {outcomes:?}",
            swaps.load(Ordering::Relaxed)
        );
        // Nothing outside was written, moved or deleted...
        assert_eq!((snapshot(&outside), snapshot(&outside.join("sub"))), before);
        for f in ["canary", "sub/canary", "Dockerfile"] {
            assert_eq!(fs::read(outside.join(f)).unwrap(), CANARY, "{f}");
        }
        // ... nor read: no object and no build context holds a canary.
        let canary = Digest::of(CANARY);
        assert!(!downlinked.contains(&canary));
        assert!(!r.exec.store.has(&canary));
        let script = r.fake.script.lock().unwrap();
        for body in &script.bodies {
            assert!(
                !body.windows(CANARY.len()).any(|w| w == CANARY),
                "a build context holds a canary"
            );
        }
        assert!(outcomes.get("ok").is_some_and(|n| *n > 0), "{outcomes:?}");
    }

    /// A sparse file whose blocks cost nothing in the volume but whose logical size is `len`.
    fn sparse(path: &Path, len: u64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        File::create(path).unwrap().set_len(len).unwrap();
    }

    #[tokio::test]
    async fn a_sparse_8_gib_file_is_refused_by_the_downlink() {
        let mut r = rig(|_| {});
        r.put(&[("out/small.txt", b"small")]);
        sparse(&r.volume().join("out/big.bin"), 8 << 30);
        let store = r.exec.store.layout().root().to_path_buf();
        let before = crate::disk::logical_usage(&store).0;
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/*".into()],
            })
            .await;
        let cap = r.exec.disk.limits.downlink_file_bytes;
        assert_eq!(code(&res), Some(4), "{res:?}");
        assert_eq!(
            res.error.unwrap().message,
            format!(
                "/out/big.bin is 8589934592 bytes (8.0 GiB), over the limit of {} of a downlinked file",
                crate::disk::size(cap)
            )
        );
        let grew = crate::disk::logical_usage(&store).0 - before;
        println!("object folder grew by {grew} bytes (cap {cap})");
        assert!(grew < cap, "{grew}");
        // Nothing was queued, not even the small file, and no temporary file is left.
        assert!(r.rx.try_recv().is_err());
        assert_eq!(grew, 0);

        // Within the limit, the same downlink goes through.
        fs::remove_file(r.volume().join("out/big.bin")).unwrap();
        sparse(&r.volume().join("out/hole.bin"), 3 << 20);
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/*".into()],
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.files[0].size, 3 << 20);
    }

    #[tokio::test]
    async fn the_object_store_cap_refuses_a_downlink() {
        let mut r = rig(|_| {});
        let mut limits = r.exec.disk.limits;
        limits.object_store_bytes = 1 << 20;
        r.exec.disk = Arc::new(crate::disk::Disk::open(
            limits,
            r._dir.path(),
            r._dir.path(),
        ));
        r.exec.store.put(&vec![1u8; 600 << 10]);
        r.put(&[("a.bin", &vec![2u8; 600 << 10])]);
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["a.bin".into()],
            })
            .await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("the object store with this downlink is 1228800 bytes (1.2 MiB), over the limit of 1048576 bytes (1.0 MiB)"),
            "{m}"
        );
        assert!(r.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn objects_still_arriving_count_toward_the_object_store_cap() {
        let mut r = rig(|_| {});
        let mut limits = r.exec.disk.limits;
        limits.object_store_bytes = 1 << 20;
        r.exec.disk = Arc::new(crate::disk::Disk::open(
            limits,
            r._dir.path(),
            r._dir.path(),
        ));
        r.put(&[("a.bin", &vec![2u8; 300 << 10])]);
        let downlink = || TaskKind::Downlink {
            volume: "pvc".into(),
            sources: vec!["a.bin".into()],
        };
        // The link receives an object of 800 KiB, 4 KiB of it so far, into the store.
        let link = r._dir.path().join("link");
        let layout = cas::ObjectLayout::new(r.exec.store.layout().root().to_path_buf());
        link::FileStore::open(&link, layout).unwrap();
        fs::write(link.join("spool/5.data"), vec![0u8; 4096]).unwrap();
        fs::write(
            link.join("spool/5.json"),
            format!(
                r#"{{"offer":{{"transfer":5,"message_seq":null,"size":{},"priority":1,"digest":"{}"}},"received":[[0,1]]}}"#,
                800 << 10,
                Digest::of(b"incoming")
            ),
        )
        .unwrap();
        assert_eq!(
            link::FileStore::incoming_object_bytes(&link),
            800 << 10,
            "the spool file is read as the link writes it"
        );
        let res = r.run(downlink()).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("the object store with this downlink is 1126400 bytes (1.1 MiB), over the limit of 1048576 bytes (1.0 MiB)"),
            "{m}"
        );
        // Once the transfer is dropped, the same downlink fits.
        fs::remove_file(link.join("spool/5.data")).unwrap();
        fs::remove_file(link.join("spool/5.json")).unwrap();
        assert!(r.run(downlink()).await.succeeded());
    }

    #[tokio::test]
    async fn a_volume_over_the_tenant_cap_refuses_an_uplink() {
        let r = rig(|_| {});
        r.put(&[("in/keep.txt", b"keep")]);
        let cap = r.exec.disk.limits.tenant_bytes;
        // A sparse file: a few blocks on the disk, more than the cap for a reader.
        sparse(&r.volume().join("huge.bin"), cap + 1);
        let d = r.exec.store.put(b"input data\n");
        let uplink = || TaskKind::Uplink {
            volume: "pvc".into(),
            files: vec![UplinkFile {
                path: "in/input.txt".into(),
                digest: d,
                size: 11,
                mode: 0o644,
            }],
        };
        let res = r.run(uplink()).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("volume pvc with this uplink (")
                && m.contains(&format!(
                    "over the limit of {} of a tenant's volumes",
                    crate::disk::size(cap)
                )),
            "{m}"
        );
        assert!(!r.volume().join("in/input.txt").exists());
        // Once the tenant deletes it, the uplink lands.
        fs::remove_file(r.volume().join("huge.bin")).unwrap();
        let res = r.run(uplink()).await;
        assert!(res.succeeded(), "{res:?}");
    }

    /// A volume whose folders nest deeper than the walk goes cannot be measured: work that
    /// needs its size fails (closed) rather than count what lies below as nothing, and the
    /// tenant can delete the folder, however deep.
    #[tokio::test]
    async fn folders_nested_past_the_walk_refuse_an_uplink_until_deleted() {
        let r = rig(|_| {});
        let cap = r.exec.disk.limits.tenant_bytes;
        let deep: PathBuf = std::iter::repeat_n("d", 130).collect();
        sparse(&r.volume().join(&deep).join("huge.bin"), cap + 1);
        let d = r.exec.store.put(b"input data\n");
        let uplink = || TaskKind::Uplink {
            volume: "pvc".into(),
            files: vec![UplinkFile {
                path: "in/input.txt".into(),
                digest: d,
                size: 11,
                mode: 0o644,
            }],
        };
        let res = r.run(uplink()).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with(
                "your volumes cannot be measured, so nothing that needs its size runs: /pvc/d/d/"
            ) && m.ends_with(
                " holds folders nested deeper than 128 levels, which the agent does not walk"
            ),
            "{m}"
        );
        assert!(!r.volume().join("in/input.txt").exists());
        let res = r
            .run(TaskKind::FilesDelete {
                volume: "pvc".into(),
                paths: vec!["d".into()],
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert!(!r.volume().join("d").exists());
        let res = r.run(uplink()).await;
        assert!(res.succeeded(), "{res:?}");
    }
}
