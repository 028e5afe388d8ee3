//! The archive's members, indexed by header (bodies are skipped by seeking) and judged as they
//! are read, so that the file this crate reads under a name is the file the engine reads.
//!
//! The headers are first walked by [`crate::headers`], which bounds what the tar reader reads
//! whole. Each name must be clean (no `.`, `..` or empty components, no leading `/`, no NUL; one
//! leading `./`, as `tar -C dir .` writes, is tolerated) and occur once; names and link targets
//! together stay within [`MAX_NAMES_TOTAL`](crate::MAX_NAMES_TOTAL); a member is a file, a folder
//! or a link; no link or file may be a folder of another member; a symlink must point, within
//! [`MAX_LINK_HOPS`](crate::MAX_LINK_HOPS) links, at a member of the archive, without climbing
//! (`..`) out of a symlink, and a hard link at an earlier file; each member's data (with its
//! padding) lies inside the file.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};

use crate::error::{ArchiveError, ErrorKind, io, not_tar, refused, too_large};
use crate::{MAX_LINK_HOPS, MAX_MEMBERS, MAX_METADATA_BYTES, MAX_METADATA_TOTAL, MAX_NAMES_TOTAL};

/// `Read + Seek` as one object-safe trait, so the work happens in non-generic functions.
pub(crate) trait ReadSeek: Read + Seek {}

impl<T: Read + Seek + ?Sized> ReadSeek for T {}

/// Names that the engine reads as metadata: each must be a regular file.
const METADATA_NAMES: &[&str] = &["manifest.json", "index.json", "repositories", "oci-layout"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    /// The archive's root folder (`./`) or a pax global header: no member of the image.
    Skipped,
}

/// One entry of the tar, in order.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The clean name (empty for [`Kind::Skipped`]).
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Where the data starts in the file.
    pub(crate) offset: u64,
    /// Bytes of data.
    pub(crate) size: u64,
    /// A symlink's target resolved against its folder, or a hard link's target; clean names.
    pub(crate) link: Option<String>,
    /// The name and type as the header writes them, for [`Member::same_as`].
    raw_name: Vec<u8>,
    raw_type: u8,
}

impl Member {
    /// Whether `entry` is this member as it was indexed.
    pub(crate) fn same_as<R: Read>(&self, entry: &tar::Entry<'_, R>) -> bool {
        *entry.path_bytes() == *self.raw_name
            && entry.header().entry_type().as_byte() == self.raw_type
            && entry.size() == self.size
            && entry.raw_file_position() == self.offset
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::File => "file",
            Kind::Dir => "folder",
            Kind::Symlink => "symlink",
            Kind::HardLink => "hard link",
            Kind::Skipped => "root folder",
        }
    }
}

/// Every member of an archive, judged.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    pub(crate) list: Vec<Member>,
    by_name: HashMap<String, usize>,
    /// Bytes of names and link targets read so far.
    name_bytes: u64,
    /// The symlinks whose target climbs (`..`) after naming a member, with that target: each
    /// climb is checked once every name is known.
    climbing: Vec<(usize, String)>,
}

impl Members {
    /// The member named `name` (a clean name), without following links.
    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// The member `name` leads to: symlinks followed (at most [`MAX_LINK_HOPS`]), a hard link
    /// replaced by the file it names. `None` when no member has that name.
    pub(crate) fn resolve(&self, name: &str) -> Result<Option<&Member>, ArchiveError> {
        let Some(mut m) = self.get(name) else {
            return Ok(None);
        };
        let mut hops = 0;
        while m.kind == Kind::Symlink {
            let target = m.link.as_deref().unwrap_or("");
            if hops == MAX_LINK_HOPS {
                return Err(refused(format!(
                    "the link `{name}` leads through more than {MAX_LINK_HOPS} links (or a loop)"
                )));
            }
            m = self.get(target).ok_or_else(|| {
                refused(format!(
                    "the link `{}` points at `{target}`, which is not in the archive",
                    m.name
                ))
            })?;
            hops += 1;
        }
        if m.kind == Kind::HardLink {
            // Checked when indexed: the earlier file it names.
            m = self.get(m.link.as_deref().unwrap_or("")).unwrap_or(m);
        }
        Ok(Some(m))
    }

    /// The member `name` leads to, which must be a regular file; `what` names it in messages.
    pub(crate) fn file(&self, name: &str, what: &str) -> Result<Option<&Member>, ArchiveError> {
        match self.resolve(name)? {
            Some(m) if m.kind == Kind::File => Ok(Some(m)),
            Some(m) => Err(refused(format!(
                "{what} `{name}` is a {}, not a file",
                m.kind_name()
            ))),
            None => Ok(None),
        }
    }

    /// The member `name` itself, which must be a regular file (not a link): metadata.
    pub(crate) fn regular(&self, name: &str, what: &str) -> Result<Option<&Member>, ArchiveError> {
        match self.get(name) {
            Some(m) if m.kind == Kind::File => Ok(Some(m)),
            Some(m) => Err(refused(format!(
                "{what} `{name}` is a {}, not a regular file",
                m.kind_name()
            ))),
            None => Ok(None),
        }
    }
}

/// Reads every header of the archive and judges the names and links.
pub(crate) fn index(reader: &mut dyn ReadSeek) -> Result<Members, ArchiveError> {
    let len = reader
        .seek(SeekFrom::End(0))
        .map_err(io("cannot read the archive"))?;
    crate::headers::prescan(reader, len)?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io("cannot read the archive"))?;
    let mut members = Members {
        list: Vec::new(),
        by_name: HashMap::new(),
        name_bytes: 0,
        climbing: Vec::new(),
    };
    let mut archive = tar::Archive::new(Skipping {
        inner: BufReader::with_capacity(64 << 10, reader),
        pos: 0,
    });
    for entry in archive.entries_with_seek().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        if members.list.len() == MAX_MEMBERS {
            return Err(too_large(format!(
                "the archive has more than {MAX_MEMBERS} members"
            )));
        }
        members.add(&entry, len)?;
    }
    if members.list.is_empty() {
        return Err(ArchiveError::new(
            ErrorKind::NotTar,
            "not a tar archive, or an empty one",
        ));
    }
    members.finish()?;
    Ok(members)
}

impl Members {
    fn add<R: Read>(&mut self, entry: &tar::Entry<'_, R>, len: u64) -> Result<(), ArchiveError> {
        let header = entry.header();
        let entry_type = header.entry_type();
        let raw_name = entry.path_bytes().into_owned();
        let link_bytes = match entry_type {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                entry.link_name_bytes().map_or(0, |l| l.len())
            }
            _ => 0,
        };
        self.name_bytes += (raw_name.len() + link_bytes) as u64;
        if self.name_bytes > MAX_NAMES_TOTAL {
            return Err(too_large(format!(
                "the archive's member names and link targets take more than {MAX_NAMES_TOTAL} \
                 bytes"
            )));
        }
        let raw = String::from_utf8(raw_name.clone())
            .map_err(|_| refused("a member name is not UTF-8"))?;
        // Go's tar reader ends a name at its first NUL; the `tar` crate keeps what follows.
        if raw.contains('\0') {
            return Err(refused(format!("the member name {raw:?} holds a NUL byte")));
        }
        let (offset, size) = (entry.raw_file_position(), entry.size());
        // A header may declare any size; the data and its padding must lie inside the file.
        let padded = size.checked_add(511).map(|s| s & !511);
        if padded
            .and_then(|p| offset.checked_add(p))
            .is_none_or(|end| end > len)
        {
            return Err(ArchiveError::new(
                ErrorKind::NotTar,
                format!(
                    "the archive is truncated: member `{raw}` declares {size} bytes at offset \
                     {offset}, but the archive holds {len}"
                ),
            ));
        }
        let mut member = Member {
            name: String::new(),
            kind: Kind::Skipped,
            offset,
            size,
            link: None,
            raw_name,
            raw_type: entry_type.as_byte(),
        };
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::HardLink,
            tar::EntryType::XGlobalHeader => {
                self.list.push(member);
                return Ok(());
            }
            other => {
                return Err(refused(format!(
                    "the member `{raw}` is of tar type {:?}, not a file, folder or link",
                    other.as_byte() as char
                )));
            }
        };
        // Go's archive/tar, which the engine uses, reads no data after a folder or link header
        // whatever size it declares, while this reader skips that many bytes: the two would see
        // different members.
        if kind != Kind::File && size != 0 {
            return Err(refused(format!(
                "the {} `{raw}` declares {size} bytes of data",
                if kind == Kind::Dir { "folder" } else { "link" }
            )));
        }
        let mut name = raw.strip_prefix("./").unwrap_or(&raw);
        if kind == Kind::Dir {
            name = name.strip_suffix('/').unwrap_or(name);
            if name.is_empty() || name == "." {
                self.list.push(member);
                return Ok(());
            }
        }
        if !is_clean(name) {
            return Err(refused(format!(
                "the member name {raw:?} is not a clean relative path"
            )));
        }
        if self.by_name.contains_key(name) {
            return Err(refused(format!("the archive holds `{name}` twice")));
        }
        if METADATA_NAMES.contains(&name) && kind != Kind::File {
            return Err(refused(format!("`{name}` is not a regular file")));
        }
        let target = || -> Result<String, ArchiveError> {
            let bytes = entry
                .link_name_bytes()
                .ok_or_else(|| refused(format!("the link `{name}` has no target")))?;
            let t = String::from_utf8(bytes.into_owned())
                .map_err(|_| refused(format!("the target of the link `{name}` is not UTF-8")))?;
            if t.contains('\0') {
                return Err(refused(format!(
                    "the target of the link `{name}` holds a NUL byte"
                )));
            }
            Ok(t)
        };
        match kind {
            Kind::Symlink => {
                let t = target()?;
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                let resolved = join_inside(dir, &t).ok_or_else(|| {
                    refused(format!(
                        "the link `{name}` points outside the archive (`{t}`)"
                    ))
                })?;
                member.link = Some(resolved);
                if climbs_after_a_name(&t) {
                    self.climbing.push((self.list.len(), t));
                }
            }
            Kind::HardLink => {
                let t = target()?;
                let clean = t.strip_prefix("./").unwrap_or(&t);
                match self.get(clean) {
                    Some(m) if is_clean(clean) && m.kind == Kind::File => {
                        member.link = Some(clean.to_string());
                    }
                    _ => {
                        return Err(refused(format!(
                            "the hard link `{name}` names `{t}`, which is not an earlier file \
                             of the archive"
                        )));
                    }
                }
            }
            _ => {}
        }
        member.name = name.to_string();
        member.kind = kind;
        self.by_name.insert(member.name.clone(), self.list.len());
        self.list.push(member);
        Ok(())
    }

    /// The checks that need every name: no link or file is a folder of another member (`d ->
    /// .`, then `d/manifest.json`), and every symlink leads to a member.
    fn finish(&self) -> Result<(), ArchiveError> {
        for m in &self.list {
            for (n, _) in m.name.match_indices('/') {
                let parent = &m.name[..n];
                if let Some(p) = self.get(parent)
                    && p.kind != Kind::Dir
                {
                    return Err(refused(format!(
                        "`{parent}` is a {}, yet `{}` is inside it",
                        p.kind_name(),
                        m.name
                    )));
                }
            }
        }
        self.check_climbs()?;
        for m in self.list.iter().filter(|m| m.kind == Kind::Symlink) {
            self.resolve(&m.name)?;
        }
        Ok(())
    }

    /// Refuses a symlink whose target climbs (`..`) out of a member that is a symlink: the
    /// classic image store resolves a target on disk, where `b/../x.tar` with `b -> c/d` is
    /// `c/x.tar`, while this crate (and containerd) read it by its text, as `x.tar`. The names
    /// form a tree walked one component at a time, so each target costs its length.
    fn check_climbs(&self) -> Result<(), ArchiveError> {
        if self.climbing.is_empty() {
            return Ok(());
        }
        // Node 0 is the archive's root; each node knows the symlink it is, if any.
        let mut children: HashMap<(usize, &str), usize> = HashMap::new();
        let mut symlink: Vec<Option<&str>> = vec![None];
        for m in self.list.iter().filter(|m| m.kind != Kind::Skipped) {
            let mut node = 0;
            for c in m.name.split('/') {
                let fresh = symlink.len();
                node = *children.entry((node, c)).or_insert(fresh);
                if node == fresh {
                    symlink.push(None);
                }
            }
            if m.kind == Kind::Symlink {
                symlink[node] = Some(&m.name);
            }
        }
        for (i, target) in &self.climbing {
            let name = &self.list[*i].name;
            // The nodes from the root to where the walk is; `None` below a name no member has.
            let mut path: Vec<Option<usize>> = Vec::new();
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for c in dir.split('/').chain(target.split('/')) {
                match c {
                    "" | "." => {}
                    ".." => {
                        if let Some(link) = path.pop().flatten().and_then(|n| symlink[n]) {
                            return Err(refused(format!(
                                "the link `{name}` points at `{target}`, whose `..` climbs out \
                                 of the link `{link}`: the engine would follow `{link}` first"
                            )));
                        }
                    }
                    c => {
                        let parent = path.last().copied().unwrap_or(Some(0));
                        path.push(parent.and_then(|p| children.get(&(p, c)).copied()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a link target has a `..` after a name (`b/../x`), not only leading ones
/// (`../x/layer.tar`, which climb out of the link's own folders: never links).
fn climbs_after_a_name(target: &str) -> bool {
    let mut named = false;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if named => return true,
            ".." => {}
            _ => named = true,
        }
    }
    false
}

/// A buffered reader whose relative seeks (the tar reader skipping a member's data, often by
/// nothing) keep the buffer: a plain `BufReader` drops it on every seek, re-reading the file for
/// each header.
struct Skipping<'a> {
    inner: BufReader<&'a mut dyn ReadSeek>,
    /// The position in the file (the inner reader starts at 0).
    pos: u64,
}

impl Read for Skipping<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Skipping<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match pos {
            SeekFrom::Current(delta) => {
                let to = self.pos.checked_add_signed(delta).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range")
                })?;
                self.inner.seek_relative(delta)?;
                self.pos = to;
            }
            other => self.pos = self.inner.seek(other)?,
        }
        Ok(self.pos)
    }
}

/// Whether `name` is a clean relative path: no leading `/`, no empty, `.` or `..` component.
pub(crate) fn is_clean(name: &str) -> bool {
    !name.is_empty()
        && !name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
}

/// `target` read from folder `dir`, as a clean name; `None` when it is absolute, leaves the
/// archive or names its root.
fn join_inside(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Reads a metadata member whole, within [`MAX_METADATA_BYTES`] and what is left of the
/// archive's [`MAX_METADATA_TOTAL`] (`budget`).
pub(crate) fn read_metadata(
    reader: &mut dyn ReadSeek,
    member: &Member,
    budget: &mut u64,
) -> Result<Vec<u8>, ArchiveError> {
    let name = &member.name;
    if member.size > MAX_METADATA_BYTES {
        return Err(too_large(format!(
            "`{name}` is {} bytes, more than the {MAX_METADATA_BYTES} a metadata file may have",
            member.size
        )));
    }
    if member.size > *budget {
        return Err(too_large(format!(
            "reading `{name}` would take the archive's metadata past {MAX_METADATA_TOTAL} bytes"
        )));
    }
    *budget -= member.size;
    let what = format!("cannot read `{name}`");
    reader
        .seek(SeekFrom::Start(member.offset))
        .map_err(io(&what))?;
    let mut bytes = Vec::new();
    reader
        .take(member.size)
        .read_to_end(&mut bytes)
        .map_err(io(&what))?;
    if bytes.len() as u64 != member.size {
        return Err(ArchiveError::new(
            ErrorKind::NotTar,
            format!("the archive is truncated inside `{name}`"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_are_joined_inside_the_archive() {
        assert_eq!(
            join_inside("a/b", "../c/layer.tar").as_deref(),
            Some("a/c/layer.tar")
        );
        assert_eq!(join_inside("a", "../c").as_deref(), Some("c"));
        assert_eq!(join_inside("", "./c//d").as_deref(), Some("c/d"));
        assert_eq!(join_inside("a", "../../c"), None);
        assert_eq!(join_inside("", "/etc/passwd"), None);
        assert_eq!(join_inside("d", ".."), None);
        assert!(is_clean("a/b.json"));
        for bad in ["", "/a", "a//b", "a/./b", "a/../b", "a/"] {
            assert!(!is_clean(bad), "{bad}");
        }
    }
}
