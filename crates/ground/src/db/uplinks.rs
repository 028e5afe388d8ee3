//! What each execution sends up: the `execution_plans` table (the encoded plan message of each
//! execution, resent to its system until the execution finishes), the `execution_objects` table
//! (the digest and size of that message and of every object of its uplink tasks, so a queued
//! transfer, known to the link by digest only, can be traced to the executions and tenants it is
//! for, and a system is served only the objects of its own unfinished executions) and the
//! `plan_sequences` table (the last sequence number signed into a plan for each system).
//! `queue::record` decides what goes in. Patches sent in place of objects (`execution_sends`,
//! see `encodings`) count as the execution's transfers too.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use wire::Digest;

use super::{Backend, Db, Tx, to_json};

/// Stores the encoded plan message an execution was compiled into.
pub(crate) async fn insert_execution_plan(
    tx: &mut Tx,
    execution: &str,
    encoded: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO execution_plans (execution, plan) VALUES ($1, $2)
         ON CONFLICT (execution) DO UPDATE SET plan = excluded.plan",
    )
    .bind(execution)
    .bind(encoded)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records that an execution sends up `digest` (`message`: its plan message, else an object).
pub(crate) async fn insert_execution_object(
    tx: &mut Tx,
    execution: &str,
    digest: &Digest,
    size: u64,
    message: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO execution_objects (execution, digest, size, message) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(execution)
    .bind(digest.to_string())
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .bind(i64::from(message))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The next sequence number of a plan for `system` (from 1), taken in `tx`: the number is used
/// only if the transaction commits, and never given twice.
pub(crate) async fn next_plan_sequence(tx: &mut Tx, system: &str) -> Result<u64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO plan_sequences (system, last) VALUES ($1, 1)
         ON CONFLICT(system) DO UPDATE SET last = plan_sequences.last + 1
         RETURNING last",
    )
    .bind(system)
    .fetch_one(&mut **tx)
    .await?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// The plans (execution id, encoded plan message) of a system's executions that have not
/// finished, oldest first.
pub(crate) async fn unfinished_plans(
    db: &Db,
    system: &str,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.execution, p.plan FROM execution_plans p JOIN executions e ON e.id = p.execution \
         WHERE e.system = $1 AND e.state IN ('CREATED', 'SCHEDULED', 'RUNNING', 'CANCELLING') \
         ORDER BY e.created_at, e.id",
    )
    .bind(system)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("execution")?, r.try_get("plan")?)))
        .collect()
}

/// Which of `digests` are objects (not plan messages) an unfinished execution of `system` sends
/// up: the only objects the ground serves that system. An execution being cancelled
/// (`CANCELLING`) is served nothing more: its cancel ends its uplinks onboard, and the link is
/// the scarce resource.
pub(crate) async fn served_objects(
    db: &Db,
    system: &str,
    digests: &[Digest],
) -> Result<HashSet<Digest>, sqlx::Error> {
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    let rows = sqlx::query(json_list_sql!(
        Backend::of(db),
        "SELECT DISTINCT o.digest FROM execution_objects o
         JOIN executions e ON e.id = o.execution
         WHERE o.digest IN (SELECT value FROM ",
        "$1",
        ") AND e.system = $2
           AND o.message = 0 AND e.state IN ('CREATED', 'SCHEDULED', 'RUNNING')",
    ))
    .bind(to_json(&list))
    .bind(system)
    .fetch_all(db)
    .await?;
    let mut out = HashSet::new();
    for row in rows {
        let d: String = row.try_get(0)?;
        if let Ok(d) = d.parse() {
            out.insert(d);
        }
    }
    Ok(out)
}

/// The running executions of `system` (id and tenant) that send up each of `digests`, the
/// earliest first.
pub(crate) async fn uplink_owners(
    db: &Db,
    system: &str,
    digests: &[Digest],
) -> Result<HashMap<Digest, Vec<(String, String)>>, sqlx::Error> {
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    // What an execution needs, and the patches sent in place of some of it.
    let rows = sqlx::query(json_list_sql!(
        Backend::of(db),
        "SELECT o.digest, o.execution, e.tenant FROM
             (SELECT digest, execution FROM execution_objects
              UNION SELECT object, execution FROM execution_sends) o
         JOIN executions e ON e.id = o.execution
         WHERE o.digest IN (SELECT value FROM ",
        "$1",
        ") AND e.system = $2
           AND e.state NOT IN ('SUCCESS', 'FAILED')
         ORDER BY e.created_at, e.id",
    ))
    .bind(to_json(&list))
    .bind(system)
    .fetch_all(db)
    .await?;
    let mut out: HashMap<Digest, Vec<(String, String)>> = HashMap::new();
    for row in rows {
        let digest: String = row.try_get(0)?;
        let Ok(digest) = digest.parse::<Digest>() else {
            continue;
        };
        out.entry(digest)
            .or_default()
            .push((row.try_get(1)?, row.try_get(2)?));
    }
    Ok(out)
}

/// The digests an execution sends up: its plan, the objects it needs and the patches sent in
/// place of some of them.
pub(crate) async fn execution_digests(
    db: &Db,
    execution: &str,
) -> Result<HashSet<Digest>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT digest FROM execution_objects WHERE execution = $1
         UNION SELECT object FROM execution_sends WHERE execution = $1",
    )
    .bind(execution)
    .fetch_all(db)
    .await?;
    let mut out = HashSet::new();
    for row in rows {
        let d: String = row.try_get(0)?;
        if let Ok(d) = d.parse() {
            out.insert(d);
        }
    }
    Ok(out)
}

/// An execution's uplink as planned: how many distinct objects its uplink tasks place, their
/// bytes, and the bytes of its plan message; `None` when it has no plan.
pub(crate) async fn execution_uplink_totals(
    db: &Db,
    execution: &str,
) -> Result<Option<(u64, u64, u64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE message = 0) AS objects,
                CAST(COALESCE(SUM(size) FILTER (WHERE message = 0), 0) AS BIGINT) AS bytes,
                CAST(COALESCE(SUM(size) FILTER (WHERE message = 1), 0) AS BIGINT) AS plan,
                COUNT(*) FILTER (WHERE message = 1) AS plans
         FROM execution_objects WHERE execution = $1",
    )
    .bind(execution)
    .fetch_one(db)
    .await?;
    let n = |c: &str| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(c)?).unwrap_or(0))
    };
    if n("plans")? == 0 {
        return Ok(None);
    }
    Ok(Some((n("objects")?, n("bytes")?, n("plan")?)))
}
