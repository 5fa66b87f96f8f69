//! Helpers shared by the real-binary tests.

use std::process::Child;

/// Kills (SIGKILL) and reaps the child when dropped, also when a test fails.
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
