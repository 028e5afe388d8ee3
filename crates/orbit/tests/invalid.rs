//! Invalid element sets and impossible queries give clear errors, never a panic.

use orbit::{
    Epoch, GroundStation, PropagationErrorKind, Propagator, PropagatorConfig, Tle, TleErrorKind,
    passes,
};
use proptest::prelude::*;

const L1: &str = "1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994";
const L2: &str = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214";

/// A very low orbit with an enormous drag term: SGP4 gives up within days.
const DECAYING: [&str; 2] = [
    "1 99991U 24001A   24075.50000000  .01234567  00000+0  20000-1 0  9997",
    "2 99991  51.6000 100.0000 0012000  90.0000 270.0000 16.35000000  1234",
];
/// Mean motion 17.5 rev/day: the semi-major axis is inside the Earth.
const SUBORBITAL: [&str; 2] = [
    "1 99992U 24001B   24075.50000000  .00000000  00000+0  10000-3 0  9991",
    "2 99992  51.6000 100.0000 0010000  90.0000 270.0000 17.50000000    16",
];

fn check_parse_error(line1: &str, line2: &str, kind: TleErrorKind, message: &str) {
    let e = Tle::parse(None, line1, line2).unwrap_err();
    assert_eq!((e.kind(), e.to_string().as_str()), (kind, message));
}

#[test]
fn malformed_lines() {
    check_parse_error(
        &format!("{}3", &L1[..68]),
        L2,
        TleErrorKind::BadChecksum {
            expected: 4,
            found: 3,
        },
        "tle line 1, column 69: checksum is 3, the line sums to 4",
    );
    check_parse_error(
        L1,
        &L2[..68],
        TleErrorKind::BadLength { len: 68 },
        "tle line 2: expected 69 characters, found 68",
    );
    check_parse_error(
        L1,
        &format!("{L2}0"),
        TleErrorKind::BadLength { len: 70 },
        "tle line 2: expected 69 characters, found 70",
    );
    check_parse_error(
        L2,
        L1,
        TleErrorKind::BadLineNumber,
        "tle line 1: expected line number 1 in column 1, found '2'",
    );
    check_parse_error(
        L1,
        "2 25545  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445215",
        TleErrorKind::MismatchedCatalogNumber,
        "tle line 2: catalog number \"25545\" differs from line 1's \"25544\"",
    );
    check_parse_error(
        L1,
        "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.5037757x445215",
        TleErrorKind::BadField { column: 53 },
        "tle line 2, column 53: mean motion: expected a decimal number, found \"15.5037757x\"",
    );
}

#[test]
fn decayed_orbits() {
    let tle = Tle::parse(Some("DECAYING"), DECAYING[0], DECAYING[1]).unwrap();
    let sat = Propagator::new(&tle).unwrap();
    assert!(sat.state_teme(tle.epoch).is_ok());
    let e = sat
        .state_teme(tle.epoch.plus_seconds(20.0 * 86_400.0))
        .unwrap_err();
    assert_eq!(e.kind(), PropagationErrorKind::Decayed);
    assert!(
        e.to_string().starts_with(
            "satellite 99991 (DECAYING): orbit decayed 20.00 days after the element epoch"
        ),
        "{e}"
    );
    // Pass prediction over a span that reaches the decay reports it.
    let station = GroundStation {
        name: "gs".into(),
        latitude_deg: 40.0,
        longitude_deg: 0.0,
        altitude_m: 0.0,
        min_elevation_deg: 5.0,
    };
    let e = passes(
        &sat,
        &station,
        tle.epoch,
        tle.epoch.plus_seconds(20.0 * 86_400.0),
    )
    .unwrap_err();
    assert_eq!(e.kind(), PropagationErrorKind::Decayed);

    let tle = Tle::parse(None, SUBORBITAL[0], SUBORBITAL[1]).unwrap();
    let e = Propagator::new(&tle).unwrap_err();
    assert_eq!(e.kind(), PropagationErrorKind::Decayed);
    assert!(e.to_string().contains("sub-orbital"), "{e}");
}

#[test]
fn query_far_from_the_epoch() {
    let tle = Tle::parse(None, L1, L2).unwrap();
    let sat = Propagator::new(&tle).unwrap();
    let late = tle.epoch.plus_seconds(31.0 * 86_400.0);
    let e = sat.state_teme(late).unwrap_err();
    assert_eq!(e.kind(), PropagationErrorKind::EpochTooFar);
    assert_eq!(
        e.to_string(),
        "satellite 25544: query time 2024-04-15T12:00:00.000Z is 31.0 days from the element \
         epoch 2024-03-15T12:00:00.000Z (limit 30.0 days)"
    );
    assert_eq!(
        sat.state_teme(tle.epoch.plus_seconds(-31.0 * 86_400.0))
            .unwrap_err()
            .kind(),
        PropagationErrorKind::EpochTooFar
    );
    assert_eq!(
        sat.state_teme(Epoch::from_unix_seconds(f64::NAN))
            .unwrap_err()
            .kind(),
        PropagationErrorKind::EpochTooFar
    );
    let lenient = Propagator::with_config(
        &tle,
        PropagatorConfig {
            max_epoch_distance_days: 60.0,
        },
    )
    .unwrap();
    assert!(lenient.state_teme(late).is_ok());
}

/// Valid lines with one character replaced and the checksum repaired, so the parser gets past
/// its first checks and the propagator sees odd but well-formed values.
fn mutated_line(line: &'static str) -> impl Strategy<Value = String> {
    (1usize..68, 0x20u8..0x7f).prop_map(move |(col, c)| {
        let mut b = line.as_bytes().to_vec();
        b[col] = c;
        let sum: u32 = b[..68]
            .iter()
            .map(|&x| match x {
                b'0'..=b'9' => u32::from(x - b'0'),
                b'-' => 1,
                _ => 0,
            })
            .sum();
        b[68] = b'0' + (sum % 10) as u8;
        String::from_utf8(b).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_line_pair_never_panics(line1 in any::<String>(), line2 in any::<String>()) {
        let _ = Tle::parse(None, &line1, &line2);
        let _ = orbit::parse_tle_text(&format!("{line1}\n{line2}"));
        let _ = orbit::parse_omm_json(&line1);
    }

    #[test]
    fn printable_lines_of_the_right_length_never_panic(
        line1 in "[ -~]{69}",
        line2 in "[ -~]{69}",
    ) {
        let _ = Tle::parse(Some("X"), &line1, &line2);
    }

    #[test]
    fn near_valid_sets_never_panic_anywhere(
        line1 in mutated_line(L1),
        line2 in mutated_line(L2),
        hours in -800.0f64..800.0,
    ) {
        if let Ok(tle) = Tle::parse(None, &line1, &line2)
            && let Ok(sat) = Propagator::new(&tle)
        {
            let t = tle.epoch.plus_seconds(hours * 3600.0);
            let _ = sat.state_ecef(t);
            let _ = orbit::eclipses(&sat, t, t.plus_seconds(3600.0));
        }
    }
}
