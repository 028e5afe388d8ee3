//! Command-line syntax of the operators' verbs (`approve`, `user`, `quota`, `elements`): validated raw
//! flags only, no I/O (beside `args`, which names them in its `Command`).

use clap::{Args as ClapArgs, Subcommand};

#[derive(Debug, ClapArgs)]
pub(crate) struct ApproveArgs {
    /// The execution's id.
    pub(crate) id: String,
    /// Reject it instead: it ends REJECTED and is never sent.
    #[arg(long, requires = "reason")]
    pub(crate) reject: bool,
    /// Why it is rejected (the tenant reads it in the execution's history and errors).
    #[arg(long, requires = "reject")]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct UserArgs {
    #[command(subcommand)]
    pub(crate) command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// List every user with its role and whether it is disabled.
    #[command(after_help = "Example:\n  orbitdock user list")]
    List,
    /// Create a user (a tenant, or with --operator an operator).
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PW\" | orbitdock user add carol --password-stdin"
    )]
    Add {
        /// The name, which is also the tenant: [a-z0-9][a-z0-9_-]{0,62}.
        name: String,
        /// Make it an operator.
        #[arg(long)]
        operator: bool,
        /// The password. On the command line it is visible to every user of the machine (`ps`):
        /// prefer ORBITDOCK_NEW_PASSWORD or --password-stdin.
        #[arg(long, env = "ORBITDOCK_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
    },
    /// Disable a user: it can no longer log in, and its sessions end.
    #[command(after_help = "Example:\n  orbitdock user disable carol")]
    Disable { name: String },
    /// Let a disabled user log in again.
    #[command(after_help = "Example:\n  orbitdock user enable carol")]
    Enable { name: String },
}

#[derive(Debug, ClapArgs)]
pub(crate) struct ElementsArgs {
    #[command(subcommand)]
    pub(crate) command: ElementsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ElementsCommand {
    /// Send a system a newer element set on its own (operators): its triggers and its
    /// telemetry propagate it from then on. FILE holds one two- or three-line element set
    /// (`-`: standard input); its epoch must be later than that of the set in use.
    #[command(
        after_help = "Examples:\n  orbitdock elements send fm fm-latest.tle\n  curl -s https://celestrak.org/NORAD/elements/gp.php?CATNR=99001 | orbitdock elements send fm - -o json"
    )]
    Send {
        /// The system.
        system: String,
        /// The element set's file, or `-` for standard input.
        file: std::path::PathBuf,
    },
    /// Show the element set a system uses: the systems file's, or a newer one sent on its own.
    #[command(after_help = "Example:\n  orbitdock elements show fm -o json")]
    Show {
        /// The system.
        system: String,
    },
}

#[derive(Debug, ClapArgs)]
pub(crate) struct QuotaArgs {
    #[command(subcommand)]
    pub(crate) command: QuotaCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// Show a tenant's quotas, or every user's.
    #[command(
        after_help = "Examples:\n  orbitdock quota show\n  orbitdock quota show carol -o json"
    )]
    Show {
        /// The tenant [default: every user (operators)].
        tenant: Option<String>,
    },
    /// Set some of a tenant's quotas; the others stay as they are. A size takes a unit (kB, MB,
    /// GB, TB, KiB, MiB, GiB, TiB; plain bytes without), and `none` removes the limit.
    #[command(
        after_help = "Example:\n  orbitdock quota set carol --volume-bytes 2GiB --compute-seconds-per-day 3600 --image-bytes none"
    )]
    Set {
        /// The tenant.
        tenant: String,
        /// Bytes of its volumes onboard.
        #[arg(long, value_parser = parse_limit)]
        volume_bytes: Option<Limit>,
        /// Bytes of its images onboard.
        #[arg(long, value_parser = parse_limit)]
        image_bytes: Option<Limit>,
        /// Seconds of pod run time a day (UTC).
        #[arg(long, value_parser = parse_limit)]
        compute_seconds_per_day: Option<Limit>,
        /// Bytes downlinked a day (UTC).
        #[arg(long, value_parser = parse_limit)]
        downlink_bytes_per_day: Option<Limit>,
    },
}

/// A quota flag's value: a limit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub(crate) Option<u64>);

/// `none`, or a whole number with an optional unit: kB, MB, GB, TB (powers of 1000) or KiB, MiB,
/// GiB, TiB (powers of 1024), any case, `B` optional.
pub(crate) fn parse_limit(s: &str) -> Result<Limit, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?}: expected a whole number, with a unit (2GiB) or not, or none")
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit; use kB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|v| i64::try_from(*v).is_ok())
        .map(|v| Limit(Some(v)))
        .ok_or_else(|| format!("{s:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_units_and_none() {
        let ok = |s: &str| parse_limit(s).unwrap().0;
        assert_eq!(ok("none"), None);
        assert_eq!(ok("1234"), Some(1234));
        assert_eq!(ok("2GiB"), Some(2 << 30));
        assert_eq!(ok("500MB"), Some(500_000_000));
        assert_eq!(ok("3 kb"), Some(3000));
        assert_eq!(ok("1Ti"), Some(1 << 40));
        assert!(parse_limit("1.5GB").unwrap_err().contains("unknown unit"));
        assert!(parse_limit("lots").unwrap_err().contains("whole number"));
        assert!(parse_limit("20000000TB").unwrap_err().contains("too large"));
    }
}
