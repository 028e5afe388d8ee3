//! Operations: the YAML a tenant writes (see `docs/operations.md`), parsed into a typed
//! [`Operation`] or a list of [`Diagnostic`]s, each with its line and column.
//!
//! Parsing never panics and reports every problem it finds, not only the first. The source is
//! first pre-scanned as events to bound nesting depth and size with aliases expanded, so no tree
//! deeper than [`MAX_DEPTH`], or larger than `yaml::MAX_NODES` nodes and `yaml::MAX_TEXT` bytes
//! of text, is ever built. Requests parse on the blocking pool, a few at a time
//! ([`parse_off_workers`]).
//!
//! Three parts: `yaml` reads positioned YAML (the pre-scan, typed field readers, diagnostics),
//! `schema` knows the fields of an operation and of each task type, and the names and paths it
//! holds are `wire::names` types, the same ones the flight agent parses plans with — so what
//! the ground accepts here, the satellite accepts too.

mod rfc3339;
mod schema;
mod yaml;

pub(crate) use self::rfc3339::rfc3339_ms;

use saphyr::{LoadableYamlNode, MarkedYaml};
use wire::names::{
    NamespaceName, NamespacePath, OperationName, PodName, SystemName, TaskId, TenantImage,
    VolumeName, VolumePath,
};
use wire::{ImageRef, OnFailure};

use self::yaml::{Cx, Who, pos, prescan, syntax_error};

/// The task types, as written without the `dphi.space.cg2.` prefix.
pub(crate) const TASK_TYPES: [&str; 13] = [
    "uplink",
    "downlink",
    "files.list",
    "files.delete",
    "docker.build",
    "docker.load",
    "docker.image.list",
    "pod.run",
    "files.move",
    "docker.image.delete",
    "camera.capture",
    "pod.stop",
    "pod.logs",
];

/// The Clustergate-2 prefix accepted in front of every task type.
const TYPE_PREFIX: &str = "dphi.space.cg2.";

/// Collections nested deeper than this (after alias expansion) are rejected.
const MAX_DEPTH: usize = 32;

/// The longest `max_duration`: a week.
const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;

/// One problem found in an operation. Lines and columns count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// The line of the offending node (or of the task, when a field is missing).
    pub line: usize,
    /// The column of the offending node.
    pub column: usize,
    /// The id of the task concerned, or `None` for operation-level problems.
    pub task: Option<String>,
    /// What is wrong, for a person; it names the task and line too.
    pub message: String,
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation cannot be saved or executed.
    Error,
    /// Worth knowing; the operation is still valid.
    Warning,
}

/// A validated operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    pub(crate) id: OperationName,
    pub(crate) namespace: NamespaceName,
    /// The target system, with any `cg2.` prefix removed; `None` when not given.
    pub(crate) system: Option<SystemName>,
    pub(crate) description: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) tasks: Vec<Task>,
}

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Task {
    pub(crate) id: TaskId,
    pub(crate) description: Option<String>,
    pub(crate) on_failure: OnFailure,
    /// `trigger`: when the task may start onboard (`docs/triggers.md`).
    pub(crate) trigger: Option<wire::Trigger>,
    pub(crate) spec: TaskSpec,
}

/// What a task does, with every default applied. Volume paths are relative to the volume root
/// (`""` is the root); namespace paths are absolute (`/app`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskSpec {
    Uplink {
        sources: Vec<NamespacePath>,
        destination: VolumePath,
        volume: Option<VolumeName>,
    },
    Downlink {
        /// Paths or patterns.
        sources: Vec<VolumePath>,
        destination: NamespacePath,
        volume: Option<VolumeName>,
    },
    FilesList {
        folder: VolumePath,
        depth: u32,
        volume: Option<VolumeName>,
    },
    DockerBuild {
        dockerfile: VolumePath,
        context: VolumePath,
        image: TenantImage,
        volume: Option<VolumeName>,
        max_duration_ms: Option<u64>,
    },
    DockerLoad {
        tarfile: VolumePath,
        image: TenantImage,
        volume: Option<VolumeName>,
    },
    PodRun {
        pod_name: PodName,
        /// A catalogue image or one of the tenant's own (checked by syntax here; onboard it
        /// must exist).
        image: ImageRef,
        command: Option<Vec<String>>,
        args: Option<Vec<String>>,
        env: Vec<(String, String)>,
        volume: Option<VolumeName>,
        max_duration_ms: Option<u64>,
        /// `scheduled_time`: start no earlier than this, milliseconds since the Unix epoch.
        scheduled_ms: Option<u64>,
        /// `merge`: starts together with the adjacent merged pod.run tasks.
        merge: bool,
        /// `node`: the node class, as written (checked: `default`, `MPU`, `FPGA`, `GPU`, any
        /// case, or `mpu1`).
        node: Option<String>,
        /// `ports`: what the tenant's other merged pods may reach of a merged pod (`host` is
        /// read and dropped: nothing is published on the host).
        ports: Vec<wire::PodPort>,
    },
    /// Stops a running pod of the tenant by name.
    PodStop {
        pod_name: PodName,
        /// `grace`: between SIGTERM and SIGKILL.
        grace_ms: Option<u64>,
    },
    /// A pod's output, kept in the volume and returned as the task's log tail.
    PodLogs {
        pod_name: PodName,
        volume: Option<VolumeName>,
    },
    FilesDelete {
        /// Literal paths; the root stands for the volume itself.
        sources: Vec<VolumePath>,
        volume: Option<VolumeName>,
    },
    ImageList,
    FilesMove {
        /// What moves and its new path, judged by `wire::FileMove` (the agent's rule).
        paths: wire::FileMove,
        volume: Option<VolumeName>,
    },
    ImageDelete {
        /// One of the tenant's own images (never a catalogue image: onboard it must exist
        /// under the tenant's prefix).
        image: TenantImage,
    },
    CameraCapture {
        /// A literal path ending in `.png`.
        destination: VolumePath,
        /// Pixels a side.
        size: u32,
        volume: Option<VolumeName>,
    },
}

impl TaskSpec {
    /// The type's name without prefix.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            TaskSpec::Uplink { .. } => "uplink",
            TaskSpec::Downlink { .. } => "downlink",
            TaskSpec::FilesList { .. } => "files.list",
            TaskSpec::DockerBuild { .. } => "docker.build",
            TaskSpec::DockerLoad { .. } => "docker.load",
            TaskSpec::PodRun { .. } => "pod.run",
            TaskSpec::PodStop { .. } => "pod.stop",
            TaskSpec::PodLogs { .. } => "pod.logs",
            TaskSpec::FilesDelete { .. } => "files.delete",
            TaskSpec::ImageList => "docker.image.list",
            TaskSpec::FilesMove { .. } => "files.move",
            TaskSpec::ImageDelete { .. } => "docker.image.delete",
            TaskSpec::CameraCapture { .. } => "camera.capture",
        }
    }
}

/// Parses run on the blocking pool at most this many at once: each is bounded in time and
/// memory, and so are they all together.
static PARSING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// [`parse`] on the blocking pool (under [`PARSING`]): a megabyte of YAML takes a CPU for a
/// moment that the async workers serving every other request must not lose.
pub(crate) async fn parse_off_workers(
    src: String,
) -> Result<Result<Operation, Vec<Diagnostic>>, crate::Error> {
    let _permit = PARSING
        .acquire()
        .await
        .map_err(|e| crate::Error::internal(format!("parsing closed: {e}")))?;
    tokio::task::spawn_blocking(move || parse(&src))
        .await
        .map_err(|e| crate::Error::internal(format!("parsing an operation failed: {e}")))
}

/// Parses and validates an operation.
pub(crate) fn parse(src: &str) -> Result<Operation, Vec<Diagnostic>> {
    if let Err(d) = prescan(src) {
        return Err(vec![d]);
    }
    let docs = match MarkedYaml::load_from_str(src) {
        Ok(docs) => docs,
        Err(e) => {
            return Err(vec![syntax_error(
                e.marker().line(),
                e.marker().col(),
                e.info(),
            )]);
        }
    };
    let mut cx = Cx {
        src,
        char_starts: None,
        diags: Vec::new(),
    };
    let op = match docs.as_slice() {
        [] => {
            cx.diag(
                &Who::Operation,
                (1, 1),
                "the document is empty; expected an operation".into(),
            );
            None
        }
        [root] => cx.operation(root),
        [_, second, ..] => {
            cx.diag(
                &Who::Operation,
                pos(second),
                "expected one YAML document, found several".into(),
            );
            None
        }
    };
    match op {
        Some(op) if cx.diags.is_empty() => Ok(op),
        _ => {
            cx.diags.sort_by_key(|d| (d.line, d.column));
            Err(cx.diags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `yaml` and renders the outcome: `ok` plus a summary, or one line per diagnostic
    /// as `line:column [task] message`.
    fn check(yaml: &str, expect: &str) {
        let got = match parse(yaml) {
            Ok(op) => {
                let tasks: Vec<String> = op
                    .tasks
                    .iter()
                    .map(|t| format!("{}={}", t.id, t.spec.type_name()))
                    .collect();
                format!(
                    "ok {}/{} system={:?} tasks={}",
                    op.namespace,
                    op.id,
                    op.system,
                    tasks.join(",")
                )
            }
            Err(diags) => diags
                .iter()
                .map(|d| {
                    format!(
                        "{}:{} [{}] {}",
                        d.line,
                        d.column,
                        d.task.as_deref().unwrap_or("-"),
                        d.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert_eq!(got.trim(), expect.trim(), "\n--- got ---\n{got}\n");
    }

    fn spec_of(yaml: &str) -> TaskSpec {
        match parse(yaml) {
            Ok(op) => op.tasks[0].spec.clone(),
            Err(d) => panic!("{d:#?}"),
        }
    }

    const HEAD: &str = "id: hello\nnamespace: demo\ntasks:\n";

    #[test]
    fn a_full_operation_is_ok() {
        check(
            r#"
id: hello
namespace: demo
system: cg2.em
description: say hello
labels: {team: payload, n: 1}
tasks:
  - id: up
    type: uplink
    source: [/app, /configs/x.json]
    destination: /data/app
  - id: build
    type: dphi.space.cg2.docker.build
    image: hello:1.0
    context: app
    max_duration: 5m
  - id: load
    type: docker.load
    tarfile: /img.tar
    image: {name: hello, tag: 2}
  - id: run
    type: pod.run
    image: {name: hello}
    command: /bin/hello
    args: [--loud]
    env: {A: 1, B: "two"}
    node: Fpga
    ports: [8080, {container: 9000, protocol: udp}]
    merge: false
    scheduled_time: null
    on_failure: continue
  - id: ls
    type: files.list
    depth: 3
  - id: down
    type: downlink
    source: [out/*.txt]
    destination: /results
"#,
            "ok demo/hello system=Some(\"em\") tasks=up=uplink,build=docker.build,load=docker.load,run=pod.run,ls=files.list,down=downlink",
        );
    }

    #[test]
    fn unknown_type_names_task_and_line() {
        check(
            &format!(
                "{HEAD}  - id: up\n    type: uplink\n    source: /a\n  - id: build\n    type: docker.bild\n"
            ),
            "8:11 [build] task 'build' (line 8): unknown type 'docker.bild'; did you mean 'docker.build'? expected one of uplink, downlink, files.list, files.delete, docker.build, docker.load, docker.image.list, pod.run, files.move, docker.image.delete, camera.capture, pod.stop, pod.logs",
        );
        check(
            &format!("{HEAD}  - id: x\n    type: dphi.space.cg2.nope\n"),
            "5:11 [x] task 'x' (line 5): unknown type 'dphi.space.cg2.nope'; expected one of uplink, downlink, files.list, files.delete, docker.build, docker.load, docker.image.list, pod.run, files.move, docker.image.delete, camera.capture, pod.stop, pod.logs",
        );
    }

    #[test]
    fn prefix_is_accepted_for_every_type() {
        for ty in TASK_TYPES {
            let extra = match ty {
                "uplink" | "downlink" | "files.delete" => "    source: a\n",
                "files.move" => "    source: a\n    destination: b\n",
                "camera.capture" => "    destination: a.png\n",
                "docker.build" | "pod.run" | "docker.image.delete" => "    image: x\n",
                "docker.load" => "    image: x\n    tarfile: x.tar\n",
                "pod.stop" | "pod.logs" => "    pod_name: p\n",
                _ => "",
            };
            let yaml = format!("{HEAD}  - id: t\n    type: dphi.space.cg2.{ty}\n{extra}");
            check(&yaml, &format!("ok demo/hello system=None tasks=t={ty}"));
        }
    }

    #[test]
    fn files_delete_takes_literal_paths() {
        check(
            &format!(
                "{HEAD}  - id: rm\n    type: files.delete\n    source: [/a, b/c]\n    volume: v\n"
            ),
            "ok demo/hello system=None tasks=rm=files.delete",
        );
        check(
            &format!("{HEAD}  - id: rm\n    type: files.delete\n    source: out/*.txt\n"),
            "6:13 [rm] task 'rm' (files.delete, line 6): field 'source' has a bad path 'out/*.txt': must be a literal path: files.delete takes no wildcards",
        );
    }

    #[test]
    fn files_move_takes_two_literal_paths() {
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: mv\n    type: files.move\n    source: /out/a.txt\n    destination: archive/a.txt\n    volume: v\n"
            )),
            TaskSpec::FilesMove {
                paths: wire::FileMove::new("out/a.txt", "archive/a.txt").unwrap(),
                volume: Some("v".parse().unwrap()),
            }
        );
        check(
            &format!(
                "{HEAD}  - id: mv\n    type: dphi.space.cg2.files.move\n    source: a\n    destination: b\n"
            ),
            "ok demo/hello system=None tasks=mv=files.move",
        );
        check(
            &format!("{HEAD}  - id: mv\n    type: files.move\n    source: a\n"),
            "4:5 [mv] task 'mv' (files.move, line 4): missing required field 'destination'",
        );
        check(
            &format!(
                "{HEAD}  - id: mv\n    type: files.move\n    source: out/*.txt\n    destination: /\n    sources: [x]\n"
            ),
            "6:13 [mv] task 'mv' (files.move, line 6): field 'source' has a bad path 'out/*.txt': must be a literal path: files.move takes no wildcards\n\
             7:18 [mv] task 'mv' (files.move, line 7): field 'destination' has a bad path '/': must name a file or a folder, not the volume root\n\
             8:5 [mv] task 'mv' (files.move, line 8): unknown field 'sources'; expected one of id, type, description, on_failure, trigger, source, destination, volume",
        );
        check(
            &format!(
                "{HEAD}  - id: mv\n    type: files.move\n    source: [a, b]\n    destination: ../c\n  - id: mv2\n    type: files.move\n    source: a/b\n    destination: /a/b/c\n"
            ),
            "6:13 [mv] task 'mv' (files.move, line 6): field 'source' must be a string, not a list\n\
             7:18 [mv] task 'mv' (files.move, line 7): field 'destination' has a bad path '../c': '..' is not allowed\n\
             11:18 [mv2] task 'mv2' (files.move, line 11): field 'destination' '/a/b/c' lies under the source '/a/b': a folder cannot be moved into itself",
        );
    }

    #[test]
    fn docker_image_delete_takes_one_of_the_tenants_images() {
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: rm\n    type: docker.image.delete\n    image: {{name: app, tag: 2}}\n"
            )),
            TaskSpec::ImageDelete {
                image: TenantImage::parse("app:2").unwrap(),
            }
        );
        check(
            &format!(
                "{HEAD}  - id: rm\n    type: docker.image.delete\n    image: gcr.io/distroless/static-debian12\n  - id: rm2\n    type: docker.image.delete\n    image: App:1\n  - id: rm3\n    type: docker.image.delete\n"
            ),
            "6:12 [rm] task 'rm' (docker.image.delete, line 6): field 'image' 'gcr.io/distroless/static-debian12' is not a valid image to delete (only your own images can be deleted, named as you built or loaded them (app:1): a name with '/' is a catalogue image or another tenant's)\n\
             9:12 [rm2] task 'rm2' (docker.image.delete, line 9): field 'image' 'App' is not a valid image name (lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters, no '/')\n\
             10:5 [rm3] task 'rm3' (docker.image.delete, line 10): missing required field 'image'",
        );
    }

    #[test]
    fn camera_capture_takes_a_png_path_and_a_bounded_size() {
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: shot\n    type: camera.capture\n    destination: /fisheye/a.png\n"
            )),
            TaskSpec::CameraCapture {
                destination: "fisheye/a.png".parse().unwrap(),
                size: 1024,
                volume: None,
            }
        );
        check(
            &format!(
                "{HEAD}  - id: shot\n    type: camera.capture\n    destination: a.jpg\n    size: 4096\n  - id: two\n    type: camera.capture\n    destination: \"*.png\"\n    size: 64\n  - id: three\n    type: camera.capture\n"
            ),
            "6:18 [shot] task 'shot' (camera.capture, line 6): field 'destination' has a bad path 'a.jpg': the picture is a PNG: the path must end in .png\n\
             7:11 [shot] task 'shot' (camera.capture, line 7): field 'size' must be a whole number from 64 to 2048\n\
             10:18 [two] task 'two' (camera.capture, line 10): field 'destination' has a bad path '*.png': must be a literal path: camera.capture takes no wildcards\n\
             12:5 [three] task 'three' (camera.capture, line 12): missing required field 'destination'",
        );
    }

    #[test]
    fn missing_required_field_names_type_and_task_line() {
        check(
            &format!("{HEAD}  - id: run\n    type: pod.run\n    command: [x]\n"),
            "4:5 [run] task 'run' (pod.run, line 4): missing required field 'image'",
        );
        check(
            "namespace: demo\ntasks: []\n",
            "1:1 [-] operation (line 1): missing required field 'id'\n2:8 [-] operation (line 2): field 'tasks' must hold at least one task",
        );
    }

    #[test]
    fn unknown_fields_are_reported_at_the_key() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    imag: y\nowner: bob\n"
            ),
            "7:5 [run] task 'run' (pod.run, line 7): unknown field 'imag'; expected one of id, type, description, on_failure, trigger, image, pod_name, command, args, env, volume, max_duration, node, ports, merge, scheduled_time\n\
             8:1 [-] operation (line 8): unknown field 'owner'; expected one of id, namespace, system, description, labels, tasks",
        );
    }

    #[test]
    fn wrong_types() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: [x]\n    env: 3\n    merge: maybe\n"
            ),
            "6:12 [run] task 'run' (pod.run, line 6): field 'image' must be a string, not a list\n\
             7:10 [run] task 'run' (pod.run, line 7): field 'env' must be a mapping or a list of {name, value}, not a number\n\
             8:12 [run] task 'run' (pod.run, line 8): field 'merge' must be true or false, not a string",
        );
        check(
            "id: x\nnamespace: d\ntasks: 3\n",
            "3:8 [-] operation (line 3): field 'tasks' must be a list of tasks, not a number",
        );
        check(
            "- a\n- b\n",
            "1:1 [-] operation (line 1): an operation must be a mapping, not a list",
        );
    }

    #[test]
    fn duplicate_ids_and_bad_names() {
        check(
            &format!("{HEAD}  - id: a\n    type: files.list\n  - id: a\n    type: files.list\n"),
            "6:9 [a] task 'a' (line 6): duplicate task id 'a' (first used at line 4)",
        );
        check(
            "id: Hello World\nnamespace: d/e\ntasks:\n  - id: x\n    type: files.list\n    volume: Big\n",
            "1:5 [-] operation (line 1): field 'id' 'Hello World' is not a valid operation id (lowercase letters, digits, '.', '_' and '-', 1 to 64 characters)\n\
             2:12 [-] operation (line 2): field 'namespace' 'd/e' is not a valid namespace name (letters, digits, '_' and '-', 1 to 64 characters)\n\
             6:13 [x] task 'x' (files.list, line 6): field 'volume' 'Big' is not a valid volume name (lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters)",
        );
    }

    #[test]
    fn durations_and_scheduled_time() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    max_duration: soon\n    scheduled_time: 2026-01-01T00:00:00Z\n"
            ),
            "7:19 [run] task 'run' (pod.run, line 7): field 'max_duration' must be minutes as a number (10, 0.5) or a duration with a unit (90s, 5m, 1h), at most 7 days",
        );
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    scheduled_time: 2025-05-22T12:10:00\n  - id: r2\n    type: pod.run\n    image: x\n    scheduled_time: 2025-02-30T12:10:00Z\n"
            ),
            "7:21 [run] task 'run' (pod.run, line 7): field 'scheduled_time' '2025-05-22T12:10:00' is not an RFC 3339 date and time with an offset (2025-05-22T12:10:00+02:00, or Z for UTC): missing offset (Z or +hh:mm)\n\
             11:21 [r2] task 'r2' (pod.run, line 11): field 'scheduled_time' '2025-02-30T12:10:00Z' is not an RFC 3339 date and time with an offset (2025-05-22T12:10:00+02:00, or Z for UTC): no such date or time",
        );
        let at = |t: &str| match spec_of(&format!(
            "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    scheduled_time: {t}\n"
        )) {
            TaskSpec::PodRun { scheduled_ms, .. } => scheduled_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(at("2025-05-22T12:10:00+02:00"), Some(1_747_908_600_000));
        assert_eq!(at("2025-05-22T10:10:00Z"), Some(1_747_908_600_000));
        assert_eq!(
            at("\"2025-05-22T05:10:00.250-05:00\""),
            Some(1_747_908_600_250)
        );
        assert_eq!(at("null"), None);
        let ms = |d: &str| match spec_of(&format!(
            "{HEAD}  - id: b\n    type: docker.build\n    image: x\n    max_duration: {d}\n"
        )) {
            TaskSpec::DockerBuild {
                max_duration_ms, ..
            } => max_duration_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(ms("10"), Some(600_000));
        assert_eq!(ms("0.5"), Some(30_000));
        assert_eq!(ms("90s"), Some(90_000));
        assert_eq!(ms("\"1h\""), Some(3_600_000));
    }

    fn trigger_of(yaml: &str) -> wire::Trigger {
        match parse(yaml) {
            Ok(op) => op.tasks[0].trigger.clone().expect("a trigger"),
            Err(d) => panic!("{d:#?}"),
        }
    }

    #[test]
    fn triggers_read_into_conditions() {
        use wire::{Area, Condition, Deadline, GeoPoint, Location};
        let t = trigger_of(&format!(
            "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      location: {{latitude: 46.27, longitude: 6.96, altitude: 372, radius_km: 500, min_elevation: 5, min_sun_elevation: 10}}\n      not_before: 2026-12-03T00:00:00Z\n      deadline: 12h\n"
        ));
        assert_eq!(t.deadline, Some(Deadline::After(12 * 3_600_000)));
        assert_eq!(
            t.when,
            Condition::All(vec![
                Condition::Location(Location {
                    area: Area::Point {
                        at: GeoPoint {
                            lat_udeg: 46_270_000,
                            lon_udeg: 6_960_000
                        },
                        altitude_m: 372,
                        radius_m: Some(500_000),
                    },
                    min_elevation_mdeg: Some(5_000),
                    min_sun_elevation_mdeg: Some(10_000),
                }),
                Condition::Window {
                    not_before_ms: Some(1_796_256_000_000),
                    not_after_ms: None
                },
            ])
        );
        // A polygon across the antimeridian, either vertex form; any of eclipse or sunlit.
        let t = trigger_of(&format!(
            "{HEAD}  - id: cam\n    type: camera.capture\n    destination: a.png\n    trigger:\n      any:\n        - location:\n            polygon: [[-15, 175], [-15, -175], {{latitude: -22, longitude: -175}}, [-22, 175]]\n        - eclipse: true\n      deadline: 2026-12-04T00:00:00Z\n"
        ));
        assert_eq!(t.deadline, Some(Deadline::At(1_796_342_400_000)));
        let Condition::Any(items) = &t.when else {
            panic!("{t:?}")
        };
        assert!(
            matches!(&items[0], Condition::Location(Location { area: Area::Polygon(v), .. }) if v.len() == 4)
        );
        assert_eq!(items[1], Condition::Eclipse);
    }

    #[test]
    fn bad_triggers_say_what_and_where() {
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      location: {{latitude: 95, longitude: 6.96, radius_km: 5}}\n      eclipse: false\n      nadir: {{latitude: 1, longitude: 2, within: 10}}\n      deadline: soon\n"
            ),
            "8:28 [run] task 'run' (pod.run, line 8): field 'location.latitude' must be a number from -90 to 90\n\
             9:16 [run] task 'run' (pod.run, line 9): field 'eclipse' must be true (for the opposite, write 'sunlit: true')\n\
             10:14 [run] task 'run' (pod.run, line 10): missing required field 'within_deg'\n\
             10:42 [run] task 'run' (pod.run, line 10): unknown field 'within'; expected one of latitude, longitude, altitude, within_deg\n\
             11:17 [run] task 'run' (pod.run, line 11): field 'deadline' must be minutes as a number (10, 0.5) or a duration with a unit (90s, 5m, 1h), at most 7 days",
        );
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    merge: true\n    trigger:\n      telemetry: {{battery_soc: 60}}\n      location: {{polygon: [[0, 0], [1, 1]]}}\n      not_before: 2026-12-03T00:00:00Z\n      not_after: 2026-12-02T00:00:00Z\n      colour: red\n"
            ),
            "9:19 [run] task 'run' (pod.run, line 9): unknown field 'battery_soc'; expected one of battery_soc_percent, sensor0, sensor1, sensor2, sensor3, sensor4, sensor5, sensor6, sensor7, illumination\n\
             10:27 [run] task 'run' (pod.run, line 10): field 'location.polygon' must have from 3 to 1024 vertices, not 2\n\
             12:18 [run] task 'run' (pod.run, line 12): field 'not_after' must be later than 'not_before': the window is empty\n\
             13:7 [run] task 'run' (pod.run, line 13): unknown field 'colour'; expected one of location, eclipse, sunlit, not_before, not_after, all, any, nadir, telemetry, deadline",
        );
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    merge: true\n    trigger: {{sunlit: true}}\n"
            ),
            "8:14 [run] task 'run' (pod.run, line 8): field 'trigger' does not go with 'merge: true' yet: merged pods start together, so put the trigger on a task before them",
        );
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      location: {{polygon: [[0, -90], [0, 90], [10, 90]]}}\n"
            ),
            "8:27 [run] task 'run' (pod.run, line 8): field 'location.polygon': its edge from vertex 1 to vertex 2 spans exactly 180° of longitude, so it has no short way round; add a vertex between them",
        );
        check(
            &format!("{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger: {{}}\n"),
            "7:14 [run] task 'run' (pod.run, line 7): field 'trigger' holds no condition; expected one or more of location, eclipse, sunlit, not_before, not_after, all, any, nadir, telemetry",
        );
    }

    #[test]
    fn nadir_and_telemetry_triggers_read_and_say_what_is_wrong() {
        use wire::{Condition, GeoPoint, Light, Measured, Nadir, TelemetryTest};
        let t = trigger_of(&format!(
            "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      nadir: {{latitude: 46.27, longitude: 6.96, altitude: 372, within_deg: 10}}\n      telemetry:\n        battery_soc_percent: {{min: 60}}\n        sensor2: {{min: -10.5, max: 40}}\n        illumination: sunlit\n"
        ));
        assert_eq!(
            t.when,
            Condition::All(vec![
                Condition::Nadir(Nadir {
                    target: GeoPoint::from_degrees(46.27, 6.96).unwrap(),
                    altitude_m: 372,
                    within_mdeg: 10_000,
                }),
                Condition::Telemetry(TelemetryTest::Range {
                    value: Measured::BatterySocPercent,
                    min_milli: Some(60_000),
                    max_milli: None,
                }),
                Condition::Telemetry(TelemetryTest::Range {
                    value: Measured::Temperature(2),
                    min_milli: Some(-10_500),
                    max_milli: Some(40_000),
                }),
                Condition::Telemetry(TelemetryTest::Illumination(Light::Sunlit)),
            ])
        );
        check(
            &format!(
                "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      nadir: {{latitude: 46.27, longitude: 6.96, within_deg: 0}}\n      any:\n        - nadir: {{latitude: 46.27, longitude: 200, within_deg: 91}}\n        - telemetry: {{battery_soc_percent: {{min: 101}}, sensor9: {{max: 1}}}}\n        - telemetry: {{sensor1: {{min: 30, max: 20}}, illumination: dusk}}\n        - telemetry: {{battery_soc_percent: {{}}}}\n        - telemetry: {{}}\n"
            ),
            "8:61 [run] task 'run' (pod.run, line 8): field 'nadir.within_deg' must be above 0 (at least 0.001) and at most 90\n\
             10:47 [run] task 'run' (pod.run, line 10): field 'nadir.longitude' must be a number from -180 to 180\n\
             10:64 [run] task 'run' (pod.run, line 10): field 'nadir.within_deg' must be a number from 0 to 90\n\
             11:50 [run] task 'run' (pod.run, line 11): field 'telemetry.battery_soc_percent.min' must be a number from 0 to 100\n\
             11:56 [run] task 'run' (pod.run, line 11): unknown field 'sensor9'; expected one of battery_soc_percent, sensor0, sensor1, sensor2, sensor3, sensor4, sensor5, sensor6, sensor7, illumination\n\
             12:47 [run] task 'run' (pod.run, line 12): field 'telemetry.sensor1.max' must not be less than its 'min': no value passes\n\
             12:66 [run] task 'run' (pod.run, line 12): field 'telemetry.illumination' must be one of sunlit, penumbra, umbra\n\
             13:44 [run] task 'run' (pod.run, line 13): field 'telemetry.battery_soc_percent' needs 'min', 'max' or both\n\
             14:22 [run] task 'run' (pod.run, line 14): field 'telemetry' holds no test; expected one or more of battery_soc_percent, sensor0, sensor1, sensor2, sensor3, sensor4, sensor5, sensor6, sensor7, illumination",
        );
    }

    #[test]
    fn a_telemetry_mapping_counts_each_test_toward_the_triggers_size() {
        // 30 items of 3 tests each: 90 conditions (and 31 more for the `any` and items),
        // over the 64 a trigger may hold, though the `any` has fewer than 64 items.
        let item = "        - telemetry: {battery_soc_percent: {min: 1}, sensor0: {min: 1}, sensor1: {min: 1}}\n";
        let yaml = format!(
            "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      any:\n{}",
            item.repeat(30)
        );
        let err = parse(&yaml).expect_err("too large a trigger");
        let text = format!("{err:?}");
        assert!(text.contains("the trigger is too large"), "{text}");
        // Within the bound it reads.
        let yaml = format!(
            "{HEAD}  - id: run\n    type: pod.run\n    image: x\n    trigger:\n      any:\n{}",
            item.repeat(10)
        );
        assert!(parse(&yaml).is_ok());
    }

    #[test]
    fn syntax_errors_have_a_line() {
        check(
            "id: x\nnamespace: d\ntasks:\n  - id: a\n   type: [unclosed\n",
            "5:4 [-] YAML syntax error at line 5, column 4: while parsing a block collection, did not find expected '-' indicator",
        );
        check(
            "id: x\nnamespace: [a\n",
            "3:1 [-] YAML syntax error at line 3, column 1: while parsing a flow sequence, expected ',' or ']'",
        );
        check(
            "id: x\nid: y\n",
            "2:1 [-] YAML syntax error at line 2, column 1: duplicated key in mapping",
        );
        check(
            "",
            "1:1 [-] operation (line 1): the document is empty; expected an operation",
        );
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_rejected() {
        let deep = format!(
            "id: x\nnamespace: d\ntasks: {}{}\n",
            "[".repeat(40),
            "]".repeat(40)
        );
        let got = parse(&deep).unwrap_err();
        assert!(got[0].message.contains("nested deeper than 32"), "{got:?}");
        let mut bomb = String::from("a0: &a0 [x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        let got = parse(&bomb).unwrap_err();
        assert!(got[0].message.contains("aliases expanded"), "{got:?}");
        // Shallow, but wide: ten lists of ten aliases of the one before, 10^7 nodes expanded.
        let mut wide = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..7 {
            let row = vec![format!("*a{}", i - 1); 10].join(", ");
            wide.push_str(&format!("a{i}: &a{i} [{row}]\n"));
        }
        check(
            &wide,
            &format!(
                "6:10 [-] YAML syntax error at line 6, column 10: the document has more than {} nodes (aliases expanded)",
                yaml::MAX_NODES
            ),
        );
        // Flat: one long string, aliased until its copies pass the bound on text.
        let long = "y".repeat(100_000);
        let mut strings = format!("s: &s \"{long}\"\nl: [");
        strings.push_str(&vec!["*s"; 30].join(", "));
        strings.push_str("]\n");
        let got = parse(&strings).unwrap_err();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0]
                .message
                .ends_with("the document has more than 2 MiB of text (aliases expanded)"),
            "{got:?}"
        );
        // Without aliases, the same bounds hold.
        let many = format!("l: [{}]\n", vec!["x"; 200_001].join(","));
        let got = parse(&many).unwrap_err();
        assert!(
            got[0]
                .message
                .ends_with("the document has more than 200000 nodes"),
            "{got:?}"
        );
    }

    #[test]
    fn pod_stop_and_pod_logs() {
        check(
            &format!(
                "{HEAD}  - id: stop\n    type: dphi.space.cg2.pod.stop\n    pod_name: worker\n    grace: 30s\n  - id: logs\n    type: pod.logs\n    pod_name: worker\n    volume: pvc\n"
            ),
            "ok demo/hello system=None tasks=stop=pod.stop,logs=pod.logs",
        );
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: stop\n    type: pod.stop\n    pod_name: worker\n    grace: 30s\n"
            )),
            TaskSpec::PodStop {
                pod_name: "worker".parse().unwrap(),
                grace_ms: Some(30_000),
            }
        );
        check(
            &format!(
                "{HEAD}  - id: stop\n    type: pod.stop\n  - id: logs\n    type: pod.logs\n    pod_name: Bad Name\n    image: x\n"
            ),
            "4:5 [stop] task 'stop' (pod.stop, line 4): missing required field 'pod_name'\n\
             8:15 [logs] task 'logs' (pod.logs, line 8): field 'pod_name' 'Bad Name' is not a valid pod name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)\n\
             9:5 [logs] task 'logs' (pod.logs, line 9): unknown field 'image'; expected one of id, type, description, on_failure, trigger, pod_name, volume",
        );
    }

    #[test]
    fn fields_map_to_specs() {
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: Run.Me\n    type: pod.run\n    image: registry:5000/a/b:1.10\n    command: echo hi\n    env: [{{name: A, value: 1.10}}, {{name: B}}]\n"
            )),
            TaskSpec::PodRun {
                pod_name: "run-me".parse().unwrap(),
                image: ImageRef {
                    name: "registry:5000/a/b".into(),
                    tag: "1.10".into()
                },
                command: Some(vec!["echo hi".into()]),
                args: None,
                env: vec![("A".into(), "1.10".into()), ("B".into(), String::new())],
                volume: None,
                max_duration_ms: None,
                scheduled_ms: None,
                merge: false,
                node: None,
                ports: vec![],
            }
        );
        // `ports`: numbers are TCP; `host` is read and dropped; a port named twice counts once.
        let TaskSpec::PodRun { ports, .. } = spec_of(&format!(
            "{HEAD}  - id: srv\n    type: pod.run\n    image: x\n    merge: true\n    ports: [8080, {{container: 53, protocol: udp, host: 5353}}, {{container: 8080, protocol: TCP}}]\n"
        )) else {
            panic!()
        };
        assert_eq!(
            ports,
            [
                wire::PodPort {
                    container: 8080,
                    protocol: wire::PortProtocol::Tcp
                },
                wire::PodPort {
                    container: 53,
                    protocol: wire::PortProtocol::Udp
                }
            ]
        );
        check(
            &format!(
                "{HEAD}  - id: srv\n    type: pod.run\n    image: x\n    ports: [0, {{container: 1, protocol: sctp}}]\n"
            ),
            "7:13 [srv] task 'srv' (pod.run, line 7): field 'ports' must be a whole number from 1 to 65535\n\
             7:41 [srv] task 'srv' (pod.run, line 7): field 'protocol' must be TCP or UDP",
        );
        assert_eq!(
            spec_of(&format!(
                "{HEAD}  - id: up\n    type: uplink\n    source: app/\n    destination: /data/./x/\n    volume: payload\n"
            )),
            TaskSpec::Uplink {
                sources: vec!["/app".parse().unwrap()],
                destination: "data/x".parse().unwrap(),
                volume: Some("payload".parse().unwrap())
            }
        );
        check(
            &format!("{HEAD}  - id: up\n    type: uplink\n    source: [../etc]\n"),
            "6:13 [up] task 'up' (uplink, line 6): field 'source' has a bad path '../etc': '..' is not allowed",
        );
        check(
            &format!(
                "{HEAD}  - id: p\n    type: pod.run\n    image: x\n  - id: q\n    type: pod.run\n    image: y\n    pod_name: p\n"
            ),
            "7:5 [q] task 'q' (pod.run, line 7): pod_name 'p' is already used by the task at line 4",
        );
    }
}
