//! camera.capture: a picture from the fisheye camera, written as a PNG into a tenant's volume
//! (Clustergate-2's "Fisheye Pictures": "a fisheye camera picture captured and put into a volume
//! onboard").
//!
//! No camera is wired to the agent yet, so the picture is made onboard: a square frame with the
//! fisheye's circular image (space above a curved limb of the Earth, an atmosphere's glow, a
//! vignette toward the rim), the capture time drawn in its corner and recorded as the PNG's
//! `Creation Time`. The size is bounded ([`MIN_SIZE`] to [`MAX_SIZE`] pixels a side); the
//! picture is encoded row by row, so memory stays a few rows whatever the size, then measured
//! against the tenant's limit before it lands, atomically, like an uplinked file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// The smallest picture, in pixels a side.
pub(crate) const MIN_SIZE: u32 = wire::CAMERA_MIN_SIZE;
/// The largest picture, in pixels a side (12 MiB of pixels before compression).
pub(crate) const MAX_SIZE: u32 = wire::CAMERA_MAX_SIZE;

impl Executor {
    /// Captures a `size`×`size` picture into `path` of the volume (replacing a file there, as
    /// an uplink does).
    #[allow(clippy::result_large_err)]
    pub(super) async fn camera_capture(
        &self,
        tenant: &str,
        volume: &str,
        path: &str,
        size: u32,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        let rel = RelPath::parse(path).map_err(invalid)?;
        if rel.is_root() || !rel.display().ends_with(".png") {
            return Err(invalid(format!(
                "camera.capture writes a PNG: its path must name a file ending in .png, not {}",
                rel.display()
            )));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            return Err(invalid(format!(
                "camera.capture: a picture is {MIN_SIZE} to {MAX_SIZE} pixels a side, not {size}"
            )));
        }
        self.room_for_work().await?;
        let at = SystemTime::now();
        let picture = blocking(move || fisheye_png(size, at))
            .await?
            .map_err(|e| execution_error(format!("cannot encode the picture: {e}")))?;
        let volumes = self.volumes.clone();
        let (tenant_name, volume_name) = (tenant.to_string(), volume.to_string());
        let (root, owner) = blocking(move || volumes.ensure_volume_dir(&tenant_name, &volume_name))
            .await?
            .map_err(execution_error)?;
        // The tenant's volumes with the picture (less a file it replaces) stay within the limit.
        let used = self.tenant_usage(tenant).await?;
        let old = root
            .stat(&rel)
            .ok()
            .flatten()
            .filter(volumes::Meta::is_file)
            .map_or(0, |m| m.len);
        let after = (used + picture.len() as u64).saturating_sub(old);
        self.volumes_within(
            tenant,
            after,
            &format!(
                "volume {volume} with this picture ({} already in your volumes)",
                crate::disk::size(used)
            ),
            Some(&format!("with this picture into volume {volume}")),
        )?;
        let volumes = self.volumes.clone();
        let (shown, len) = (rel.display(), picture.len());
        blocking(move || -> Step<u64> {
            root.write_file(&volumes, &rel, owner, &mut picture.as_slice(), 0o644)
                .map_err(|e| path_failure(e, ErrorCode::ExecutionError))
        })
        .await??;
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!(
                "captured a {size}x{size} fisheye picture at {} into {shown} ({len} bytes)",
                capture_time(at)
            )),
            ..TaskOutputs::default()
        }))
    }
}

/// `2026-12-03T00:25:00Z`.
fn capture_time(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The simulated picture, encoded: 8-bit RGB, with `Creation Time` and `Software` text chunks.
pub(crate) fn fisheye_png(size: u32, at: SystemTime) -> Result<Vec<u8>, png::EncodingError> {
    let stamp = capture_time(at);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size, size);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder.add_text_chunk("Creation Time".into(), stamp.clone())?;
    encoder.add_text_chunk(
        "Software".into(),
        "orbitdock flight agent: simulated fisheye camera".into(),
    )?;
    let mut writer = encoder.write_header()?;
    {
        let mut rows = writer.stream_writer()?;
        let mut row = vec![0u8; size as usize * 3];
        for y in 0..size {
            for x in 0..size {
                let rgb = pixel(size, x, y, &stamp);
                row[x as usize * 3..x as usize * 3 + 3].copy_from_slice(&rgb);
            }
            rows.write_all(&row)?;
        }
        rows.finish()?;
    }
    drop(writer);
    Ok(out)
}

/// The colour of one pixel: black outside the fisheye's circle, space, the atmosphere's glow
/// and the Earth inside it, the time stamp in white over the bottom-left corner.
fn pixel(size: u32, x: u32, y: u32, stamp: &str) -> [u8; 3] {
    if in_stamp(size, x, y, stamp) {
        return [255, 255, 255];
    }
    let half = f64::from(size) / 2.0;
    let u = (f64::from(x) + 0.5 - half) / half;
    let v = (f64::from(y) + 0.5 - half) / half;
    let r2 = u * u + v * v;
    if r2 > 0.96 * 0.96 {
        return [0, 0, 0];
    }
    // The limb curves down toward the rim of the lens, as a fisheye draws a straight horizon.
    let limb = 0.15 + 0.35 * u * u;
    let d = v - limb;
    let (red, green, blue) = if d < -0.12 {
        // Space: darkest at the top.
        let t = ((v + 1.0) / 1.2).clamp(0.0, 1.0);
        (2.0 + 8.0 * t, 4.0 + 14.0 * t, 12.0 + 40.0 * t)
    } else if d < 0.0 {
        // The atmosphere's glow, brightening toward the limb.
        let t = (d + 0.12) / 0.12;
        (40.0 + 80.0 * t, 90.0 + 110.0 * t, 180.0 + 75.0 * t)
    } else {
        // The Earth: ocean blue at the limb, greener and darker toward the bottom.
        let t = (d / 1.2).clamp(0.0, 1.0);
        (30.0 + 50.0 * t, 90.0 + 40.0 * t, 160.0 - 110.0 * t)
    };
    let vignette = 1.0 - 0.45 * r2;
    let c = |v: f64| (v * vignette).round().clamp(0.0, 255.0) as u8;
    [c(red), c(green), c(blue)]
}

/// Whether `(x, y)` is a lit dot of the time stamp: 3×5 glyphs, scaled with the picture (one
/// dot per 128 pixels of side, at least one pixel), a dot's gap between glyphs, from a margin at
/// the bottom-left corner.
fn in_stamp(size: u32, x: u32, y: u32, stamp: &str) -> bool {
    let scale = (size / 128).max(1);
    let (left, top) = (2 * scale, size.saturating_sub(7 * scale));
    if x < left || y < top || y >= top + 5 * scale {
        return false;
    }
    let (col, row) = ((x - left) / scale, (y - top) / scale);
    let (index, dot) = ((col / 4) as usize, col % 4);
    if dot == 3 {
        return false;
    }
    stamp
        .as_bytes()
        .get(index)
        .is_some_and(|&c| glyph(c)[row as usize] & (0b100 >> dot) != 0)
}

/// The 3×5 glyph of a character of a time stamp, one row of three bits per entry (the left
/// dot in the high bit); blank for any other character.
fn glyph(c: u8) -> [u8; 5] {
    match c {
        b'0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        b'1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        b'2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        b'3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        b'4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        b'5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        b'6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        b'7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        b'8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        b'9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        b'-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        b':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        b'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        b'Z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        _ => [0; 5],
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    fn capture(path: &str, size: u32) -> TaskKind {
        TaskKind::CameraCapture {
            volume: "pvc".into(),
            path: path.into(),
            size,
        }
    }

    /// The picture's size, its pixels (RGB) and its `Creation Time`.
    fn decode(bytes: &[u8]) -> (u32, Vec<u8>, String) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let info = reader.info();
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        let (w, h) = (info.width, info.height);
        assert_eq!(w, h);
        let time = info
            .uncompressed_latin1_text
            .iter()
            .find(|t| t.keyword == "Creation Time")
            .map(|t| t.text.clone())
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        (w, pixels, time)
    }

    #[tokio::test]
    async fn a_capture_lands_as_a_png_with_its_time() {
        let r = rig(|_| {});
        let before = SystemTime::now() - Duration::from_secs(1);
        let res = r.run(capture("/fisheye/shot.png", 256)).await;
        assert!(res.succeeded(), "{res:?}");
        let bytes = fs::read(r.volume().join("fisheye/shot.png")).unwrap();
        let message = res.outputs.message.unwrap();
        assert!(
            message.starts_with("captured a 256x256 fisheye picture at ")
                && message.ends_with(&format!(" into /fisheye/shot.png ({} bytes)", bytes.len())),
            "{message}"
        );
        let (size, pixels, time) = decode(&bytes);
        assert_eq!(size, 256);
        let at = humantime::parse_rfc3339(&time).unwrap();
        assert!(at >= before && at <= SystemTime::now(), "{time}");
        assert!(message.contains(&time), "{message} {time}");
        let px = |x: usize, y: usize| {
            let i = (y * 256 + x) * 3;
            [pixels[i], pixels[i + 1], pixels[i + 2]]
        };
        // Black outside the lens's circle, sky and Earth inside, the stamp in white.
        assert_eq!(px(255, 0), [0, 0, 0]);
        let (sky, earth) = (px(128, 40), px(128, 220));
        assert!(sky[2] > sky[0] && sky != [0, 0, 0], "{sky:?}");
        assert!(earth[1] > sky[1], "{earth:?} {sky:?}");
        let lit = (0..256)
            .flat_map(|x| (242..252).map(move |y| (x, y)))
            .filter(|&(x, y)| px(x, y) == [255, 255, 255])
            .count();
        assert!(lit > 40, "the time stamp is drawn: {lit} dots");
        // Well under the raw pixels.
        assert!(bytes.len() < 256 * 256 * 3 / 2, "{}", bytes.len());
    }

    #[tokio::test]
    async fn captures_are_bounded_and_stay_in_the_volume() {
        let r = rig(|_| {});
        r.put(&[("dir/keep.txt", b"k")]);
        let outside = r._dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, r.volume().join("out")).unwrap();
        for (path, size, want) in [
            ("shot.png", MIN_SIZE - 1, 2),
            ("shot.png", MAX_SIZE + 1, 2),
            ("/", 256, 2),
            ("shot.jpg", 256, 2),
            ("../shot.png", 256, 2),
            ("dir/keep.txt/x.png", 256, 2),
            ("out/shot.png", 256, 4),
        ] {
            let res = r.run(capture(path, size)).await;
            assert_eq!(code(&res), Some(want), "{path} {size}: {res:?}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        // A folder of that name is not replaced.
        fs::create_dir_all(r.volume().join("taken.png")).unwrap();
        assert_eq!(code(&r.run(capture("taken.png", 64)).await), Some(2));
        // The largest picture is still small on the disk, and a second capture replaces it.
        assert!(r.run(capture("big.png", MAX_SIZE)).await.succeeded());
        let len = fs::metadata(r.volume().join("big.png")).unwrap().len();
        assert!(len < 4 << 20, "{len}");
        assert!(r.run(capture("big.png", MIN_SIZE)).await.succeeded());
        assert_eq!(
            decode(&fs::read(r.volume().join("big.png")).unwrap()).0,
            MIN_SIZE
        );
    }

    #[tokio::test]
    async fn a_capture_over_the_tenant_limit_is_refused() {
        let mut r = rig(|_| {});
        let mut limits = r.exec.disk.limits;
        limits.tenant_bytes = 1000;
        r.exec.disk = Arc::new(crate::disk::Disk::open(
            limits,
            r._dir.path(),
            r._dir.path(),
        ));
        let res = r.run(capture("shot.png", 256)).await;
        assert_eq!(code(&res), Some(4), "{res:?}");
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("volume pvc with this picture (0 bytes already in your volumes) is ")
                && m.ends_with("over the limit of 1000 bytes of a tenant's volumes"),
            "{m}"
        );
        assert!(!r.volume().join("shot.png").exists());
    }
}
