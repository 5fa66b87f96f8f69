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

/// Spawns `command` (a `veritrail serve`) with its standard output piped, and returns the
/// guard and a channel that receives every line it prints (drained by a thread, so the child
/// never blocks on a full pipe).
#[allow(dead_code)] // Not every test binary that includes this module starts a server.
pub(crate) fn spawn_lines(
    command: &mut std::process::Command,
) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = ChildGuard(
        command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn veritrail"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The rest of the first line starting with `prefix`, waiting at most `within`.
#[allow(dead_code)]
pub(crate) fn line_after(
    lines: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    within: std::time::Duration,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line starting with {prefix:?} ({e})"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
}

/// Starts `veritrail witness serve` with `key` and `data` on `listen`; the guard and its URL.
#[allow(dead_code)]
pub(crate) fn start_witness(
    key: &std::path::Path,
    data: &std::path::Path,
    listen: &str,
) -> (ChildGuard, String) {
    let (child, lines) = spawn_lines(
        std::process::Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["witness", "serve", "--listen", listen, "--key"])
            .arg(key)
            .arg("--data")
            .arg(data)
            .stderr(std::process::Stdio::null()),
    );
    let url = line_after(
        &lines,
        "veritrail witness listening on ",
        std::time::Duration::from_secs(60),
    );
    (child, url)
}
