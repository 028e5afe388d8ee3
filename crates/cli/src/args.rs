//! Command-line syntax. Validated raw flags only: no I/O here.
//!
//! Long file: the clap definitions of every verb, read side by side so that flags stay
//! consistent across verbs; each verb's own options live in their own files where they grew
//! large (`admin_args`, `files_args`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

pub(crate) use crate::admin_args::{
    ApproveArgs, ElementsArgs, ElementsCommand, Limit, QuotaArgs, QuotaCommand, UserArgs,
    UserCommand,
};
pub(crate) use crate::files_args::{FilesArgs, FilesCommand, Onboard};

/// What the exit status of `orbitdock` means (the end of `--help`, and README's reference).
pub(crate) const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  what was asked failed: an error (the server unreachable, a wrong user or password, a
     refused request), an invalid operation, preflight errors that block a start, an
     execution that failed (exec start --wait), lint errors
  2  usage error: an unknown command or flag, a missing or invalid argument
  3  not logged in, or the session was refused (log in again)
  4  the server's TLS certificate did not verify (give its CA with --cacert FILE)

With -o json every client verb prints one JSON document on standard output: the API's own
response type (docs/api.md), or for verbs without one the shape docs/cli.md gives; -o yaml
prints the same document in YAML.";

/// orbitdock: run containerised software on satellites.
///
/// Upload files on the ground, build and run them as containers onboard over a scarce,
/// intermittent link, and bring the results down. `orbitdock demo` starts everything on this
/// machine for a first run.
#[derive(Debug, Parser)]
#[command(
    name = "orbitdock",
    version,
    propagate_version = true,
    after_long_help = EXIT_STATUS
)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// How client verbs print their answer: for a person (`text`), or the API's answer as JSON
    /// or as the same document in YAML.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Use this saved context (server and session) instead of the current one.
    #[arg(long, global = true, env = "ORBITDOCK_CONTEXT")]
    pub(crate) context: Option<String>,
    /// Check an HTTPS server's certificate against the CA certificates of this PEM file only
    /// (not the system's). `login` saves it with the context; other verbs use it over the
    /// context's. [env: ORBITDOCK_CACERT, when not empty]
    #[arg(long, global = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) cacert: Option<PathBuf>,
}

/// How a client verb prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For a person.
    Text,
    /// One JSON document: the API's response type.
    Json,
    /// The same document as `json`, in YAML.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start ground, link and flight agent with embedded defaults, for a first run.
    Demo(DemoArgs),
    /// Run the ground segment: HTTP API, dashboard, executor, link endpoints.
    Ground(GroundArgs),
    /// Run the link emulator between ground and flight.
    Link(LinkArgs),
    /// Run the onboard agent, or prepare its base images.
    Flight(FlightArgs),
    /// Log in to a ground server and remember the session as a context.
    #[command(
        after_help = "Examples:\n  printf '%s\\n' \"$PW\" | orbitdock login --server http://127.0.0.1:7700 --user demo --password-stdin\n  printf '%s\\n' \"$PW\" | orbitdock login --server https://ground.lab:7700 --cacert ca.pem --user demo --password-stdin"
    )]
    Login(LoginArgs),
    /// List, switch and remove saved contexts (a server with its session), like kubectl's.
    #[command(after_help = "Examples:\n  orbitdock context list\n  orbitdock context use lab")]
    Context(ContextArgs),
    /// Upload and download namespace files.
    Files(FilesArgs),
    /// Apply, validate and show operations.
    Op(OpArgs),
    /// Start and inspect executions.
    Exec(ExecArgs),
    /// Approve an execution awaiting an operator's approval, or reject it with a reason
    /// (operators).
    #[command(
        after_help = "Examples:\n  orbitdock approve 3f2a9c1e\n  orbitdock approve 3f2a9c1e --reject --reason 'uplink budget spent this week'"
    )]
    Approve(ApproveArgs),
    /// List, add, disable and enable users (operators).
    #[command(
        after_help = "Examples:\n  orbitdock user list -o json\n  printf '%s\\n' \"$PW\" | orbitdock user add carol --password-stdin"
    )]
    User(UserArgs),
    /// Show and set tenants' quotas (operators; a tenant may show its own).
    #[command(
        after_help = "Examples:\n  orbitdock quota show carol\n  orbitdock quota set carol --volume-bytes 2GiB --downlink-bytes-per-day 500MB"
    )]
    Quota(QuotaArgs),
    /// Send a system a newer element set (TLE) on its own (operators), or show the one it uses.
    #[command(
        after_help = "Examples:\n  orbitdock elements send fm fm-latest.tle\n  orbitdock elements show fm -o json"
    )]
    Elements(ElementsArgs),
    /// Create a link key for a satellite (give the same file to its ground and flight agent).
    Keygen {
        /// Where to write the key (64 hex digits, mode 0600); refuses to overwrite.
        path: PathBuf,
        /// Make the ground's plan-signing key instead, with its public half in PATH.pub.
        #[arg(long)]
        plan: bool,
    },
    /// Run a benchmark and print its table.
    Bench(BenchArgs),
    /// List the upcoming passes and eclipses of a system (or of every system) with their
    /// capacity: from the ground, or offline from a systems file or a TLE.
    #[command(
        after_help = "Examples:\n  orbitdock passes --system fm\n  orbitdock passes --systems-file systems.json --system fm --from 2026-12-03T00:00:00Z --hours 12 -o json\n  orbitdock passes --tle sat.tle"
    )]
    Passes(PassesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  orbitdock completions bash > /etc/bash_completion.d/orbitdock"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (orbitdock.1 and one per verb) into a folder.
    #[command(after_help = "Example:\n  orbitdock man /usr/local/share/man/man1")]
    Man {
        /// The folder (created if missing).
        dir: PathBuf,
    },
    /// Check, on the ground, what would fail onboard: a build context folder (with its
    /// Dockerfile), a Dockerfile, a `docker save` archive or a binary. Exit status 1 on errors.
    Lint(LintArgs),
    /// Make and apply the patches the link carries (see docs/delta.md).
    Delta(DeltaArgs),
    /// Show how namespace files would cross the link to a system: per file nothing, a
    /// reference, a delta, compressed or raw, the bytes, and the ETA in passes.
    #[command(
        after_help = "Examples:\n  orbitdock plan demo:/app --system fm\n  orbitdock plan demo:/app/bin/tool demo:/cfg.json --system em --destination /in -o json"
    )]
    Plan(PlanArgs),
}

#[derive(Debug, ClapArgs)]
pub(crate) struct PlanArgs {
    /// Files or folders, NAMESPACE:/path (a folder: every file under it).
    #[arg(required = true, value_name = "NS:/PATH")]
    pub(crate) sources: Vec<String>,
    /// The system to send to.
    #[arg(long)]
    pub(crate) system: String,
    /// The volume they would land in [default: your <user>-pvc].
    #[arg(long)]
    pub(crate) volume: Option<String>,
    /// The folder they would land under, as an uplink's destination [default: /].
    #[arg(long)]
    pub(crate) destination: Option<String>,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct PassesArgs {
    /// The system [default: every system].
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// How far ahead, in hours (1 to 168).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=168))]
    pub(crate) hours: u32,
    /// Predict offline from this systems file (orbits and stations, docs/systems.md).
    #[arg(long, conflicts_with = "tle")]
    pub(crate) systems_file: Option<PathBuf>,
    /// Predict offline from this TLE file (two or three lines) over the demo's stations.
    #[arg(long)]
    pub(crate) tle: Option<PathBuf>,
    /// Start at this UTC instant (RFC 3339, e.g. 2026-12-03T12:00:00Z) instead of now
    /// (offline only).
    #[arg(long)]
    pub(crate) from: Option<String>,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct ContextArgs {
    #[command(subcommand)]
    pub(crate) command: ContextCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContextCommand {
    /// List the saved contexts; `*` marks the current one.
    List,
    /// Make a context the current one.
    Use { name: String },
    /// Forget a context and its session.
    Rm { name: String },
}

#[derive(Debug, ClapArgs)]
pub(crate) struct LintArgs {
    /// A folder (build context), a Dockerfile, an image archive (.tar) or a binary.
    pub(crate) path: PathBuf,
    /// The Dockerfile, relative to the context folder.
    #[arg(long, short = 'f', default_value = "Dockerfile")]
    pub(crate) file: String,
    /// The target system: `em` (this machine's platform) or a flight system (linux/arm64).
    #[arg(long, default_value = "em")]
    pub(crate) system: String,
    /// Judge against the system as this systems file declares it (platform, builder,
    /// catalogue; see docs/systems.md) instead of the defaults.
    #[arg(long)]
    pub(crate) systems_file: Option<PathBuf>,
    /// The image will be built on the ground and uploaded as an archive (multi-stage builds
    /// from non-catalogue images are fine there).
    #[arg(long)]
    pub(crate) ground_build: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "sarif")]
    pub(crate) json: bool,
    /// Print SARIF 2.1.0 (for code-scanning tools).
    #[arg(long)]
    pub(crate) sarif: bool,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchWhat {
    /// The transfer protocol against the 220 B / 20-unacknowledged / 1 s baseline, over rates,
    /// round-trip times and loss models (simulated time; a few minutes).
    Link {
        /// Seed of the loss draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The link against CCSDS CFDP class 2 (cfdp-py, run by python3) over the link emulator in
    /// real time: one file per row of rate × RTT × loss × seed, both protocols per row. By
    /// default the whole matrix (90 rows, 180 runs of about 45 s each).
    #[command(
        after_help = "Needs python3 with cfdp-py 0.7.0:\n  python3 -m pip install cfdp-py==0.7.0 'fastcrc~=0.3.0'\nExamples:\n  orbitdock bench cfdp --parallel 10\n  orbitdock bench cfdp --rate 256000 --rtt-ms 600 --loss 0.1 --loss-model bursty --seed 4 --seed 5"
    )]
    Cfdp {
        /// The link's rate each way, bit/s (repeat for several) [default: 9600, 256000, 2000000].
        #[arg(long)]
        rate: Vec<u64>,
        /// The round trip, ms; half of it each way (repeat for several) [default: 80, 600].
        #[arg(long)]
        rtt_ms: Vec<u64>,
        /// Mean loss rate each way, 0 to 1 (repeat for several) [default: 0, 0.01, 0.1].
        #[arg(long)]
        loss: Vec<f64>,
        /// How loss above 0 is drawn: `random` (independent) or `bursty` (Gilbert–Elliott, same
        /// mean) (repeat for both) [default: random and bursty].
        #[arg(long, value_parser = ["random", "bursty"])]
        loss_model: Vec<String>,
        /// Bursty loss: the bad state's mean stay, datagrams.
        #[arg(long, default_value_t = 8.0)]
        burst: f64,
        /// Seed of the emulator's draws (repeat for several) [default: 1, 2, 3].
        #[arg(long)]
        seed: Vec<u64>,
        /// The file's size, bytes [default: 40 s of each row's rate].
        #[arg(long)]
        file_bytes: Option<usize>,
        /// Without --file-bytes: the file is this many seconds of the link's rate.
        #[arg(long, default_value_t = 40.0)]
        capacity_secs: f64,
        /// Runs at once, each with its own ports and emulator (real time, mostly idle CPU).
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Run orbitdock alone (no python3 or cfdp-py needed).
        #[arg(long)]
        no_cfdp: bool,
    },
    /// Pass prediction: 1 and 10 stations over 1 and 7 days.
    Passes,
    /// The ground's API under load: concurrent clients uploading, applying, executing and
    /// polling, on SQLite and (given a server) PostgreSQL with one replica and two.
    #[command(
        after_help = "Examples:\n  orbitdock bench ground\n  orbitdock bench ground --clients 200 --seconds 20 --postgres postgres://postgres@127.0.0.1:5432/postgres"
    )]
    Ground {
        /// Concurrent clients.
        #[arg(long, default_value_t = 200)]
        clients: usize,
        /// How long each row runs, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// A PostgreSQL server to make the bench's databases on (a URL of a database to connect
        /// to first); without it, SQLite only.
        #[arg(long, env = "ORBITDOCK_BENCH_POSTGRES_URL")]
        postgres: Option<String>,
    },
    /// The dashboard's Home for a tenant with 50 operations and executions on two systems:
    /// latency served from the view cache and computed afresh (a ground on loopback; seconds).
    Home,
    /// The flight agent: idle memory and CPU, and a plan's pod against plain `docker run`
    /// (real processes and the Docker Engine; about a minute).
    Flight,
    /// Patch sizes over a corpus this command builds (C, Go, Rust for x86-64 and AArch64, a
    /// Python tree, a dataset), beside the delta tools installed here (several minutes).
    Delta {
        /// Keep the corpus and the patches in this folder [default: a temporary folder].
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Leave out the 200 MB dataset.
        #[arg(long)]
        no_dataset: bool,
    },
}

/// The kinds of patch `delta make --kind` can force.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PatchKind {
    /// The whole file, zstd -19 (no base).
    WholeZstd,
    /// zstd with the old file as reference prefix (`zstd --patch-from`).
    ZstdRef,
    /// bsdiff-4.
    Bsdiff,
    /// The executable-aware delta (ELF x86-64 or AArch64).
    Exe,
    /// A tar archive without the members `--layers-from` holds (image layers onboard).
    Layers,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct DeltaArgs {
    #[command(subcommand)]
    pub(crate) what: DeltaWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeltaWhat {
    /// Write the smallest patch that turns OLD into NEW, and print its size and kind.
    Make {
        /// The file the satellite holds (`-` for none: the patch carries NEW whole).
        old: PathBuf,
        /// The file to send.
        new: PathBuf,
        /// Where to write the patch (refuses to overwrite).
        patch: PathBuf,
        /// Make this kind only.
        #[arg(long, value_enum)]
        kind: Option<PatchKind>,
        /// A tar archive (e.g. `docker save` of a base image onboard) whose members are layers
        /// the satellite can produce: NEW's members with the same content are left out (the
        /// layers kind). Repeatable.
        #[arg(long, value_name = "ARCHIVE")]
        layers_from: Vec<PathBuf>,
    },
    /// Turn OLD into NEW with PATCH, as the flight does: NEW is written only once its sha256
    /// is the one the patch declares.
    Apply {
        /// The file the patch was made against (`-` for a whole-zstd patch).
        old: PathBuf,
        /// The patch.
        patch: PathBuf,
        /// Where to write the result (refuses to overwrite).
        new: PathBuf,
        /// A tar archive whose members give the layers a layers patch leaves out (each used only
        /// if its sha256 is the one the patch names). Repeatable.
        #[arg(long, value_name = "ARCHIVE")]
        layers_from: Vec<PathBuf>,
    },
}

impl Args {
    /// `--cacert`, else `ORBITDOCK_CACERT` when set and not empty (CI may set it empty, as it
    /// may `ORBITDOCK_SERVER` and `ORBITDOCK_TOKEN`).
    pub(crate) fn cacert(&self) -> Option<PathBuf> {
        self.cacert.clone().or_else(|| {
            std::env::var_os("ORBITDOCK_CACERT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

impl Command {
    pub(crate) fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Demo(_) | Command::Ground(_) | Command::Link(_) | Command::Flight(_)
        )
    }
}

#[derive(Debug, ClapArgs)]
pub(crate) struct DemoArgs {
    /// Where ground and flight keep their state [default: $XDG_DATA_HOME/orbitdock/demo].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The ground's database, as `orbitdock ground --database-url` takes it
    /// [default: sqlite://DATA_DIR/ground/ground.sqlite].
    #[arg(long, env = "ORBITDOCK_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The HTTP address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub(crate) http: SocketAddr,
    /// First of eight consecutive UDP ports on 127.0.0.1 for ground, links and flight agents.
    #[arg(long, default_value_t = 7701)]
    pub(crate) udp_base: u16,
    /// The demo user's password [default: `orbitdock` when --http is a loopback address;
    /// otherwise a random one, made once, kept in DATA_DIR/keys/demo.password and printed at
    /// start].
    #[arg(long)]
    pub(crate) password: Option<String>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
}

/// HTTPS for the API and dashboard: a certificate and its key, both or neither.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first, then any
    /// intermediates) [default: plain HTTP].
    #[arg(long, requires = "tls_key", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The certificate and key files, when both were given (clap requires each with the other).
    pub(crate) fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }
}

#[derive(Debug, ClapArgs)]
pub(crate) struct GroundArgs {
    /// Database and blob directory.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// The database: sqlite://PATH or postgres://USER@HOST:PORT/DB (docs/scale-out.md). A
    /// password in it shows in the process list: prefer the environment variable, or a
    /// password file (PGPASSFILE) [default: sqlite://DATA_DIR/ground.sqlite].
    #[arg(long, env = "ORBITDOCK_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The HTTP address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub(crate) http: SocketAddr,
    /// A system the ground talks to: NAME=LOCAL_UDP,LINK_UDP (repeatable).
    #[arg(long = "system", value_parser = parse_system, required = true)]
    pub(crate) systems: Vec<SystemArg>,
    /// Create a user, or give it a new password: NAME:PASSWORD (repeatable). Anyone on the
    /// machine can read it in the process list: prefer --users-file or ORBITDOCK_USERS.
    #[arg(long = "user", value_parser = parse_user)]
    pub(crate) users: Vec<(String, String)>,
    /// Users from a file only its owner may read (mode 0600 or 0400): one NAME:PASSWORD or
    /// NAME:$argon2id$... (the password's hash) per line; blank lines and lines starting with #
    /// are skipped. The environment variable ORBITDOCK_USERS may hold the same lines. A user
    /// who has the password already keeps its sessions.
    #[arg(long)]
    pub(crate) users_file: Option<PathBuf>,
    /// Folder of link keys, one `<system>.key` per system [default: DATA_DIR/keys].
    #[arg(long)]
    pub(crate) keys: Option<PathBuf>,
    /// Orbits and ground stations of flight systems (JSON); their links are up only in passes.
    #[arg(long)]
    pub(crate) systems_file: Option<PathBuf>,
    /// The ground's plan-signing key [default: KEYS/plan.key, made with its public half
    /// `plan.pub` when missing]. Flight agents run only plans it signed.
    #[arg(long)]
    pub(crate) plan_key: Option<PathBuf>,
    /// This replica's name in the link leases, unique among the replicas sharing the database
    /// (docs/scale-out.md) [default: the host's name and the data directory].
    #[arg(long, env = "ORBITDOCK_REPLICA")]
    pub(crate) replica: Option<String>,
    /// Each system's link session, `<DIR>/<system>/`: replicas sharing a database share it
    /// (a filesystem they all mount), so the one taking a link over resumes its transfers
    /// [default: DATA_DIR/link].
    #[arg(long)]
    pub(crate) link_state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) blobs: BlobArgs,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
}

/// Where the ground keeps blobs besides DATA_DIR/blobs (docs/scale-out.md).
#[derive(Clone, ClapArgs)]
pub(crate) struct BlobArgs {
    /// Keep every blob in an S3-compatible store, s3://BUCKET/PREFIX, shared by ground replicas;
    /// DATA_DIR/blobs is then a cache of it [default: DATA_DIR/blobs alone].
    #[arg(long, env = "ORBITDOCK_BLOB_URL", value_name = "URL")]
    pub(crate) blob_url: Option<String>,
    /// The S3 service's URL, e.g. http://127.0.0.1:9000 [default: AWS S3]. This and the other
    /// S3 settings matter only with --blob-url.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub(crate) s3_endpoint: Option<String>,
    /// The region to sign S3 requests for.
    #[arg(long, env = "AWS_REGION")]
    pub(crate) s3_region: Option<String>,
    /// The S3 access key's id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub(crate) s3_access_key_id: Option<String>,
    /// The S3 access key's secret. Anyone on the machine can read a flag in the process list:
    /// prefer the environment variable.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub(crate) s3_secret_access_key: Option<String>,
    /// A session token, with temporary S3 credentials (environment only).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide = true, hide_env_values = true)]
    pub(crate) s3_session_token: Option<String>,
}

impl std::fmt::Debug for BlobArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the token are never printed.
        f.debug_struct("BlobArgs")
            .field("blob_url", &self.blob_url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .finish_non_exhaustive()
    }
}

impl BlobArgs {
    /// The ground's S3 settings, or none for the data directory alone.
    pub(crate) fn settings(&self) -> Option<ground::S3Settings> {
        Some(ground::S3Settings {
            url: self.blob_url.clone()?,
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            session_token: self.s3_session_token.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SystemArg {
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    pub(crate) link: SocketAddr,
}

fn parse_system(s: &str) -> Result<SystemArg, String> {
    let err = || {
        format!("{s:?}: expected NAME=LOCAL_UDP,LINK_UDP, e.g. em=127.0.0.1:7701,127.0.0.1:7702")
    };
    let (name, addrs) = s.split_once('=').ok_or_else(err)?;
    let (bind, link) = addrs.split_once(',').ok_or_else(err)?;
    Ok(SystemArg {
        name: name.to_string(),
        bind: bind.parse().map_err(|e| format!("{bind:?}: {e}"))?,
        link: link.parse().map_err(|e| format!("{link:?}: {e}"))?,
    })
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    let (u, p) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected NAME:PASSWORD"))?;
    Ok((u.to_string(), p.to_string()))
}

#[derive(Debug, ClapArgs)]
pub(crate) struct LinkArgs {
    /// The port the ground sends to.
    #[arg(long)]
    pub(crate) ground_side: SocketAddr,
    /// The ground endpoint's address.
    #[arg(long)]
    pub(crate) ground: SocketAddr,
    /// The port the flight agent sends to.
    #[arg(long)]
    pub(crate) flight_side: SocketAddr,
    /// The flight agent's address.
    #[arg(long)]
    pub(crate) flight: SocketAddr,
    /// Uplink rate in bit/s (unlimited if absent).
    #[arg(long)]
    pub(crate) up_bps: Option<u64>,
    /// Downlink rate in bit/s (unlimited if absent).
    #[arg(long)]
    pub(crate) down_bps: Option<u64>,
    /// One-way delay in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) delay_ms: u64,
    /// Extra random delay up to this many milliseconds (reordering); keep it under 50.
    #[arg(long, default_value_t = 0)]
    pub(crate) jitter_ms: u64,
    /// Mean probability of losing a datagram, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) loss: f64,
    /// Lose in bursts (Gilbert–Elliott, same mean loss) instead of independently: stays in the
    /// bad state of this many datagrams on average, losing half of them.
    #[arg(long)]
    pub(crate) burst: Option<f64>,
    /// Bit error rate.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) ber: f64,
    /// Probability of delivering a datagram twice.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duplicate: f64,
    /// Contact windows as START-END offsets in seconds from start, comma-separated (e.g.
    /// 0-420,6000-6420); always in contact if absent.
    #[arg(long, value_parser = parse_windows)]
    pub(crate) windows: Option<Windows>,
    /// Half-duplex with this turnaround in milliseconds.
    #[arg(long)]
    pub(crate) half_duplex_ms: Option<u64>,
    /// The radio's queue each way in datagrams, drop-tail like netem's `limit` (default 1000).
    #[arg(long)]
    pub(crate) queue_packets: Option<usize>,
    /// The radio's queue each way in bytes, drop-tail (default: one second at the faster rate,
    /// at least 16 full datagrams; unbounded if no rate is set).
    #[arg(long)]
    pub(crate) queue_bytes: Option<u64>,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Model seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) time_scale: f64,
    /// Take the contact windows (and rates, unless given) from this system's orbit and stations.
    #[arg(long, requires = "system")]
    pub(crate) systems_file: Option<PathBuf>,
    /// The system in --systems-file.
    #[arg(long)]
    pub(crate) system: Option<String>,
}

/// `--windows`: (start, end) offsets in seconds, in order and disjoint. One value holds them
/// all: a newtype, because clap reads a field of type `Option<Vec<T>>` as a flag repeated with
/// one `T` each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Windows(pub(crate) Vec<(f64, f64)>);

fn parse_windows(s: &str) -> Result<Windows, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("{part:?}: expected START-END in seconds"))?;
        let a: f64 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
        let b: f64 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
        if !(a >= 0.0 && b > a) {
            return Err(format!(
                "{part:?}: a window must start at 0 or later and end after it starts"
            ));
        }
        if out.last().is_some_and(|&(_, e): &(f64, f64)| a < e) {
            return Err(format!(
                "{part:?}: windows must be in order and not overlap"
            ));
        }
        out.push((a, b));
    }
    Ok(Windows(out))
}

#[derive(Debug, ClapArgs)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct FlightArgs {
    #[command(subcommand)]
    pub(crate) command: Option<FlightCommand>,
    /// The system this agent is (e.g. em).
    #[arg(long, default_value = "em")]
    pub(crate) system: String,
    /// Objects, spool and persisted plans.
    #[arg(long, required = true)]
    pub(crate) state_dir: Option<PathBuf>,
    /// Tenant volumes (mounted at /data in pods).
    #[arg(long, required = true)]
    pub(crate) volumes_dir: Option<PathBuf>,
    /// The agent's UDP address.
    #[arg(long, required = true)]
    pub(crate) udp: Option<SocketAddr>,
    /// The link emulator's flight-side port.
    #[arg(long, required = true)]
    pub(crate) link: Option<SocketAddr>,
    /// The satellite's link key (made by `orbitdock keygen`).
    #[arg(long, required = true)]
    pub(crate) key_file: Option<PathBuf>,
    /// The ground's public plan key (`plan.pub` beside the ground's plan key): only plans it
    /// signed are run.
    #[arg(long, required = true)]
    pub(crate) plan_public_key: Option<PathBuf>,
    /// Orbits and ground stations (JSON): if this system is in it, its link is up only in passes.
    #[arg(long)]
    pub(crate) systems_file: Option<PathBuf>,
    /// Disk limits (JSON: tenant_bytes, downlink_file_bytes, build_context_bytes, build_bytes,
    /// archive_bytes, object_store_bytes, reserve_bytes, pod_tmp_bytes, pod_log_bytes; each
    /// optional) and the tenants' quotas (`quotas`: `default` and `tenants` by name, each with
    /// volume_bytes, image_bytes, compute_seconds_per_day, downlink_bytes_per_day).
    #[arg(long)]
    pub(crate) limits: Option<PathBuf>,
    /// Run a simulated mission clock from this UTC instant (2026-12-03T00:00:00Z): triggers and
    /// scheduled_time are judged by it. A restart with the same start and scale goes on from
    /// where it is now.
    #[arg(long, env = "ORBITDOCK_CLOCK_START")]
    pub(crate) clock_start: Option<String>,
    /// How many mission seconds pass in a second of the host's clock (with --clock-start;
    /// up to 1000).
    #[arg(
        long,
        env = "ORBITDOCK_CLOCK_SCALE",
        requires = "clock_start",
        default_value_t = 1.0
    )]
    pub(crate) clock_scale: f64,
    /// Also serve the onboard telemetry API here (e.g. 127.0.0.1:7790), for operators and
    /// tools; pods reach it at http://satellite-telemetry.dphi-tm on their tenant's network.
    #[arg(long)]
    pub(crate) telemetry_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlightCommand {
    /// Build stand-in base images under the catalogue's names (nothing can be pulled here).
    SeedBases,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct LoginArgs {
    /// The ground server, e.g. http://127.0.0.1:7700.
    #[arg(long)]
    pub(crate) server: String,
    #[arg(long)]
    pub(crate) user: String,
    /// The password. On the command line it is visible to every user of the machine (`ps`):
    /// prefer ORBITDOCK_PASSWORD or --password-stdin.
    #[arg(long, env = "ORBITDOCK_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password")]
    pub(crate) password_stdin: bool,
    /// The context's name [default: the server's host:port]. It becomes the current context.
    #[arg(long = "name")]
    pub(crate) name: Option<String>,
    /// Also print the session's token on standard output (for ORBITDOCK_TOKEN in CI).
    #[arg(long)]
    pub(crate) print_token: bool,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct OpArgs {
    #[command(subcommand)]
    pub(crate) command: OpCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OpCommand {
    /// Create or update an operation from its YAML.
    #[command(after_help = "Example:\n  orbitdock op apply hello.yaml")]
    Apply { file: PathBuf },
    /// Check an operation's YAML without saving it.
    #[command(after_help = "Example:\n  orbitdock op validate hello.yaml -o json")]
    Validate { file: PathBuf },
    /// Show an operation: NS/OP.
    #[command(after_help = "Example:\n  orbitdock op show demo/hello")]
    Show { operation: String },
    /// Show what changed between two revisions of an operation (a unified diff).
    #[command(after_help = "Example:\n  orbitdock op diff demo/hello 1 2")]
    Diff {
        /// NS/OP
        operation: String,
        /// The older revision.
        from: u64,
        /// The newer revision [default: the latest].
        to: Option<u64>,
    },
    /// List your operations (of one namespace with -n).
    #[command(after_help = "Example:\n  orbitdock op list -n demo -o json")]
    List {
        #[arg(long, short)]
        namespace: Option<String>,
    },
}

#[derive(Debug, ClapArgs)]
pub(crate) struct ExecArgs {
    #[command(subcommand)]
    pub(crate) command: ExecCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExecCommand {
    /// Execute an operation: NS/OP. Exit status 0 only if it succeeded (with --wait).
    #[command(
        after_help = "Examples:\n  orbitdock exec start demo/hello --system em --wait\n  orbitdock exec start demo/hello --system fm -o json"
    )]
    Start {
        operation: String,
        /// The system to run on [default: the operation's, else em].
        #[arg(long)]
        system: Option<String>,
        /// Follow the execution until it ends.
        #[arg(long)]
        wait: bool,
        /// Start even if preflight finds errors (to see the onboard failure for yourself).
        #[arg(long)]
        force: bool,
    },
    /// Show an execution.
    #[command(after_help = "Example:\n  orbitdock exec show 3f2a9c1e -o json")]
    Show {
        id: String,
        /// Print the raw JSON (the same as -o json).
        #[arg(long)]
        json: bool,
    },
    /// List your executions, newest first (of one namespace with -n); an operator's list holds
    /// every tenant's.
    #[command(
        after_help = "Examples:\n  orbitdock exec list -n demo -o json\n  orbitdock exec list --state AWAITING_APPROVAL"
    )]
    List {
        #[arg(long, short)]
        namespace: Option<String>,
        /// Only those in this state (CREATED, AWAITING_APPROVAL, SCHEDULED, RUNNING, CANCELLING,
        /// COMPLETED, FAILED, REJECTED, CANCELLED).
        #[arg(long)]
        state: Option<String>,
        /// Only this tenant's (operators).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Cancel an execution that has not ended. One never sent (awaiting approval) ends CANCELLED
    /// at once; one sent to its system is CANCELLING until the system confirms that it stopped
    /// it (then CANCELLED; `exec wait` follows it). One that has ended is refused (exit status 1).
    #[command(
        after_help = "Examples:\n  orbitdock exec cancel 3f2a9c1e\n  orbitdock exec cancel 3f2a9c1e -o json && orbitdock exec wait 3f2a9c1e"
    )]
    Cancel { id: String },
    /// Wait until an execution ends. Exit status 0 only if it succeeded.
    #[command(after_help = "Example:\n  orbitdock exec wait 3f2a9c1e")]
    Wait { id: String },
    /// Print the log tails and messages of an execution's tasks (of one task if named).
    #[command(
        after_help = "Examples:\n  orbitdock exec logs 3f2a9c1e\n  orbitdock exec logs 3f2a9c1e run --follow"
    )]
    Logs {
        id: String,
        /// The task's id.
        task: Option<String>,
        /// Keep printing until the execution ends.
        #[arg(long, short)]
        follow: bool,
    },
}
