//! Any datagram: opening never panics, and whatever opens decodes to chunks without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{Direction, LinkKey, Opener, Sealer, decode_chunks};

fuzz_target!(|data: &[u8]| {
    let key = LinkKey::from_bytes([7; 32]);
    let mut opener = Opener::new(&key, Direction::Up, None);
    let _ = opener.open(data);
    // Bodies that authenticate: seal the input as a body and decode what comes out.
    let sealed = Sealer::new(&key, Direction::Up).seal(1, data);
    if let Ok((_, body)) = Opener::new(&key, Direction::Up, None).open(&sealed) {
        let _ = decode_chunks(&body);
    }
});
