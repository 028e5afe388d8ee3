//! Validated names and paths: the one definition of what ground, flight and preflight accept.
//!
//! Each type can only be built through validation ([`TenantName::new`], [`VolumePath::parse`],
//! …), so a function that takes one needs no re-check, and the ground refuses at creation
//! exactly what the flight agent would refuse onboard: the two sides call the same code.
//!
//! The rules follow what each name becomes onboard. A tenant and an image name are path
//! components of the Docker reference `tenants/<tenant>/<name>:<tag>` (lower-case alphanumerics
//! separated by `.`, `_`, `__` or runs of `-`, ending with an alphanumeric), so no name can climb
//! into another tenant's images. A pod name is a DNS label (Clustergate-2 gives a pod the host
//! name `<tenant>-<pod_name>`). A volume name is a folder name. Paths have no `..`, no control
//! characters, and bounded length.
//!
//! Plans on the wire keep plain strings (a wire type must decode even when a name is bad, so the
//! agent can report which task failed); the agent parses them with these types before use.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix of every tenant image onboard: `tenants/<tenant>/<name>:<tag>`.
pub const TENANT_IMAGE_PREFIX: &str = "tenants";
/// The longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest path component accepted, in bytes (the filesystem's `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A name or path that breaks its rule. The message says what, the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    what: &'static str,
    value: String,
    reason: String,
}

impl NameError {
    /// An error about `value`, a `what` (`volume path`, …), refused because of `reason`.
    pub fn new(what: &'static str, value: &str, reason: impl Into<String>) -> NameError {
        NameError {
            what,
            value: shorten(value),
            reason: reason.into(),
        }
    }

    /// What kind of name it is (`tenant name`, `volume path`, …).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Why it is refused, without the value (`'..' is not allowed`, the rule, …).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a valid {} ({})",
            self.value, self.what, self.reason
        )
    }
}

impl std::error::Error for NameError {}

macro_rules! name_type {
    ($(#[$doc:meta])* $Name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $Name(String);

        impl fmt::Debug for $Name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl $Name {
            /// Validates `s`.
            pub fn new(s: &str) -> Result<$Name, NameError> {
                match $check(s) {
                    Ok(()) => Ok($Name(s.to_string())),
                    Err(reason) => Err(NameError::new($what, s, reason)),
                }
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $Name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $Name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $Name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $Name {
            type Error = NameError;
            fn try_from(s: String) -> Result<$Name, NameError> {
                $Name::new(&s)
            }
        }

        impl std::str::FromStr for $Name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<$Name, NameError> {
                $Name::new(s)
            }
        }

        impl From<$Name> for String {
            fn from(n: $Name) -> String {
                n.0
            }
        }

        impl PartialEq<str> for $Name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $Name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// A tenant (a ground user): `[a-z0-9][a-z0-9_-]{0,58}`, and a valid Docker path component,
    /// as it names the tenant's images (`tenants/<tenant>/…`), volumes and uid onboard. At most
    /// 59 characters, so that the default volume `<tenant>-pvc` is a volume name.
    TenantName,
    "tenant name",
    check_tenant
);
name_type!(
    /// A namespace on the ground (a tenant's folder of uploaded files): `[A-Za-z0-9_-]{1,64}`.
    NamespaceName,
    "namespace name",
    check_namespace
);
name_type!(
    /// A tenant's volume onboard (a folder, mounted at `/data`): `[a-z0-9][a-z0-9._-]{0,62}`.
    VolumeName,
    "volume name",
    check_volume
);
name_type!(
    /// A pod: a DNS label, `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters. It names a
    /// container, a log file and (as `<tenant>-<pod>`) a host.
    PodName,
    "pod name",
    check_pod
);
name_type!(
    /// A tenant image's name, without the tenant prefix: `[a-z0-9][a-z0-9._-]*`, at most 128,
    /// no `/`, and a valid Docker path component.
    ImageName,
    "image name",
    check_image_name
);
name_type!(
    /// An image tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    ImageTag,
    "image tag",
    check_tag
);
name_type!(
    /// A system (the Engineering Model `em`, or a flight satellite): `[a-z0-9][a-z0-9._-]{0,62}`.
    SystemName,
    "system name",
    check_volume
);
name_type!(
    /// An operation's id: `[a-z0-9._-]{1,64}`.
    OperationName,
    "operation id",
    check_operation
);
name_type!(
    /// A task's id within its operation: `[A-Za-z0-9._-]{1,64}`.
    TaskId,
    "task id",
    check_task
);
name_type!(
    /// An execution's id (it names a file onboard): `[A-Za-z0-9_-]{1,128}`.
    ExecutionId,
    "execution id",
    check_execution
);

impl TenantName {
    /// The volume a task uses when it names none: `<tenant>-pvc`, as on Clustergate-2.
    pub fn default_volume(&self) -> VolumeName {
        VolumeName(format!("{}-pvc", self.0))
    }
}

/// A tenant image: name and tag, valid as `tenants/<tenant>/<name>:<tag>` onboard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantImage {
    /// The name, without any prefix.
    pub name: ImageName,
    /// The tag.
    pub tag: ImageTag,
}

impl TenantImage {
    /// Validates a name and a tag.
    pub fn new(name: &str, tag: &str) -> Result<TenantImage, NameError> {
        Ok(TenantImage {
            name: ImageName::new(name)?,
            tag: ImageTag::new(tag)?,
        })
    }

    /// Parses `name[:tag]` (tag `latest` when none is written).
    pub fn parse(s: &str) -> Result<TenantImage, NameError> {
        let (name, tag) = split_tag(s);
        TenantImage::new(name, tag)
    }

    /// The reference onboard: `tenants/<tenant>/<name>:<tag>`.
    pub fn onboard(&self, tenant: &TenantName) -> String {
        format!("{TENANT_IMAGE_PREFIX}/{tenant}/{}:{}", self.name, self.tag)
    }
}

impl fmt::Display for TenantImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// Parses an image a task runs or builds from, as a tenant writes it: `name[:tag]` where the
/// name is a Docker reference (lower-case path components separated by `/`, the first one
/// possibly a registry host with a port), so that it can name a catalogue image
/// (`gcr.io/distroless/static-debian12`) or one of the tenant's own (`hello:v1`). Digests are not
/// accepted. Returns `(name, tag)`, the tag `latest` when none is written.
pub fn parse_image_reference(s: &str) -> Result<(String, String), NameError> {
    let s = s.trim();
    let err = |reason: &str| NameError::new("image", s, reason);
    if s.contains('@') {
        return Err(err("digests are not supported; use name:tag"));
    }
    let (name, tag) = split_tag(s);
    check_tag(tag).map_err(|r| NameError::new("image tag", tag, r))?;
    if name.is_empty() || name.len() > 255 {
        return Err(err("the name must have 1 to 255 characters"));
    }
    let mut parts = name.split('/').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        let host = first && parts.peek().is_some() && looks_like_host(part);
        first = false;
        if host {
            continue;
        }
        if part.is_empty() {
            return Err(err("empty path component"));
        }
        if let Err(r) = docker_component(part) {
            return Err(err(&format!(
                "'{}': {r}; names are lower-case letters, digits, '.', '_' and '-', separated by '/'",
                shorten(part)
            )));
        }
    }
    Ok((name.to_string(), tag.to_string()))
}

/// A path inside a volume, relative to its root: `/`-separated components, none of them `.`,
/// `..` or empty; the empty path is the root. Written paths may start with `/` (they are taken
/// relative to the volume root all the same).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumePath(String);

impl VolumePath {
    /// The root of the volume.
    pub fn root() -> VolumePath {
        VolumePath(String::new())
    }

    /// Parses a written path: empty and `.` components are dropped; `..`, control characters
    /// (NUL included), a component over 255 bytes and a path over 4096 bytes are refused.
    pub fn parse(s: &str) -> Result<VolumePath, NameError> {
        let parts = components(s).map_err(|r| NameError::new("volume path", s, r))?;
        Ok(VolumePath(parts.join("/")))
    }

    /// Like [`VolumePath::parse`], but the root is refused (a task wants a file here).
    pub fn parse_file(s: &str) -> Result<VolumePath, NameError> {
        let p = VolumePath::parse(s)?;
        if p.is_root() {
            return Err(NameError::new(
                "volume path",
                s,
                "must name a file, not the volume root",
            ));
        }
        Ok(p)
    }

    /// The path relative to the root, `a/b` (`""` for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the volume root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as shown to a tenant: `/a/b`, or `/` for the root.
    pub fn display(&self) -> String {
        format!("/{}", self.0)
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// This path with `rel` below it; `None` when the result would be too long.
    pub fn join(&self, rel: &VolumePath) -> Option<VolumePath> {
        let joined = match (self.is_root(), rel.is_root()) {
            (true, _) => rel.0.clone(),
            (_, true) => self.0.clone(),
            _ => format!("{}/{}", self.0, rel.0),
        };
        (joined.len() <= MAX_PATH_BYTES).then_some(VolumePath(joined))
    }
}

/// Shows the path as [`VolumePath::as_str`] does (`a/b`); [`VolumePath::display`] gives the
/// tenant's form.
impl fmt::Display for VolumePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for VolumePath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VolumePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for VolumePath {
    type Err = NameError;
    fn from_str(s: &str) -> Result<VolumePath, NameError> {
        VolumePath::parse(s)
    }
}

impl TryFrom<String> for VolumePath {
    type Error = NameError;
    fn try_from(s: String) -> Result<VolumePath, NameError> {
        VolumePath::parse(&s)
    }
}

impl From<VolumePath> for String {
    fn from(p: VolumePath) -> String {
        p.0
    }
}

/// Which path of a `files.move` a [`MoveError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveField {
    /// What moves.
    Source,
    /// Its new path.
    Destination,
}

impl MoveField {
    /// The task's field: `source` or `destination`.
    pub fn key(self) -> &'static str {
        match self {
            MoveField::Source => "source",
            MoveField::Destination => "destination",
        }
    }
}

/// Why the paths of a `files.move` are refused ([`FileMove::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveError {
    field: MoveField,
    detail: String,
}

impl MoveError {
    /// The field the refusal is about (the destination when it is about both).
    pub fn field(&self) -> MoveField {
        self.field
    }

    /// What is wrong, following the field's name: `has a bad path '/': …`, `'/a/b' lies under
    /// the source '/a': …`.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for MoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "files.move: {} {}", self.field.key(), self.detail)
    }
}

impl std::error::Error for MoveError {}

/// The paths of a `files.move`, judged: the one rule of the ground's validation, its preflight
/// and the flight agent. Each is a literal path (no wildcards) below the volume root, not the
/// root; the destination is the new path of the source (not a folder to move it into), neither
/// the source itself nor below it (a folder cannot move into itself). Nothing is ever replaced:
/// a move whose destination exists is refused ([`FileMove::blocked_by`] tells which entries
/// stand in the way; onboard the rename itself refuses, `RENAME_NOREPLACE`). Nothing leaves the
/// volume: the paths have no `..`, and onboard no symlink is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMove {
    source: VolumePath,
    destination: VolumePath,
}

impl FileMove {
    /// Judges the paths as written.
    pub fn new(source: &str, destination: &str) -> Result<FileMove, MoveError> {
        let source = FileMove::path(MoveField::Source, source)?;
        let destination = FileMove::path(MoveField::Destination, destination)?;
        FileMove::of(source, destination)
    }

    /// The rule for one of the two paths alone, as written.
    pub fn path(field: MoveField, s: &str) -> Result<VolumePath, MoveError> {
        let bad = |reason: &str| MoveError {
            field,
            detail: format!("has a bad path '{s}': {reason}"),
        };
        let p = VolumePath::parse(s).map_err(|e| bad(e.reason()))?;
        if s.contains(['*', '?', '[']) {
            return Err(bad("must be a literal path: files.move takes no wildcards"));
        }
        if p.is_root() {
            return Err(bad("must name a file or a folder, not the volume root"));
        }
        Ok(p)
    }

    /// Judges two parsed paths together (and each alone).
    pub fn of(source: VolumePath, destination: VolumePath) -> Result<FileMove, MoveError> {
        for (field, p) in [
            (MoveField::Source, &source),
            (MoveField::Destination, &destination),
        ] {
            if p.is_root() {
                return Err(MoveError {
                    field,
                    detail: format!(
                        "has a bad path '{}': must name a file or a folder, not the volume root",
                        p.display()
                    ),
                });
            }
        }
        if destination == source {
            return Err(MoveError {
                field: MoveField::Destination,
                detail: "is the source itself: nothing to move".into(),
            });
        }
        if below(&destination, &source) {
            return Err(MoveError {
                field: MoveField::Destination,
                detail: format!(
                    "'{}' lies under the source '{}': a folder cannot be moved into itself",
                    destination.display(),
                    source.display()
                ),
            });
        }
        Ok(FileMove {
            source,
            destination,
        })
    }

    /// What moves.
    pub fn source(&self) -> &VolumePath {
        &self.source
    }

    /// Its new path.
    pub fn destination(&self) -> &VolumePath {
        &self.destination
    }

    /// Where the entry at `path` (`a/b`, relative to the volume root) lies once moved: below the
    /// destination when it is the source or below it; `None` when the move leaves it.
    pub fn moved(&self, path: &str) -> Option<String> {
        let rest = path.strip_prefix(self.source.as_str())?;
        (rest.is_empty() || rest.starts_with('/'))
            .then(|| format!("{}{rest}", self.destination.as_str()))
    }

    /// Whether an entry at `path` (`a/b`) stands where the move would put the source: the
    /// destination itself, or something below it (then the destination exists as a folder).
    /// The move is then refused.
    pub fn blocked_by(&self, path: &str) -> bool {
        path.strip_prefix(self.destination.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Whether `path` lies strictly below `folder`.
fn below(path: &VolumePath, folder: &VolumePath) -> bool {
    path.components().count() > folder.components().count()
        && path
            .components()
            .zip(folder.components())
            .all(|(a, b)| a == b)
}

/// A path inside a namespace on the ground: absolute, `/a/b` (`/` is the root), with the
/// components rules of [`VolumePath`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamespacePath(String);

impl NamespacePath {
    /// The namespace's root, `/`.
    pub fn root() -> NamespacePath {
        NamespacePath("/".to_string())
    }

    /// Parses a written path (with or without a leading `/`), as [`VolumePath::parse`] does.
    pub fn parse(s: &str) -> Result<NamespacePath, NameError> {
        let parts = components(s).map_err(|r| NameError::new("namespace path", s, r))?;
        let p = format!("/{}", parts.join("/"));
        if p.len() > MAX_PATH_BYTES {
            return Err(NameError::new(
                "namespace path",
                s,
                format!("longer than {MAX_PATH_BYTES} bytes"),
            ));
        }
        Ok(NamespacePath(p))
    }

    /// The path, `/a/b` or `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the namespace root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path relative to the root, as a volume path (`/a/b` → `a/b`).
    pub fn relative(&self) -> VolumePath {
        VolumePath(self.0[1..].to_string())
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// This folder with `rel` below it; `None` when the result would be too long.
    pub fn join(&self, rel: &VolumePath) -> Option<NamespacePath> {
        let joined = match (self.is_root(), rel.is_root()) {
            (_, true) => self.0.clone(),
            (true, false) => format!("/{}", rel.0),
            (false, false) => format!("{}/{}", self.0, rel.0),
        };
        (joined.len() <= MAX_PATH_BYTES).then_some(NamespacePath(joined))
    }
}

impl fmt::Display for NamespacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for NamespacePath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NamespacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for NamespacePath {
    type Err = NameError;
    fn from_str(s: &str) -> Result<NamespacePath, NameError> {
        NamespacePath::parse(s)
    }
}

impl TryFrom<String> for NamespacePath {
    type Error = NameError;
    fn try_from(s: String) -> Result<NamespacePath, NameError> {
        NamespacePath::parse(&s)
    }
}

impl From<NamespacePath> for String {
    fn from(p: NamespacePath) -> String {
        p.0
    }
}

/// Levenshtein distance over characters, for "did you mean" suggestions (bounded: inputs are cut
/// at 256 characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(256).collect();
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` when it is close enough to be a typo: at most two edits,
/// and fewer edits than half the word's length.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let (d, best) = candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .min()?;
    (d > 0 && d <= 2 && d * 2 < word.chars().count()).then_some(best)
}

/// `name[:tag]` → `(name, tag)`; a `:` followed by a `/` belongs to a registry port.
fn split_tag(s: &str) -> (&str, &str) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, "latest"),
    }
}

fn components(s: &str) -> Result<Vec<&str>, String> {
    if s.len() > MAX_PATH_BYTES {
        return Err(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if s.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if s.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' is not allowed".into()),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(format!(
                    "a component is longer than {MAX_COMPONENT_BYTES} bytes"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn lower_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `s` has 1 to `max` characters, starts with `[a-z0-9]` and every character passes `allowed`.
fn simple(s: &str, max: usize, allowed: impl Fn(char) -> bool, rule: &str) -> Result<(), String> {
    if !s.is_empty() && s.len() <= max && s.starts_with(lower_digit) && s.chars().all(allowed) {
        Ok(())
    } else {
        Err(rule.to_string())
    }
}

fn check_tenant(s: &str) -> Result<(), String> {
    simple(
        s,
        59,
        |c| lower_digit(c) || c == '_' || c == '-',
        "lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 59 characters",
    )?;
    docker_component(s)
}

fn check_namespace(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("letters, digits, '_' and '-', 1 to 64 characters".into())
    }
}

fn check_volume(s: &str) -> Result<(), String> {
    simple(
        s,
        63,
        |c| lower_digit(c) || ".-_".contains(c),
        "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters",
    )
}

fn check_pod(s: &str) -> Result<(), String> {
    let rule = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
    simple(s, 63, |c| lower_digit(c) || c == '-', rule)?;
    if s.ends_with(lower_digit) {
        Ok(())
    } else {
        Err(rule.into())
    }
}

fn check_image_name(s: &str) -> Result<(), String> {
    simple(
        s,
        128,
        |c| lower_digit(c) || ".-_".contains(c),
        "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters, no '/'",
    )?;
    docker_component(s)
}

fn check_tag(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
        });
    if ok {
        Ok(())
    } else {
        Err("letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters".into())
    }
}

fn check_operation(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| lower_digit(c) || ".-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err("lowercase letters, digits, '.', '_' and '-', 1 to 64 characters".into())
    }
}

fn check_task(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err("letters, digits, '.', '_' and '-', 1 to 64 characters".into())
    }
}

fn check_execution(s: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err("letters, digits, '_' and '-', 1 to 128 characters".into())
    }
}

/// Docker's path-component grammar: `[a-z0-9]+` parts separated by `.`, `_`, `__` or runs of
/// `-`, starting and ending with a part.
fn docker_component(name: &str) -> Result<(), String> {
    let mut separator = String::new();
    for (i, c) in name.chars().enumerate() {
        if lower_digit(c) {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.chars().all(|c| c == '-'))
            {
                return Err(format!(
                    "'{separator}' cannot separate its parts (use '.', '_', '__' or '-')"
                ));
            }
            separator.clear();
        } else if i == 0 {
            return Err("it must start with a lowercase letter or digit".into());
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return Err(format!("{c:?} is not allowed"));
        }
    }
    if name.is_empty() {
        Err("it is empty".into())
    } else if separator.is_empty() {
        Ok(())
    } else {
        Err("it must end with a lowercase letter or digit".into())
    }
}

/// A registry host as the first component of a reference: holds a `.` or a `:`, or is
/// `localhost`.
fn looks_like_host(part: &str) -> bool {
    (part.contains('.') || part.contains(':') || part == "localhost")
        && !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        for ok in ["alice", "a", "t0-1", "team_x", "a__b", "0a", "a--b"] {
            assert!(TenantName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "-a",
            "_a",
            "a.b",
            "a/b",
            "a-",
            "a_",
            "a___b",
            "a_-b",
            &"a".repeat(60),
        ] {
            assert!(TenantName::new(bad).is_err(), "{bad}");
        }
        let longest = TenantName::new(&"a".repeat(59)).unwrap();
        assert!(VolumeName::new(&longest.default_volume()).is_ok());
        assert_eq!(
            TenantName::new("a-").unwrap_err().to_string(),
            "'a-' is not a valid tenant name (it must end with a lowercase letter or digit)"
        );
    }

    #[test]
    fn volumes_pods_systems() {
        for ok in ["alice-pvc", "v.1", "x_y", "0"] {
            assert!(VolumeName::new(ok).is_ok(), "{ok}");
            assert!(SystemName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "A",
            "a/b",
            "a b",
            "a\0",
            &"a".repeat(64),
        ] {
            assert!(VolumeName::new(bad).is_err(), "{bad}");
        }
        for ok in ["hello", "a", "a-1", "0x"] {
            assert!(PodName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a_b", "-a", "a-", "A", &"a".repeat(64)] {
            assert!(PodName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_and_tags() {
        for ok in ["hello", "my-app", "app.v2", "a__b"] {
            assert!(ImageName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hello",
            "a/b",
            "tenants/x/y",
            "a..b",
            "a-",
            "busybox:1",
            ".a",
        ] {
            assert!(ImageName::new(bad).is_err(), "{bad}");
        }
        for ok in ["latest", "v1.2-rc", "_x", "A"] {
            assert!(ImageTag::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(ImageTag::new(bad).is_err(), "{bad}");
        }
        let img = TenantImage::parse("hello").unwrap();
        assert_eq!(
            img.onboard(&TenantName::new("alice").unwrap()),
            "tenants/alice/hello:latest"
        );
        assert_eq!(
            TenantImage::parse("hello:v1").unwrap().to_string(),
            "hello:v1"
        );
    }

    #[test]
    fn image_references() {
        let ok = |s: &str| parse_image_reference(s).unwrap();
        assert_eq!(ok("hello"), ("hello".into(), "latest".into()));
        assert_eq!(
            ok("gcr.io/distroless/static-debian12:nonroot"),
            ("gcr.io/distroless/static-debian12".into(), "nonroot".into())
        );
        assert_eq!(
            ok("fpga.dphi.space:5000/busybox"),
            ("fpga.dphi.space:5000/busybox".into(), "latest".into())
        );
        for bad in [
            "",
            "Hello",
            "a//b",
            "a/",
            "busybox@sha256:00",
            "a:.x",
            "a b",
        ] {
            assert!(parse_image_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        let v = |s: &str| VolumePath::parse(s).map(|p| p.as_str().to_string());
        assert_eq!(v("/a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(v("").unwrap(), "");
        assert_eq!(v("/").unwrap(), "");
        assert_eq!(v("//x").unwrap(), "x");
        assert!(
            v("a/../b")
                .unwrap_err()
                .to_string()
                .contains("'..' is not allowed")
        );
        assert!(v("a\0b").is_err());
        assert!(v("a\nb").is_err());
        assert!(v(&"a".repeat(256)).is_err());
        assert!(v(&"a/".repeat(2049)).is_err());
        assert!(VolumePath::parse_file("/").is_err());
        let n = NamespacePath::parse("in/x.txt").unwrap();
        assert_eq!(n.as_str(), "/in/x.txt");
        assert_eq!(n.relative().as_str(), "in/x.txt");
        assert_eq!(NamespacePath::parse("/").unwrap().as_str(), "/");
        let base = VolumePath::parse("x").unwrap();
        assert_eq!(
            base.join(&VolumePath::parse("in/a").unwrap())
                .unwrap()
                .as_str(),
            "x/in/a"
        );
        assert_eq!(
            NamespacePath::root()
                .join(&VolumePath::parse("a").unwrap())
                .unwrap()
                .as_str(),
            "/a"
        );
    }

    /// The one judge of a files.move: every refusal names its field, and the entries a move
    /// carries along or stops at.
    #[test]
    fn file_moves() {
        let refused = |s: &str, d: &str| FileMove::new(s, d).unwrap_err().to_string();
        for (s, d, want) in [
            (
                "out/*.txt",
                "x",
                "files.move: source has a bad path 'out/*.txt': must be a literal path: files.move takes no wildcards",
            ),
            (
                "a",
                "/",
                "files.move: destination has a bad path '/': must name a file or a folder, not the volume root",
            ),
            (
                "/",
                "a",
                "files.move: source has a bad path '/': must name a file or a folder, not the volume root",
            ),
            (
                "a",
                "../c",
                "files.move: destination has a bad path '../c': '..' is not allowed",
            ),
            (
                "a/b",
                "/a/b/c",
                "files.move: destination '/a/b/c' lies under the source '/a/b': a folder cannot be moved into itself",
            ),
            (
                "/a//b",
                "a/./b",
                "files.move: destination is the source itself: nothing to move",
            ),
        ] {
            assert_eq!(refused(s, d), want, "{s} -> {d}");
        }
        let m = FileMove::new("/a/b", "a/bc").unwrap();
        assert_eq!(
            (m.source().as_str(), m.destination().as_str()),
            ("a/b", "a/bc")
        );
        assert_eq!(m.moved("a/b").as_deref(), Some("a/bc"));
        assert_eq!(m.moved("a/b/x/y").as_deref(), Some("a/bc/x/y"));
        assert_eq!(m.moved("a/bx"), None);
        assert_eq!(m.moved("a"), None);
        assert!(m.blocked_by("a/bc") && m.blocked_by("a/bc/z"));
        assert!(!m.blocked_by("a/bcd") && !m.blocked_by("a"));
        // A sibling with the source's name as a prefix is no parent of it.
        assert!(FileMove::new("a", "ab/c").is_ok());
        let e = FileMove::of(VolumePath::root(), VolumePath::parse("x").unwrap()).unwrap_err();
        assert_eq!(e.field(), MoveField::Source);
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let types = ["uplink", "downlink", "files.list", "pod.run"];
        assert_eq!(closest("downlnk", &types), Some("downlink"));
        assert_eq!(closest("pod.rum", &types), Some("pod.run"));
        assert_eq!(closest("xyz", &types), None);
        assert_eq!(closest("uplink", &types), None);
    }

    #[test]
    fn serde_validates() {
        let ok: TenantName = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(ok, "alice");
        assert!(serde_json::from_str::<TenantName>("\"a-\"").is_err());
        assert!(serde_json::from_str::<VolumePath>("\"../x\"").is_err());
    }
}
