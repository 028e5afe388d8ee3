//! Which queued plans may run side by side.
//!
//! A plan claims what its tasks use of its tenant's: each volume it names (or all of them, for
//! a listing of every volume), the tenant's images (to read, or to change), the pod names it runs,
//! stops or reads. Two plans conflict only when they are the same tenant's and claim something in
//! common, one of them to change it (two readers of the images share them). Plans of different
//! tenants never conflict. The agent starts a queued plan when it conflicts with no running plan
//! and with no plan queued before it, so plans that conflict run one after the other, in the
//! order they came; the others run at once, each in its own task.
//!
//! No I/O: plans in, a verdict out.

use wire::{Plan, TaskKind};

/// What a plan uses of its tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    tenant: String,
    uses: Vec<Use>,
}

/// One thing of a tenant's a task uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Use {
    /// A volume, by name: its files are read or changed.
    Volume(String),
    /// Every volume of the tenant (a listing of all of them).
    AllVolumes,
    /// The tenant's images: read (a pod's image, a listing), or changed (build, load, delete).
    Images { change: bool },
    /// A pod, by name: one pod of a name at a time.
    Pod(String),
}

impl Use {
    fn conflicts(&self, other: &Use) -> bool {
        use Use::*;
        match (self, other) {
            (Volume(a), Volume(b)) => a == b,
            (AllVolumes, Volume(_) | AllVolumes) | (Volume(_), AllVolumes) => true,
            (Images { change: a }, Images { change: b }) => *a || *b,
            (Pod(a), Pod(b)) => a == b,
            _ => false,
        }
    }
}

impl Claim {
    /// What `plan` uses.
    pub(crate) fn of(plan: &Plan) -> Claim {
        let mut uses = Vec::new();
        for task in &plan.tasks {
            let volume = |v: &str| Use::Volume(v.to_string());
            match &task.kind {
                TaskKind::Uplink { volume: v, .. }
                | TaskKind::Downlink { volume: v, .. }
                | TaskKind::FilesDelete { volume: v, .. }
                | TaskKind::FilesMove { volume: v, .. }
                | TaskKind::CameraCapture { volume: v, .. } => uses.push(volume(v)),
                TaskKind::FilesList { volume: v, .. } => {
                    uses.push(v.as_deref().map_or(Use::AllVolumes, volume))
                }
                TaskKind::DockerBuild { volume: v, .. }
                | TaskKind::DockerLoad { volume: v, .. } => {
                    uses.extend([volume(v), Use::Images { change: true }])
                }
                TaskKind::ImageList => uses.push(Use::Images { change: false }),
                TaskKind::ImageDelete { .. } => uses.push(Use::Images { change: true }),
                TaskKind::PodRun {
                    volume: v,
                    pod_name,
                    ..
                } => uses.extend([
                    volume(v),
                    Use::Images { change: false },
                    Use::Pod(pod_name.clone()),
                ]),
                TaskKind::PodStop { pod_name, .. } => uses.push(Use::Pod(pod_name.clone())),
                TaskKind::PodLogs {
                    pod_name,
                    volume: v,
                } => uses.extend([Use::Pod(pod_name.clone()), volume(v)]),
            }
        }
        uses.dedup();
        Claim {
            tenant: plan.tenant.clone(),
            uses,
        }
    }

    /// Whether the two plans must not run at the same time.
    pub(crate) fn conflicts(&self, other: &Claim) -> bool {
        self.tenant == other.tenant
            && self
                .uses
                .iter()
                .any(|a| other.uses.iter().any(|b| a.conflicts(b)))
    }
}

/// The index in `queued` of the first plan that conflicts with none of `running` and none queued
/// before it.
pub(crate) fn next_runnable(queued: &[Claim], running: &[Claim]) -> Option<usize> {
    (0..queued.len()).find(|&i| {
        let c = &queued[i];
        !running.iter().any(|r| r.conflicts(c)) && !queued[..i].iter().any(|q| q.conflicts(c))
    })
}

#[cfg(test)]
mod tests {
    use wire::{ImageRef, OnFailure, PlanTask};

    use super::*;

    fn plan(tenant: &str, kinds: Vec<TaskKind>) -> Claim {
        Claim::of(&Plan {
            execution: "e".into(),
            tenant: tenant.into(),
            tasks: kinds
                .into_iter()
                .map(|kind| PlanTask {
                    id: "t".into(),
                    on_failure: OnFailure::Stop,
                    kind,
                })
                .collect(),
            system: "em".into(),
            sequence: 1,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        })
    }

    fn pod(name: &str, volume: &str) -> TaskKind {
        TaskKind::PodRun {
            pod_name: name.into(),
            image: ImageRef {
                name: "busybox".into(),
                tag: "latest".into(),
            },
            command: None,
            args: None,
            env: vec![],
            volume: volume.into(),
            max_duration_ms: None,
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        }
    }

    fn list(volume: Option<&str>) -> TaskKind {
        TaskKind::FilesList {
            volume: volume.map(String::from),
            folder: "/".into(),
            depth: 1,
        }
    }

    fn build(volume: &str) -> TaskKind {
        TaskKind::DockerBuild {
            volume: volume.into(),
            dockerfile: "Dockerfile".into(),
            context: "/".into(),
            image: ImageRef {
                name: "app".into(),
                tag: "1".into(),
            },
            max_duration_ms: None,
        }
    }

    #[test]
    fn only_what_a_tenant_shares_is_serialised() {
        let long_pod = plan("alice", vec![pod("p", "a")]);
        // Another tenant: never.
        assert!(!long_pod.conflicts(&plan("bob", vec![pod("p", "a"), build("a")])));
        // The same tenant: another volume and another pod run beside it.
        assert!(!long_pod.conflicts(&plan("alice", vec![list(Some("b")), pod("q", "b")])));
        // Its volume, all its volumes, its pod's name, its images changed: after it.
        for other in [
            vec![list(Some("a"))],
            vec![list(None)],
            vec![TaskKind::PodStop {
                pod_name: "p".into(),
                grace_ms: None,
            }],
            vec![pod("p", "b")],
            vec![build("b")],
            vec![TaskKind::ImageDelete {
                image: ImageRef {
                    name: "app".into(),
                    tag: "1".into(),
                },
            }],
        ] {
            let other = plan("alice", other);
            assert!(long_pod.conflicts(&other), "{other:?}");
            assert!(other.conflicts(&long_pod), "{other:?}");
        }
        // Images read by both: side by side.
        assert!(!plan("alice", vec![TaskKind::ImageList]).conflicts(&long_pod));
    }

    #[test]
    fn a_plan_waits_for_the_conflicting_plans_before_it_only() {
        let running = [plan("alice", vec![pod("p", "a")])];
        let queued = [
            plan("alice", vec![list(Some("a"))]),
            plan("alice", vec![list(None)]),
            plan("alice", vec![list(Some("b"))]),
            plan("bob", vec![list(Some("a"))]),
        ];
        // The first two wait for the pod; the third (volume b) would overtake the listing of
        // every volume queued before it: it waits too. Bob's runs.
        assert_eq!(next_runnable(&queued, &running), Some(3));
        assert_eq!(next_runnable(&queued[..3], &running), None);
        assert_eq!(next_runnable(&queued[..3], &[]), Some(0));
        assert_eq!(next_runnable(&queued[2..3], &running), Some(0));
        assert_eq!(next_runnable(&[], &running), None);
    }
}
