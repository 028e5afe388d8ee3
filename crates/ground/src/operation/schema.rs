//! The operation schema: which fields an operation and each task type take, their defaults,
//! and the validated names and paths they hold.

use saphyr::YamlData;
use wire::names::{
    FileMove, MoveError, MoveField, NameError, NamespaceName, NamespacePath, OperationName,
    PodName, SystemName, TaskId, TenantImage, VolumeName, VolumePath,
};
use wire::{ImageRef, OnFailure};

use super::yaml::{Cx, Fields, Node, Who, is_null, kind, optional, pos, untag};
use super::{Operation, TASK_TYPES, TYPE_PREFIX, Task, TaskSpec, rfc3339_ms};
use crate::config::limits;

mod fields;
mod trigger;

impl Cx<'_> {
    /// An image, written `name[:tag]` or as a mapping `{name, tag}`, validated by `parse`.
    fn image<T>(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        parse: impl FnOnce(&str) -> Result<T, NameError>,
    ) -> Option<T> {
        if let YamlData::Mapping(_) = &untag(node).data {
            let mut f = self.fields(who, node, &format!("field '{key}'"))?;
            let name = match f.take("name") {
                Some(n) => self.string(who, "image.name", n),
                None => {
                    self.diag(who, pos(node), format!("field '{key}' is missing 'name'"));
                    None
                }
            };
            let tag = match f.take("tag") {
                Some(t) => self.string(who, "image.tag", t),
                None => Some("latest".to_string()),
            };
            self.finish(who, &f, &["name", "tag"]);
            let (name, tag) = (name?, tag?);
            return match parse(&format!("{}:{}", name.trim(), tag.trim())) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.diag(who, pos(node), format!("field '{key}' {e}"));
                    None
                }
            };
        }
        self.checked(who, key, node, parse)
    }

    /// One literal volume path (no wildcards), not the volume root: what `task` names.
    fn literal_path(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        task: &str,
    ) -> Option<VolumePath> {
        let s = self.string(who, key, node)?;
        let checked = VolumePath::parse(&s).and_then(|p| {
            if s.contains(['*', '?', '[']) {
                Err(NameError::new(
                    "volume path",
                    &s,
                    format!("must be a literal path: {task} takes no wildcards"),
                ))
            } else if p.is_root() {
                Err(NameError::new(
                    "volume path",
                    &s,
                    "must name a file or a folder, not the volume root",
                ))
            } else {
                Ok(p)
            }
        });
        match checked {
            Ok(p) => Some(p),
            Err(e) => {
                self.diag(
                    who,
                    pos(node),
                    format!("field '{key}' has a bad path '{s}': {}", e.reason()),
                );
                None
            }
        }
    }

    /// One path of a files.move, by the judge's rule, and where it was written.
    fn move_path(
        &mut self,
        who: &Who,
        field: MoveField,
        node: &Node<'_>,
    ) -> Option<(VolumePath, (usize, usize))> {
        let s = self.string(who, field.key(), node)?;
        let judged = FileMove::path(field, &s).map_err(|e| self.move_refused(who, pos(node), &e));
        Some((judged.ok()?, pos(node)))
    }

    fn move_refused(&mut self, who: &Who, at: (usize, usize), e: &MoveError) {
        let message = format!("field '{}' {}", e.field().key(), e.detail());
        self.diag(who, at, message);
    }

    pub(super) fn operation(&mut self, root: &Node<'_>) -> Option<Operation> {
        let who = Who::Operation;
        if is_null(root) {
            self.diag(
                &who,
                pos(root),
                "the document is empty; expected an operation".into(),
            );
            return None;
        }
        let mut f = self.fields(&who, root, "an operation")?;
        let id = self.required(&who, &mut f, root, "id", |cx, n| {
            cx.checked(&Who::Operation, "id", n, OperationName::new)
        });
        let namespace = self.required(&who, &mut f, root, "namespace", |cx, n| {
            cx.checked(&Who::Operation, "namespace", n, NamespaceName::new)
        });
        let system = f
            .take("system")
            .map(|n| self.checked(&who, "system", n, check_system));
        let description = f
            .take("description")
            .map(|n| self.string(&who, "description", n));
        let labels = f.take("labels").map(|n| self.labels(n));
        let tasks = match f.take("tasks") {
            Some(n) => self.tasks(n),
            None => {
                self.diag(&who, pos(root), "missing required field 'tasks'".into());
                None
            }
        };
        self.finish(
            &who,
            &f,
            &[
                "id",
                "namespace",
                "system",
                "description",
                "labels",
                "tasks",
            ],
        );
        Some(Operation {
            id: id?,
            namespace: namespace?,
            system: optional(system)?,
            description: optional(description)?,
            labels: labels.unwrap_or(Some(Vec::new()))?,
            tasks: tasks?,
        })
    }

    fn labels(&mut self, node: &Node<'_>) -> Option<Vec<(String, String)>> {
        let who = Who::Operation;
        let f = self.fields(&who, node, "field 'labels'")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, _, v, _) in &f.entries {
            match self.string(&who, &format!("labels.{key}"), v) {
                Some(s) => out.push((key.clone(), s)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn tasks(&mut self, node: &Node<'_>) -> Option<Vec<Task>> {
        let who = Who::Operation;
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                &who,
                pos(node),
                format!("field 'tasks' must be a list of tasks, not {}", kind(node)),
            );
            return None;
        };
        if items.is_empty() {
            self.diag(
                &who,
                pos(node),
                "field 'tasks' must hold at least one task".into(),
            );
            return None;
        }
        if items.len() > limits::TASKS {
            self.diag(
                &who,
                pos(node),
                format!(
                    "too many tasks ({}); at most {}",
                    items.len(),
                    limits::TASKS
                ),
            );
            return None;
        }
        let mut tasks = Vec::with_capacity(items.len());
        let mut seen: Vec<(TaskId, usize)> = Vec::new();
        let mut pods: Vec<(PodName, usize)> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let task = self.task(i, item, &seen, &mut pods);
            match task {
                Some(t) => {
                    seen.push((t.id.clone(), pos(item).0));
                    tasks.push(t);
                }
                None => ok = false,
            }
        }
        ok.then_some(tasks)
    }

    fn task(
        &mut self,
        index: usize,
        node: &Node<'_>,
        seen: &[(TaskId, usize)],
        pods: &mut Vec<(PodName, usize)>,
    ) -> Option<Task> {
        let mut who = Who::Task {
            label: format!("#{}", index + 1),
            id: None,
            ty: None,
        };
        let mut f = self.fields(&who, node, "a task")?;
        // The id first, so that every later message can name the task.
        let id = match f.take("id") {
            Some(n) => {
                let id = self.checked(&who, "id", n, TaskId::new);
                if let Some(id) = &id {
                    who = Who::Task {
                        label: format!("'{id}'"),
                        id: Some(id.to_string()),
                        ty: None,
                    };
                    if let Some((_, line)) = seen.iter().find(|(s, _)| s == id) {
                        self.diag(
                            &who,
                            pos(n),
                            format!("duplicate task id '{id}' (first used at line {line})"),
                        );
                    }
                }
                id
            }
            None => {
                self.diag(&who, pos(node), "missing required field 'id'".into());
                None
            }
        };
        let ty = match f.take("type") {
            Some(n) => match self.string(&who, "type", n) {
                Some(t) => {
                    let bare = t.strip_prefix(TYPE_PREFIX).unwrap_or(&t);
                    let found = TASK_TYPES.iter().copied().find(|k| *k == bare);
                    if found.is_none() {
                        let hint = wire::names::closest(bare, &TASK_TYPES)
                            .map(|c| format!("did you mean '{c}'? "))
                            .unwrap_or_default();
                        self.diag(
                            &who,
                            pos(n),
                            format!(
                                "unknown type '{t}'; {hint}expected one of {}",
                                TASK_TYPES.join(", ")
                            ),
                        );
                    }
                    found
                }
                None => None,
            },
            None => {
                self.diag(&who, pos(node), "missing required field 'type'".into());
                None
            }
        };
        if let Who::Task { ty: slot, .. } = &mut who {
            *slot = ty;
        }
        let description = f
            .take("description")
            .map(|n| self.string(&who, "description", n));
        let on_failure = match f.take("on_failure") {
            Some(n) => self.checked(&who, "on_failure", n, |s| match s {
                "stop" => Ok(OnFailure::Stop),
                "continue" => Ok(OnFailure::Continue),
                _ => Err(format!("must be stop or continue, not '{s}'")),
            }),
            None => Some(OnFailure::Stop),
        };
        let trigger = f.take("trigger").map(|n| (self.trigger(&who, n), pos(n)));
        // Without a known type the other fields cannot be judged.
        let ty = ty?;
        let spec = self.spec(
            &who,
            ty,
            node,
            &mut f,
            id.as_ref().map_or("pod", |i| i.as_str()),
            pods,
        );
        if let (Some((Some(_), at)), Some(TaskSpec::PodRun { merge: true, .. })) = (&trigger, &spec)
        {
            self.diag(
                &who,
                *at,
                "field 'trigger' does not go with 'merge: true' yet: merged pods start together, so put the trigger on a task before them".into(),
            );
            return None;
        }
        let trigger = optional(trigger.map(|(t, _)| t));
        Some(Task {
            id: id?,
            description: optional(description)?,
            on_failure: on_failure?,
            trigger: trigger?,
            spec: spec?,
        })
    }

    fn spec<'y, 'a>(
        &mut self,
        who: &Who,
        ty: &str,
        node: &Node<'_>,
        f: &mut Fields<'y, 'a>,
        task_id: &str,
        pods: &mut Vec<(PodName, usize)>,
    ) -> Option<TaskSpec> {
        const COMMON: [&str; 5] = ["id", "type", "description", "on_failure", "trigger"];
        let volume = f
            .take("volume")
            .map(|n| self.checked(who, "volume", n, VolumeName::new));
        let volume = optional(volume);
        let (spec, fields): (Option<TaskSpec>, &[&str]) = match ty {
            "uplink" => {
                let sources = self.required(who, f, node, "source", |cx, n| {
                    cx.paths(who, "source", n, NamespacePath::parse)
                });
                let destination = match f.take("destination") {
                    Some(n) => self.checked(who, "destination", n, VolumePath::parse),
                    None => Some(VolumePath::root()),
                };
                let spec = (|| {
                    Some(TaskSpec::Uplink {
                        sources: sources?,
                        destination: destination?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "destination", "volume"])
            }
            "downlink" => {
                let sources = self.required(who, f, node, "source", |cx, n| {
                    cx.paths(who, "source", n, |s| {
                        let p = VolumePath::parse(s)?;
                        if p.is_root() {
                            return Err(NameError::new("volume path", s, "must name files or patterns, not the volume root (use '**' for everything)"));
                        }
                        Ok(p)
                    })
                });
                let destination = match f.take("destination") {
                    Some(n) => self.checked(who, "destination", n, NamespacePath::parse),
                    None => Some(NamespacePath::root()),
                };
                let spec = (|| {
                    Some(TaskSpec::Downlink {
                        sources: sources?,
                        destination: destination?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "destination", "volume"])
            }
            "files.list" => {
                let folder = match f.take("folder") {
                    Some(n) => self.checked(who, "folder", n, VolumePath::parse),
                    None => Some(VolumePath::root()),
                };
                let depth = match f.take("depth") {
                    Some(n) => self
                        .integer(who, "depth", n, (1, 64))
                        .and_then(|d| u32::try_from(d).ok()),
                    None => Some(2),
                };
                let spec = (|| {
                    Some(TaskSpec::FilesList {
                        folder: folder?,
                        depth: depth?,
                        volume: volume?,
                    })
                })();
                (spec, &["folder", "depth", "volume"])
            }
            "docker.build" => {
                let dockerfile = match f.take("dockerfile") {
                    Some(n) => self.checked(who, "dockerfile", n, VolumePath::parse_file),
                    None => Some(VolumePath::parse_file("Dockerfile").expect("a valid path")),
                };
                let context = match f.take("context") {
                    Some(n) => self.checked(who, "context", n, VolumePath::parse),
                    None => Some(VolumePath::root()),
                };
                let image = self.required(who, f, node, "image", |cx, n| {
                    cx.image(who, "image", n, tenant_image)
                });
                let max = f
                    .take("max_duration")
                    .map(|n| self.duration(who, "max_duration", n));
                let spec = (|| {
                    Some(TaskSpec::DockerBuild {
                        dockerfile: dockerfile?,
                        context: context?,
                        image: image?,
                        volume: volume?,
                        max_duration_ms: optional(max)?,
                    })
                })();
                (
                    spec,
                    &["dockerfile", "context", "image", "volume", "max_duration"],
                )
            }
            "files.delete" => {
                let sources = self.required(who, f, node, "source", |cx, n| {
                    cx.paths(who, "source", n, |s| {
                        let p = VolumePath::parse(s)?;
                        if s.contains(['*', '?', '[']) {
                            return Err(NameError::new(
                                "volume path",
                                s,
                                "must be a literal path: files.delete takes no wildcards",
                            ));
                        }
                        Ok(p)
                    })
                });
                let spec = (|| {
                    Some(TaskSpec::FilesDelete {
                        sources: sources?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "volume"])
            }
            "docker.image.list" => (Some(TaskSpec::ImageList), &[]),
            "docker.image.delete" => {
                let image = self.required(who, f, node, "image", |cx, n| {
                    cx.image(who, "image", n, own_image)
                });
                (
                    image.map(|image| TaskSpec::ImageDelete { image }),
                    &["image"],
                )
            }
            "camera.capture" => {
                let destination = self.required(who, f, node, "destination", |cx, n| {
                    let p = cx.literal_path(who, "destination", n, "camera.capture")?;
                    if !p.as_str().ends_with(".png") {
                        cx.diag(
                            who,
                            pos(n),
                            format!(
                                "field 'destination' has a bad path '{}': the picture is a PNG: the path must end in .png",
                                p.as_str()
                            ),
                        );
                        return None;
                    }
                    Some(p)
                });
                let size = match f.take("size") {
                    Some(n) => self
                        .integer(
                            who,
                            "size",
                            n,
                            (
                                i64::from(wire::CAMERA_MIN_SIZE),
                                i64::from(wire::CAMERA_MAX_SIZE),
                            ),
                        )
                        .and_then(|s| u32::try_from(s).ok()),
                    None => Some(DEFAULT_PICTURE_SIZE),
                };
                let spec = (|| {
                    Some(TaskSpec::CameraCapture {
                        destination: destination?,
                        size: size?,
                        volume: volume?,
                    })
                })();
                (spec, &["destination", "size", "volume"])
            }
            "files.move" => {
                // The one judge of a move's paths (the agent's too), field by field, then
                // together.
                let source = self.required(who, f, node, "source", |cx, n| {
                    cx.move_path(who, MoveField::Source, n)
                });
                let destination = self.required(who, f, node, "destination", |cx, n| {
                    cx.move_path(who, MoveField::Destination, n)
                });
                let paths = match (source, destination) {
                    (Some((s, s_at)), Some((d, d_at))) => FileMove::of(s, d)
                        .map_err(|e| {
                            let at = if e.field() == MoveField::Source {
                                s_at
                            } else {
                                d_at
                            };
                            self.move_refused(who, at, &e)
                        })
                        .ok(),
                    _ => None,
                };
                let spec = (|| {
                    Some(TaskSpec::FilesMove {
                        paths: paths?,
                        volume: volume?,
                    })
                })();
                (spec, &["source", "destination", "volume"])
            }
            "pod.stop" => {
                let pod_name = self.required(who, f, node, "pod_name", |cx, n| {
                    cx.checked(who, "pod_name", n, PodName::new)
                });
                let grace = f.take("grace").map(|n| self.duration(who, "grace", n));
                let spec = (|| {
                    Some(TaskSpec::PodStop {
                        pod_name: pod_name?,
                        grace_ms: optional(grace)?,
                    })
                })();
                (spec, &["pod_name", "grace"])
            }
            "pod.logs" => {
                let pod_name = self.required(who, f, node, "pod_name", |cx, n| {
                    cx.checked(who, "pod_name", n, PodName::new)
                });
                let spec = (|| {
                    Some(TaskSpec::PodLogs {
                        pod_name: pod_name?,
                        volume: volume?,
                    })
                })();
                (spec, &["pod_name", "volume"])
            }
            "docker.load" => {
                let tarfile = self.required(who, f, node, "tarfile", |cx, n| {
                    cx.checked(who, "tarfile", n, VolumePath::parse_file)
                });
                let image = self.required(who, f, node, "image", |cx, n| {
                    cx.image(who, "image", n, tenant_image)
                });
                let spec = (|| {
                    Some(TaskSpec::DockerLoad {
                        tarfile: tarfile?,
                        image: image?,
                        volume: volume?,
                    })
                })();
                (spec, &["tarfile", "image", "volume"])
            }
            _ => {
                let image = self.required(who, f, node, "image", |cx, n| {
                    cx.image(who, "image", n, image_reference)
                });
                let pod_name = match f.take("pod_name") {
                    Some(n) => self.checked(who, "pod_name", n, PodName::new),
                    None => Some(pod_name_from(task_id)),
                };
                if let Some(p) = &pod_name {
                    let line = pos(node).0;
                    if let Some((_, first)) = pods.iter().find(|(q, _)| q == p) {
                        self.diag(
                            who,
                            pos(node),
                            format!("pod_name '{p}' is already used by the task at line {first}"),
                        );
                    } else {
                        pods.push((p.clone(), line));
                    }
                }
                let command = f.take("command").map(|n| {
                    let c = self.strings(who, "command", n)?;
                    if c.is_empty() {
                        self.diag(who, pos(n), "field 'command' must not be empty".into());
                        return None;
                    }
                    Some(c)
                });
                let args = f.take("args").map(|n| self.strings(who, "args", n));
                let env = match f.take("env") {
                    Some(n) => self.env(who, n),
                    None => Some(Vec::new()),
                };
                let max = f
                    .take("max_duration")
                    .map(|n| self.duration(who, "max_duration", n));
                let node = f.take("node").map(|n| {
                    self.checked(who, "node", n, |s| match s.to_ascii_lowercase().as_str() {
                        "default" | "mpu" | "mpu1" | "fpga" | "gpu" => Ok(s.to_string()),
                        _ => Err(format!("must be one of default, MPU, FPGA, GPU, not '{s}'")),
                    })
                });
                let ports = match f.take("ports") {
                    Some(n) if !is_null(n) => self.ports(who, n),
                    _ => Some(Vec::new()),
                };
                let merge = match f.take("merge") {
                    Some(n) => self.boolean(who, "merge", n),
                    None => Some(false),
                };
                let scheduled = match f.take_raw("scheduled_time") {
                    Some(n) if !is_null(n) => {
                        Some(self.checked(who, "scheduled_time", n, rfc3339_ms))
                    }
                    _ => None,
                };

                let spec = (|| {
                    Some(TaskSpec::PodRun {
                        pod_name: pod_name?,
                        image: image?,
                        command: optional(command)?,
                        args: optional(args)?,
                        env: env?,
                        volume: volume?,
                        max_duration_ms: optional(max)?,
                        scheduled_ms: optional(scheduled)?,
                        merge: merge?,
                        node: optional(node)?,
                        ports: ports?,
                    })
                })();
                let fields: &[&str] = &[
                    "image",
                    "pod_name",
                    "command",
                    "args",
                    "env",
                    "volume",
                    "max_duration",
                    "node",
                    "ports",
                    "merge",
                    "scheduled_time",
                ];
                (spec, fields)
            }
        };
        let allowed: Vec<&str> = COMMON.iter().chain(fields).copied().collect();
        self.finish(who, f, &allowed);
        spec
    }
}

/// The side of a `camera.capture` picture when the task sets no `size`, in pixels.
const DEFAULT_PICTURE_SIZE: u32 = 1024;

/// A pod name derived from a task id: lowercased, other characters turned into `-`.
fn pod_name_from(task_id: &str) -> PodName {
    let mapped: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(63).collect();
    PodName::new(trimmed.trim_end_matches('-'))
        .unwrap_or_else(|_| PodName::new("pod").expect("a valid pod name"))
}

/// `em`, `cg2.em` → `em`.
fn check_system(s: &str) -> Result<SystemName, NameError> {
    SystemName::new(s.strip_prefix("cg2.").unwrap_or(s))
}

/// An image to build or load: one of the tenant's own, `name[:tag]` without `/`.
fn tenant_image(s: &str) -> Result<TenantImage, NameError> {
    TenantImage::parse(s.trim())
}

/// An image to delete: one of the tenant's own, `name[:tag]` without `/` (which only a catalogue
/// image or another tenant's could have).
fn own_image(s: &str) -> Result<TenantImage, NameError> {
    if s.contains('/') {
        return Err(NameError::new(
            "image to delete",
            s.trim(),
            "only your own images can be deleted, named as you built or loaded them (app:1): a name with '/' is a catalogue image or another tenant's",
        ));
    }
    tenant_image(s)
}

/// An image to run: a catalogue image or one of the tenant's own.
fn image_reference(s: &str) -> Result<ImageRef, NameError> {
    let (name, tag) = wire::names::parse_image_reference(s)?;
    Ok(ImageRef { name, tag })
}
