//! A fixed pass-prediction workload, shared by `cargo bench` and `orbitdock bench passes`.

use crate::frames::normalize_longitude;
use crate::passes::passes;
use crate::propagate::{PropagationError, Propagator};
use crate::station::GroundStation;
use crate::time::Epoch;
use crate::tle::Tle;

const BENCH_LINE1: &str = "1 58339U 23174BA  24075.25000000  .00008123  00000+0  41234-3 0  9990";
const BENCH_LINE2: &str = "2 58339  97.4019 189.5301 0011234  81.7712 278.4780 15.21943655 34569";

/// A sun-synchronous 500 km satellite and `n` ground stations spread over latitudes from 78°N to
/// 70°S and all longitudes, each with a 5° mask. The crate reads no clock: the caller times
/// [`PassBenchmark::run`].
#[derive(Debug, Clone)]
pub struct PassBenchmark {
    /// The satellite.
    pub propagator: Propagator,
    /// The stations.
    pub stations: Vec<GroundStation>,
    /// The start of the predicted span (the element epoch).
    pub start: Epoch,
}

impl PassBenchmark {
    /// The workload with `stations` stations.
    pub fn new(stations: usize) -> PassBenchmark {
        let tle = Tle::parse(Some("ORBITDOCK-SSO"), BENCH_LINE1, BENCH_LINE2)
            .unwrap_or_else(|e| unreachable!("embedded benchmark tle is valid: {e}"));
        let propagator = Propagator::new(&tle)
            .unwrap_or_else(|e| unreachable!("embedded benchmark tle propagates: {e}"));
        let stations = (0..stations)
            .map(|i| {
                let f = if stations > 1 {
                    i as f64 / (stations - 1) as f64
                } else {
                    0.0
                };
                GroundStation {
                    name: format!("station-{i:02}"),
                    latitude_deg: 78.0 - 148.0 * f,
                    longitude_deg: normalize_longitude(15.0 + 137.5 * i as f64),
                    altitude_m: 100.0,
                    min_elevation_deg: 5.0,
                }
            })
            .collect();
        PassBenchmark {
            propagator,
            stations,
            start: tle.epoch,
        }
    }

    /// Predicts all passes over `days` days (at most the propagator's 30-day limit); returns
    /// the number found.
    pub fn run(&self, days: f64) -> Result<usize, PropagationError> {
        let end = self.start.plus_seconds(days * 86_400.0);
        let mut count = 0;
        for station in &self.stations {
            count += passes(&self.propagator, station, self.start, end)?.len();
        }
        Ok(count)
    }
}
