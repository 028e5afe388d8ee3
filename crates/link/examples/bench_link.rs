//! Prints the link benchmark table (also `orbitdock bench link`).
fn main() {
    print!("{}", link::bench::table(1));
}
