//! Command-line syntax of `orbitdock files`: a namespace's files on the ground, and (`--onboard`)
//! a volume onboard.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

#[derive(Debug, ClapArgs)]
pub(crate) struct FilesArgs {
    #[command(subcommand)]
    pub(crate) command: FilesCommand,
}

/// Where `files rm|mv --onboard` works: a volume of a system, through the operation
/// `onboard-files` of one of the caller's namespaces.
#[derive(Debug, ClapArgs)]
pub(crate) struct Onboard {
    /// Work in a volume onboard (an operation run on the system and waited for), not in a
    /// namespace; the paths are the volume's (/path).
    #[arg(long, requires_all = ["system", "volume"])]
    pub(crate) onboard: bool,
    /// The system (with --onboard).
    #[arg(long, requires = "onboard")]
    pub(crate) system: Option<String>,
    /// The volume (with --onboard).
    #[arg(long, requires = "onboard")]
    pub(crate) volume: Option<String>,
    /// The namespace that keeps the operation `onboard-files` (with --onboard) [default: your
    /// only namespace].
    #[arg(long, short, requires = "onboard")]
    pub(crate) namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FilesCommand {
    /// Upload a folder into a namespace, keeping its structure.
    #[command(after_help = "Example:\n  orbitdock files push ./app -n demo --to /app")]
    Push {
        /// The local folder.
        local_dir: PathBuf,
        #[arg(long, short)]
        namespace: String,
        /// Namespace folder to place it under.
        #[arg(long, default_value = "/")]
        to: String,
    },
    /// Download a file or a folder: NS:/path LOCAL.
    #[command(after_help = "Example:\n  orbitdock files pull demo:/out ./results")]
    Pull {
        /// NS:/path
        remote: String,
        /// Local file or folder.
        local: PathBuf,
    },
    /// List a namespace's files, or (--onboard) the ground's mirror of a volume onboard.
    #[command(
        after_help = "Examples:\n  orbitdock files ls demo -o json\n  orbitdock files ls --onboard --system fm --volume data"
    )]
    Ls {
        /// The namespace (not with --onboard).
        #[arg(required_unless_present = "onboard")]
        namespace: Option<String>,
        /// List a volume onboard as the ground last heard it (see its listing's times).
        #[arg(long, requires_all = ["system", "volume"], conflicts_with = "namespace")]
        onboard: bool,
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        volume: Option<String>,
    },
    /// Delete a file, or a folder with everything under it (every version): NS:/path; or
    /// (--onboard) files or folders of a volume onboard, by a `files.delete` task run there
    /// (nothing is deleted when one path is missing).
    #[command(after_help = "Examples:\n  orbitdock files rm demo:/old\n  \
                   orbitdock files rm --onboard --system fm --volume data /out/old.bin /tmp -n demo")]
    Rm {
        /// NS:/path; with --onboard, a volume path (/path).
        #[arg(value_name = "PATH")]
        remote: String,
        /// More volume paths, deleted together (with --onboard).
        #[arg(value_name = "MORE", requires = "onboard")]
        more: Vec<String>,
        #[command(flatten)]
        onboard: Onboard,
    },
    /// Move a file or a folder (every version) to a free path: NS:/from /to; or (--onboard) one
    /// in a volume onboard, by a `files.move` task run there (never replaces anything).
    #[command(
        after_help = "Examples:\n  orbitdock files mv demo:/app/v1 /archive/v1\n  \
                   orbitdock files mv --onboard --system fm --volume data /out/a.txt /archive/a.txt"
    )]
    Mv {
        /// NS:/from; with --onboard, a volume path (/from).
        remote: String,
        /// The new path in the same namespace, or volume.
        to: String,
        #[command(flatten)]
        onboard: Onboard,
    },
}

impl FilesCommand {
    /// What clap cannot say: an `NS:/path` given with `--onboard`. The subcommand's name and
    /// the message, for a usage error.
    pub(crate) fn usage_error(&self) -> Option<(&'static str, String)> {
        let (name, paths, onboard): (_, Vec<&String>, _) = match self {
            FilesCommand::Rm {
                remote,
                more,
                onboard,
            } => ("rm", std::iter::once(remote).chain(more).collect(), onboard),
            FilesCommand::Mv {
                remote,
                to,
                onboard,
            } => ("mv", vec![remote, to], onboard),
            _ => return None,
        };
        if !onboard.onboard {
            return None;
        }
        if let Some(remote) = paths.iter().find(|p| is_namespace_path(p)) {
            return Some((
                name,
                format!(
                    "{remote:?} names a namespace's file (NS:/path); with --onboard give the volume's own path (/path) and the namespace with -n"
                ),
            ));
        }
        // As on the ground, a whole volume is not deleted or moved this way (`files.delete`
        // of `/` in an operation does it, for one who means it).
        let root = paths.iter().find(|p| {
            wire::names::VolumePath::parse(p)
                .map(|v| v.is_root())
                .unwrap_or(false)
        })?;
        Some((
            name,
            format!(
                "{root:?} is the volume's root: files {name} --onboard does not take a whole volume (a files.delete task of '/' in an operation does)"
            ),
        ))
    }
}

/// Whether `s` has the form `NS:/path`.
fn is_namespace_path(s: &str) -> bool {
    s.split_once(':').is_some_and(|(ns, path)| {
        !ns.is_empty()
            && ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && path.starts_with('/')
    })
}
