//! `orbitdock plan`: how namespace files would cross the link to a system, and when.

use std::process::ExitCode;

use reqwest::Method;

use crate::args::PlanArgs;
use crate::verbs::Cli;

/// `orbitdock plan NS:/path… --system S`: asks the ground's planner (`POST /api/v1/plan`) and
/// prints, per file and in total, how it would be sent, the bytes and the ETA in passes. JSON:
/// the API's `UplinkPlan`.
pub(crate) async fn plan(cli: &Cli, a: PlanArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    let req = api::PlanRequest {
        system: a.system,
        sources: a.sources,
        volume: a.volume,
        destination: a.destination,
    };
    let plan: api::UplinkPlan = client
        .json(client.request(Method::POST, "/api/v1/plan").json(&req))
        .await?;
    cli.show(&plan, print_plan)?;
    Ok(ExitCode::SUCCESS)
}

fn print_plan(p: &api::UplinkPlan) {
    println!(
        "{:<40} {:>12} {:<11} {:>12}  BASE",
        "FILE", "SIZE", "SENT AS", "BYTES"
    );
    for f in &p.files {
        let base = f
            .base
            .as_deref()
            .map(|b| b.get(..19).unwrap_or(b))
            .unwrap_or("-");
        println!(
            "{:<40} {:>12} {:<11} {:>12}  {base}",
            f.path, f.size, f.encoding, f.bytes
        );
    }
    let t = &p.total;
    let share = if t.size == 0 {
        0.0
    } else {
        100.0 * t.bytes as f64 / t.size as f64
    };
    println!(
        "total: {} files, {} bytes, {} bytes on the link ({share:.1} %) to {} volume {}",
        t.files, t.size, t.bytes, p.system, p.volume
    );
    let e = &p.eta;
    let when = match (&e.completion, &e.pass, e.passes, &e.error) {
        (Some(at), Some(pass), Some(n), _) => format!(
            "arrives {at}, in pass {n} from now (over {}, AOS {})",
            pass.station, pass.aos
        ),
        (Some(at), _, _, _) => format!("arrives {at}"),
        (None, _, _, Some(why)) => format!("no ETA: {why}"),
        (None, _, _, None) if e.always_in_contact => {
            "always in contact, at a rate not configured: no ETA".to_string()
        }
        (None, _, _, None) => "no ETA: the passes ahead cannot carry it".to_string(),
    };
    println!("eta: {when}; {} bytes queued ahead", e.queued_bytes_ahead);
}
