//! Any datagram: opening never panics (with no memory, with a current epoch and candidates, in
//! either header form), and whatever opens decodes to chunks without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{Direction, LinkKey, Opener, ReplayMemory, Sealer, decode_chunks};

fuzz_target!(|data: &[u8]| {
    let key = LinkKey::from_bytes([7; 32]);
    let mut opener = Opener::new(&key, Direction::Up, ReplayMemory::default());
    let _ = opener.open(data);
    // An opener that holds a current epoch and a candidate, so that a short header is tried
    // against both keys.
    let mut memory = ReplayMemory {
        current: Some((1, 0)),
        ..ReplayMemory::default()
    };
    memory.retired[0] = 3;
    let mut known = Opener::new(&key, Direction::Up, memory);
    let _ = known.open(&Sealer::new(&key, Direction::Up, 2).seal(1, b""));
    let _ = known.open(data);
    // Bodies that authenticate: seal the input as a body, in both forms, and decode what comes
    // out.
    let sealer = Sealer::new(&key, Direction::Up, 1);
    for sealed in [sealer.seal(1, data), sealer.seal_short(2, data)] {
        if let Ok(opened) = known.open(&sealed) {
            let _ = decode_chunks(&opened.body);
        }
    }
});
