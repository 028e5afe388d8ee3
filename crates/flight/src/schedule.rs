//! Which queued plans may run side by side.
//!
//! A plan claims its tenant: two plans of one tenant never run at the same time, whatever they
//! use, since every task that writes into the volumes is judged against what all of the
//! tenant's volumes hold and the tenant's quotas (two plans on different volumes would both pass
//! the check against the same usage, then both write); it also keeps one tenant from holding
//! every running slot. Plans of different tenants never conflict. The agent starts a queued plan
//! when it conflicts with no running plan and with no plan queued before it, so a tenant's plans
//! run one after the other, in the order they came, and other tenants' run at once, each in its
//! own task. (Builds, loads and image deletions of all tenants are serialised too, but by the
//! task, not the plan: see `tasks::Executor::engine_storage`.)
//!
//! No I/O: plans in, a verdict out.

use wire::Plan;

/// What a plan claims: its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    tenant: String,
}

impl Claim {
    /// What `plan` claims.
    pub(crate) fn of(plan: &Plan) -> Claim {
        Claim {
            tenant: plan.tenant.clone(),
        }
    }

    /// Whether the two plans must not run at the same time.
    pub(crate) fn conflicts(&self, other: &Claim) -> bool {
        self.tenant == other.tenant
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
    use wire::{ImageRef, OnFailure, PlanTask, TaskKind};

    use super::*;

    fn plan(tenant: &str, kinds: Vec<TaskKind>) -> Claim {
        Claim::of(&Plan {
            elements: None,
            execution: "e".into(),
            tenant: tenant.into(),
            tasks: kinds
                .into_iter()
                .map(|kind| PlanTask {
                    id: "t".into(),
                    on_failure: OnFailure::Stop,
                    trigger: None,
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

    fn uplink(volume: &str) -> TaskKind {
        TaskKind::Uplink {
            volume: volume.into(),
            files: vec![],
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
    fn a_tenants_plans_are_serialised_and_other_tenants_are_not() {
        let long_pod = plan("alice", vec![pod("p", "a")]);
        // Another tenant: never, whatever it uses.
        assert!(!long_pod.conflicts(&plan("bob", vec![pod("p", "a"), build("a")])));
        assert!(!plan("bob", vec![build("a")]).conflicts(&plan("alice", vec![build("a")])));
        // The same tenant: always, even on another volume and another pod (two uplinks on two
        // volumes would both pass the quota check against the same usage), or only reading.
        for other in [
            vec![uplink("b")],
            vec![list(Some("b")), pod("q", "b")],
            vec![list(None)],
            vec![TaskKind::ImageList],
            vec![build("b")],
        ] {
            let other = plan("alice", other);
            assert!(long_pod.conflicts(&other), "{other:?}");
            assert!(other.conflicts(&long_pod), "{other:?}");
        }
    }

    #[test]
    fn a_plan_waits_for_its_tenants_plans_before_it_only() {
        let running = [plan("alice", vec![pod("p", "a")])];
        let queued = [
            plan("alice", vec![uplink("b")]),
            plan("alice", vec![list(Some("c"))]),
            plan("bob", vec![list(Some("a"))]),
            plan("bob", vec![uplink("b")]),
            plan("carol", vec![build("a")]),
        ];
        // Alice's wait for her running pod, on whatever volume; Bob's first runs.
        assert_eq!(next_runnable(&queued, &running), Some(2));
        assert_eq!(next_runnable(&queued[..2], &running), None);
        // Bob's second waits for his first, queued before it; Carol's runs.
        let running = [running[0].clone(), queued[2].clone()];
        assert_eq!(next_runnable(&queued[3..], &running), Some(1));
        assert_eq!(next_runnable(&queued[..2], &[]), Some(0));
        assert_eq!(next_runnable(&[], &running), None);
    }

    /// However many plans a tenant queues, each other tenant's first plan runs beside them:
    /// one tenant holds at most one running slot.
    #[test]
    fn one_tenant_holds_one_slot() {
        let mut queued: Vec<Claim> = (0..8)
            .map(|i| plan("alice", vec![uplink(&format!("v{i}"))]))
            .collect();
        queued.push(plan("bob", vec![uplink("v")]));
        let mut running = Vec::new();
        while let Some(i) = next_runnable(&queued, &running) {
            running.push(queued.remove(i));
        }
        assert_eq!(running, [plan("alice", vec![]), plan("bob", vec![])]);
    }
}
