//! Stand-ins for the onboard base images, built from this host's own files.
//!
//! Nothing can be pulled here either, so [`seed_bases`] makes images under the catalogue's names
//! from what the host has: a distroless-like root (`/etc/passwd` with `nonroot`, `/tmp`), the
//! host's glibc runtime for the `cc` image, and a static busybox. Each is built `FROM scratch`
//! from an in-memory context and labelled `org.orbitdock.stand-in=true`, so nobody mistakes it
//! for the real thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use flight::runtime::{
    Body, BuildRequest, DockerRuntime, LogBook, Runtime, StepImages, host_platform, short_id,
};
use wire::BaseImage;

use crate::error::{Error, ErrorKind};

/// How long one stand-in build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a helper command (`apt-get download`, `dpkg-deb`, `busybox --list`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
const STATIC: &str = "gcr.io/distroless/static-debian12:latest";
const CC: &str = "gcr.io/distroless/cc-debian12:latest";
const BUSYBOX: &str = "busybox:latest";
const NO_BUSYBOX: &str = "no static busybox on this host: install Debian's busybox-static (apt-get install busybox-static)";

/// One entry of a stand-in's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// A root filesystem: path (relative, no leading `/`) → entry.
type Rootfs = BTreeMap<String, Node>;

/// Builds the stand-in base images of [`wire::catalogue()`] (for this host's platform) that are
/// missing, and returns the catalogue with the image ids. `progress` gets one line per step.
/// Concurrent calls in one process wait for each other.
pub async fn seed_bases(progress: &mut (dyn FnMut(&str) + Send)) -> Result<Vec<BaseImage>, Error> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    let _one_at_a_time = LOCK
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await;
    let runtime = DockerRuntime::connect().await?;
    let mut catalogue = wire::catalogue(&host_platform());
    for entry in &mut catalogue {
        let name = entry.name.as_str();
        match runtime.inspect_image(name).await {
            Ok(Some(info)) => {
                progress(&format!("{name}: present ({})", short_id(&info.id)));
                entry.digest = info.id.parse().ok();
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(Error::docker(&format!("inspect {name}"), e.message)),
        }
        progress(&format!(
            "{name}: building a stand-in from this host's files"
        ));
        let rootfs = match name {
            STATIC => base_rootfs(),
            CC => {
                let mut fs = base_rootfs();
                add_glibc(&mut fs, progress)?;
                fs
            }
            BUSYBOX => {
                let mut fs = base_rootfs();
                add_busybox(&mut fs, progress).await?;
                fs
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Seed,
                    format!("no recipe for the catalogue image {other}"),
                ));
            }
        };
        build(&runtime, name, &rootfs).await?;
        let id = runtime
            .inspect_image(name)
            .await
            .ok()
            .flatten()
            .map(|i| i.id)
            .unwrap_or_default();
        progress(&format!("{name}: built ({})", short_id(&id)));
        entry.digest = id.parse().ok();
    }
    Ok(catalogue)
}

/// What every distroless stand-in has: users root, nobody and nonroot, and `/tmp`.
fn base_rootfs() -> Rootfs {
    let file = |text: &str| Node::File {
        mode: 0o644,
        data: text.as_bytes().to_vec(),
    };
    BTreeMap::from([
        ("etc".into(), Node::Dir { mode: 0o755 }),
        (
            "etc/passwd".into(),
            file(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                 nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
            ),
        ),
        (
            "etc/group".into(),
            file("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"),
        ),
        (
            "etc/nsswitch.conf".into(),
            file("passwd: files\ngroup: files\nhosts: files dns\n"),
        ),
        ("root".into(), Node::Dir { mode: 0o700 }),
        ("tmp".into(), Node::Dir { mode: 0o1777 }),
    ])
}

/// The loader and libraries of the host's glibc, at their usual Debian paths.
fn add_glibc(fs: &mut Rootfs, progress: &mut (dyn FnMut(&str) + Send)) -> Result<(), Error> {
    let (triple, loader, loader_link) = match std::env::consts::ARCH {
        "x86_64" => (
            "x86_64-linux-gnu",
            "ld-linux-x86-64.so.2",
            "lib64/ld-linux-x86-64.so.2",
        ),
        "aarch64" => (
            "aarch64-linux-gnu",
            "ld-linux-aarch64.so.1",
            "lib/ld-linux-aarch64.so.1",
        ),
        other => {
            return Err(Error::new(
                ErrorKind::Seed,
                format!("no glibc layout known for {other}"),
            ));
        }
    };
    let lib = format!("lib/{triple}");
    fs.insert("lib".into(), Node::Dir { mode: 0o755 });
    fs.insert(lib.clone(), Node::Dir { mode: 0o755 });
    let required = [loader, "libc.so.6", "libm.so.6"];
    let expected = ["libgcc_s.so.1", "libstdc++.so.6"];
    let optional = [
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libresolv.so.2",
    ];
    for name in required.iter().chain(&expected).chain(&optional) {
        let candidates = [
            format!("/lib/{triple}/{name}"),
            format!("/usr/lib/{triple}/{name}"),
            format!("/{loader_link}"),
        ];
        let found = candidates
            .iter()
            .filter(|c| c.ends_with(name))
            .find_map(|c| std::fs::read(c).ok().map(|data| (c.clone(), data)));
        match found {
            Some((_, data)) => {
                fs.insert(format!("{lib}/{name}"), Node::File { mode: 0o755, data });
            }
            None if required.contains(name) => {
                return Err(Error::new(
                    ErrorKind::Seed,
                    format!("{CC}: the host has no {name} in /lib/{triple} or /usr/lib/{triple}"),
                ));
            }
            None if expected.contains(name) => {
                progress(&format!(
                    "{CC}: warning: the host has no {name}; C++ binaries will not run on this stand-in"
                ));
            }
            None => {}
        }
    }
    // The program interpreter path that binaries name.
    if let Some((dir, _)) = loader_link.rsplit_once('/') {
        fs.entry(dir.to_string())
            .or_insert(Node::Dir { mode: 0o755 });
    }
    fs.insert(
        loader_link.to_string(),
        Node::Symlink {
            target: format!("/{lib}/{loader}"),
        },
    );
    Ok(())
}

/// A static busybox at `/bin/busybox` and a symlink for each of its applets.
async fn add_busybox(
    fs: &mut Rootfs,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), Error> {
    let machine = host_elf_machine();
    let mut tried = Vec::new();
    for candidate in ["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"] {
        let Ok(data) = std::fs::read(candidate) else {
            continue;
        };
        match check_static_elf(&data, machine) {
            Ok(()) => return install_busybox(fs, Path::new(candidate), data, progress).await,
            Err(why) => tried.push(format!("{candidate}: {why}")),
        }
    }
    progress(&format!(
        "{BUSYBOX}: no static busybox in /bin or /usr/bin{}; fetching Debian's busybox-static with apt-get download",
        if tried.is_empty() {
            String::new()
        } else {
            format!(" ({})", tried.join("; "))
        }
    ));
    let dir =
        std::env::temp_dir().join(format!("orbitdock-busybox-{:016x}", rand::random::<u64>()));
    let result = fetch_busybox(&dir).await;
    let outcome = match result {
        Ok(path) => match std::fs::read(&path) {
            Ok(data) => match check_static_elf(&data, machine) {
                Ok(()) => install_busybox(fs, &path, data, progress).await,
                Err(why) => Err(Error::new(
                    ErrorKind::Seed,
                    format!("{NO_BUSYBOX} (the fetched one: {why})"),
                )),
            },
            Err(e) => Err(Error::new(
                ErrorKind::Seed,
                format!("{NO_BUSYBOX} ({}: {e})", path.display()),
            )),
        },
        Err(why) => Err(Error::new(
            ErrorKind::Seed,
            format!("{NO_BUSYBOX} (apt-get download failed: {why})"),
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// `apt-get download busybox-static` and `dpkg-deb -x` into `dir`; the binary's path.
async fn fetch_busybox(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    command(dir, "apt-get", &["download", "busybox-static"]).await?;
    let deb = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("no .deb was downloaded")?;
    let root = dir.join("root");
    command(
        dir,
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), &root.to_string_lossy()],
    )
    .await?;
    ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| "the package holds no bin/busybox".to_string())
}

/// Runs a command in `dir` within [`COMMAND_TIMEOUT`]; its stdout, or why it failed.
async fn command(dir: &Path, program: &str, args: &[&str]) -> Result<String, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("{program}: {e}")),
        Err(_) => {
            return Err(format!(
                "{program} did not finish within {COMMAND_TIMEOUT:?}"
            ));
        }
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{program} {}: {}",
            out.status,
            stderr.lines().last().unwrap_or("").trim()
        ))
    }
}

async fn install_busybox(
    fs: &mut Rootfs,
    path: &Path,
    data: Vec<u8>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let program = path.to_string_lossy();
    let list = match command(dir, &program, &["--list-full"]).await {
        Ok(list) => list,
        // Older busybox: applet names only; put them in /bin.
        Err(_) => command(dir, &program, &["--list"])
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Seed,
                    format!("{BUSYBOX}: cannot list the applets of {program}: {e}"),
                )
            })?
            .lines()
            .map(|l| format!("bin/{l}\n"))
            .collect(),
    };
    fs.insert("bin".into(), Node::Dir { mode: 0o755 });
    fs.insert("bin/busybox".into(), Node::File { mode: 0o755, data });
    let mut applets = 0;
    for applet in list.lines().map(str::trim) {
        let rel = applet.trim_start_matches('/');
        if rel.is_empty() || rel.contains("..") || rel == "bin/busybox" || fs.contains_key(rel) {
            continue;
        }
        let mut dir = String::new();
        for part in rel.split('/').take(rel.split('/').count() - 1) {
            dir = if dir.is_empty() {
                part.to_string()
            } else {
                format!("{dir}/{part}")
            };
            fs.entry(dir.clone()).or_insert(Node::Dir { mode: 0o755 });
        }
        fs.insert(
            rel.to_string(),
            Node::Symlink {
                target: "/bin/busybox".into(),
            },
        );
        applets += 1;
    }
    progress(&format!(
        "{BUSYBOX}: static busybox from {} with {applets} applets",
        path.display()
    ));
    Ok(())
}

/// Builds `name` from a rootfs: `FROM scratch`, `COPY rootfs/ /`, and `/home/nonroot` owned by
/// 65532.
async fn build(runtime: &DockerRuntime, name: &str, fs: &Rootfs) -> Result<(), Error> {
    let dockerfile =
        "FROM scratch\nCOPY rootfs/ /\nCOPY --chown=65532:65532 nonroot/ /home/nonroot/\n";
    let context = context_tar(dockerfile, fs)
        .map_err(|e| Error::new(ErrorKind::Seed, format!("{name}: {e}")))?;
    let request = BuildRequest {
        tag: name.to_string(),
        dockerfile: "Dockerfile".into(),
        labels: BTreeMap::from([
            ("org.orbitdock.stand-in".to_string(), "true".to_string()),
            ("org.orbitdock.catalogue".to_string(), name.to_string()),
        ]),
        context: Body::Bytes(context),
        cache_from: Vec::new(),
    };
    let log = LogBook::new(0);
    match tokio::time::timeout(
        BUILD_TIMEOUT,
        runtime.build_image(&request, &log, &StepImages::default()),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::Seed,
            format!(
                "{name}: build failed: {} (log: {})",
                e.message,
                log.tail().join(" | ")
            ),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Seed,
            format!("{name}: build did not finish within {BUILD_TIMEOUT:?}"),
        )),
    }
}

/// The build context: the Dockerfile, `rootfs/` and an empty `nonroot/`. Owned by root.
fn context_tar(dockerfile: &str, fs: &Rootfs) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let mut h = header(tar::EntryType::Regular, 0o644, dockerfile.len() as u64);
    tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
    for (dir, mode) in [("rootfs/", 0o755), ("nonroot/", 0o755)] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    for (path, node) in fs {
        let name = format!("rootfs/{path}");
        match node {
            Node::Dir { mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                tar.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            }
            Node::File { mode, data } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                tar.append_data(&mut h, &name, &data[..])?;
            }
            Node::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, &name, target)?;
            }
        }
    }
    tar.into_inner()
}

/// The ELF `e_machine` of this host.
fn host_elf_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        _ => 0,
    }
}

/// Checks that `bytes` is a 64-bit little-endian ELF for `machine` with no program interpreter
/// (`PT_INTERP`): a statically linked binary. The reason when not.
fn check_static_elf(bytes: &[u8], machine: u16) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o.checked_add(4)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    if u16_at(18) != Some(machine) {
        return Err(format!(
            "built for another machine (e_machine {:?})",
            u16_at(18)
        ));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return Err("truncated ELF header".into());
    };
    for i in 0..phnum as u64 {
        let at = phoff
            .checked_add(i * phentsize as u64)
            .and_then(|o| usize::try_from(o).ok());
        match at.and_then(u32_at) {
            Some(PT_INTERP) => {
                return Err("dynamically linked (it has a program interpreter)".into());
            }
            Some(_) => {}
            None => return Err("truncated program headers".into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with program headers of the given types.
    fn elf(machine: u16, types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn tells_static_from_dynamic_binaries() {
        assert_eq!(check_static_elf(&elf(62, &[1, 1, 4]), 62), Ok(()));
        assert!(
            check_static_elf(&elf(62, &[6, 3, 1]), 62)
                .unwrap_err()
                .contains("dynamically linked")
        );
        assert!(
            check_static_elf(&elf(183, &[1]), 62)
                .unwrap_err()
                .contains("another machine")
        );
        assert!(check_static_elf(b"#!/bin/sh\n", 62).is_err());
        let mut truncated = elf(62, &[1, 1]);
        truncated.truncate(100);
        assert!(check_static_elf(&truncated, 62).is_err());
        let mut huge = elf(62, &[]);
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        huge[56..58].copy_from_slice(&2u16.to_le_bytes());
        assert!(check_static_elf(&huge, 62).is_err());
        // The host's own dynamically linked shell, when there is one.
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert!(check_static_elf(&sh, host_elf_machine()).is_err());
        }
    }

    #[test]
    fn context_holds_the_rootfs() {
        let mut fs = base_rootfs();
        fs.insert("bin".into(), Node::Dir { mode: 0o755 });
        fs.insert(
            "bin/sh".into(),
            Node::Symlink {
                target: "/bin/busybox".into(),
            },
        );
        let tar = context_tar("FROM scratch\n", &fs).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert!(entries.contains(&("rootfs/tmp/".into(), 0o1777)));
        assert!(entries.contains(&("rootfs/bin/sh".into(), 0o777)));
        assert!(entries.contains(&("nonroot/".into(), 0o755)));
        assert_eq!(entries[0].0, "Dockerfile");
    }
}
