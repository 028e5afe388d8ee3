//! The patch decoder of `delta` never panics and never allocates beyond its limits, whatever
//! the patch: as given (header checks), and with a valid header around an arbitrary body so
//! that every kind's body decoder is reached (the layers kind with a layer source too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = delta::Limits {
        max_result: 1 << 24,
    };
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let split = (usize::from(sel) * 16).min(rest.len());
    let (old, body) = rest.split_at(split);
    let _ = delta::apply_with(Some(old), body, limits);
    let _ = delta::apply_with(None, body, limits);

    let kind = [
        delta::Kind::Whole,
        delta::Kind::ZstdRef,
        delta::Kind::Bsdiff,
        delta::Kind::Exe,
        delta::Kind::Layers,
    ][usize::from(sel) % 5];
    let header = delta::Header {
        kind,
        base_size: old.len() as u64,
        base_sha256: delta::sha256(old),
        result_size: u64::from(sel) * 997,
        result_sha256: [0; 32],
        body_size: body.len() as u64,
    };
    let mut patch = Vec::new();
    header.write(&mut patch);
    patch.extend_from_slice(body);
    let _ = delta::apply_with(Some(old), &patch, limits);
    // The layers kind with a source that has one layer (the base's bytes) and gives it for
    // any DiffID: the apply checks size and digest.
    let mut source = Source(old.to_vec());
    let _ = delta::apply_with_layers(Some(old), &patch, limits, &mut source);
});

struct Source(Vec<u8>);

impl delta::LayerSource for Source {
    fn layer(&mut self, _: &[u8; 32], _: u64) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}
