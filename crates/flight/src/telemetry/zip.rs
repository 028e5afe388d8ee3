//! A ZIP archive of whole files, stored uncompressed (method 0), as the reference's
//! `POST /api/images` answers several pictures (PNG is compressed already). No ZIP64: the
//! service's pictures are few and small, and a member or archive past 4 GiB is refused.

/// The archive of `members` (name, bytes), in order.
pub(crate) fn stored(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, bytes) in members {
        let (size, offset) = (u32_of(bytes.len())?, u32_of(out.len())?);
        let name_len = u16::try_from(name.len()).map_err(|_| format!("{name}: name too long"))?;
        let crc = crc32fast::hash(bytes);
        // Local file header: version 1.0, no flags, stored, no time (1980-01-01).
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&10u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x0021u16.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(bytes);
        // Its central directory entry.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&10u16.to_le_bytes());
        central.extend_from_slice(&10u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x0021u16.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (count, at) = (
        u16::try_from(members.len()).map_err(|_| "too many members".to_string())?,
        u32_of(out.len())?,
    );
    let length = u32_of(central.len())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // this disk, the directory's disk
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    u32_of(out.len())?;
    Ok(out)
}

fn u32_of(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| "the archive would pass 4 GiB".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unzip_reads_back_every_member() {
        let dir = tempfile::tempdir().unwrap();
        let members = vec![
            ("a.png".to_string(), b"first".to_vec()),
            ("b.png".to_string(), (0..=255u8).collect()),
            ("empty.png".to_string(), Vec::new()),
        ];
        let zip = dir.path().join("x.zip");
        std::fs::write(&zip, super::stored(&members).unwrap()).unwrap();
        // Python's zipfile checks the headers, the directory and every CRC.
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nfor i in z.infolist():\n    assert i.compress_type == zipfile.ZIP_STORED\n    print(i.filename, z.read(i).hex())\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&zip)
            .output()
            .expect("python3 reads the archive");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: String = members
            .iter()
            .map(|(n, b)| {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("{n} {hex}\n")
            })
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}
