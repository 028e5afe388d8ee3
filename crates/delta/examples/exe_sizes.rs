//! Sizes of the executable-aware patch of file pairs, each checked by applying it:
//! `cargo run --release -p delta --example exe_sizes -- OLD NEW [OLD NEW…]`.
//! With `DUMP=DIR`, the two rewritten images go to DIR/<n>.old and DIR/<n>.new.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for (i, pair) in args.chunks(2).enumerate() {
        let [old, new] = pair else {
            eprintln!("pairs of files expected");
            std::process::exit(2);
        };
        let (a, b) = (std::fs::read(old).unwrap(), std::fs::read(new).unwrap());
        let t = std::time::Instant::now();
        let p = delta::make_kind(
            delta::Kind::Exe,
            Some(&a),
            &b,
            delta::MakeOptions::default(),
        );
        let dt = t.elapsed();
        let size = match &p {
            Some(p) => {
                let ok = delta::apply(Some(&a), p).map(|r| r == b).unwrap_or(false);
                // Header, version, machine, inner kind, then the side information's length.
                let (mut side, mut shift, mut i) = (0usize, 0, delta::HEADER_LEN + 3);
                while let Some(&b) = p.get(i) {
                    side |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    i += 1;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                format!(
                    "{} (side information {side}; {})",
                    p.len(),
                    if ok { "round-trips" } else { "FAILS" }
                )
            }
            None => "none".into(),
        };
        if let Ok(dir) = std::env::var("DUMP")
            && let Some((o2, n2, m)) = delta::exe::rewritten(&a, &b)
        {
            std::fs::write(format!("{dir}/{i}.old"), o2).unwrap();
            std::fs::write(format!("{dir}/{i}.new"), n2).unwrap();
            eprintln!("map entries: {m}");
        }
        println!("{old} -> {new}: exe {size} in {:.1}s", dt.as_secs_f64());
    }
}
