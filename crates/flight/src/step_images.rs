//! What a build says it made: the images of its steps, which a failed build's cleanup may
//! remove (see `tasks::quotas`).

/// The images a build said it made, one per step (the classic builder's ` ---> <id>` lines):
/// what its failure may leave dangling. Output is not proof (a `RUN` step prints what it likes),
/// so a failed build's cleanup removes only images that are also dangling and made since it
/// started; this only narrows that set to the build's own, which matters when something else
/// (another agent, a test) builds on the same engine at the same time.
#[derive(Debug, Default)]
pub struct StepImages(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl StepImages {
    /// Notes the image a line of build output names as a step's result, if it does.
    pub fn note(&self, line: &str) {
        let Some(id) = line.trim().strip_prefix("---> ") else {
            return;
        };
        if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_ascii_lowercase());
        }
    }

    /// Whether the image `id` (`sha256:<hex>` or bare hex) was named by one of the lines noted.
    pub fn named(&self, id: &str) -> bool {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        let noted = self.0.lock().unwrap_or_else(|e| e.into_inner());
        noted.iter().any(|short| hex.starts_with(short.as_str()))
    }
}
