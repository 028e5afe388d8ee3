//! Stand-ins for the onboard base-image catalogue, for the EM and developers.
//!
//! Nothing can be pulled on a machine that plays the satellite, so [`seed_bases`] builds images
//! under the names of [`wire::catalogue()`] from this host's own files: a distroless-like root
//! (`/etc/passwd` with `nonroot`, `/tmp`), the host's glibc for the `cc` image, and Debian's
//! static busybox. Each is built `FROM scratch` and labelled `org.orbitdock.stand-in=true`, so
//! nobody mistakes it for the real thing. `orbitdock flight seed-bases`, `orbitdock demo` and the
//! tests that need the catalogue use it.
//!
//! What it never does: become part of a flight image (the onboard agent, `flight`, only reports
//! which catalogue images are present); pull an image; replace an image that is already there;
//! talk to Docker other than through the agent's own adapter (`flight::runtime`), so bollard
//! stays in `flight`.
//!
//! Types that matter: [`seed_bases`] and its [`Error`] (with an [`ErrorKind`]).

mod error;
mod seed;

pub use error::{Error, ErrorKind};
pub use seed::seed_bases;
