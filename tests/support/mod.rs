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
    start_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["witness", "serve", "--listen", listen, "--key"])
            .arg(key)
            .arg("--data")
            .arg(data),
        "veritrail witness listening on ",
    )
}

/// Spawns `command` (stderr discarded) and waits up to a minute for the line starting with
/// `banner`; the guard and the URL after the banner.
#[allow(dead_code)]
fn start_listening(command: &mut std::process::Command, banner: &str) -> (ChildGuard, String) {
    let (child, lines) = spawn_lines(command.stderr(std::process::Stdio::null()));
    let url = line_after(&lines, banner, std::time::Duration::from_secs(60));
    (child, url)
}

/// A real S3-compatible server (moto) on a loopback port, with one bucket whose objects
/// anyone may read (a bucket website, for the readers of a mirror).
#[allow(dead_code)]
pub(crate) struct S3 {
    _child: ChildGuard,
    /// The `moto_server` that runs it (its venv's `python` has boto3).
    moto: std::path::PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
    /// The bucket.
    pub(crate) bucket: String,
}

#[allow(dead_code)]
impl S3 {
    /// The environment a `veritrail` process needs to reach the bucket with `s3://` URLs.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "veritrail-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "veritrail-test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Sets [`S3::env`] on a command.
    pub(crate) fn configure<'c>(
        &self,
        command: &'c mut std::process::Command,
    ) -> &'c mut std::process::Command {
        for (key, value) in self.env() {
            command.env(key, value);
        }
        command
    }

    /// The Python beside `moto_server` (moto's venv, which has boto3).
    pub(crate) fn python(&self) -> std::path::PathBuf {
        self.moto.with_file_name("python")
    }

    /// The plain-HTTP URL of `prefix` in the bucket, as a reader without credentials sees it.
    pub(crate) fn http_url(&self, prefix: &str) -> String {
        format!("{}/{}/{prefix}/", self.endpoint, self.bucket)
    }
}

/// Where the moto server is: `$VERITRAIL_MOTO_SERVER`, else `moto_server` on the `PATH`, else
/// the venv `.ci/s3.sh` installs under the target directory.
fn moto_server() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("VERITRAIL_MOTO_SERVER") {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let venv =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3-venv/bin/moto_server");
        venv.is_file().then_some(venv)
    })
}

/// Starts moto on a free loopback port and creates a public-read bucket. `None` (with a note
/// on stderr) when moto is not installed and `CI` is not set; in CI a missing moto fails the
/// test, so the S3 tests never silently stop running there.
#[allow(dead_code)]
pub(crate) async fn start_s3(bucket: &str) -> Option<S3> {
    let Some(moto) = moto_server() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is needed for the S3 tests: run `bash .ci/s3.sh` (installs it into \
             target/s3-venv) or set VERITRAIL_MOTO_SERVER"
        );
        eprintln!(
            "moto_server not found: the S3 half of this test did not run (bash .ci/s3.sh installs it)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = ChildGuard(
        std::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match http.put(format!("{endpoint}/{bucket}")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("moto did not create the bucket: {other:?}"),
        }
    }
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::{bucket}/*"]}}]}}"#
    );
    let response = http
        .put(format!("{endpoint}/{bucket}?policy"))
        .header("Content-Type", "application/json")
        .body(policy)
        .send()
        .await
        .expect("set the bucket policy");
    assert!(response.status().is_success(), "{response:?}");
    Some(S3 {
        _child: child,
        moto,
        endpoint,
        bucket: bucket.to_owned(),
    })
}

/// Starts `veritrail serve --no-auth --listen 127.0.0.1:0 <extra> --data <data>`; the guard
/// and its URL.
#[allow(dead_code)]
pub(crate) fn start_serve(data: &std::path::Path, extra: &[&str]) -> (ChildGuard, String) {
    start_listening(
        std::process::Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data")
            .arg(data),
        "veritrail listening on ",
    )
}
