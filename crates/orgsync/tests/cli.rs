//! End-to-end tests of the built `orgsync` binary on the protocol reference's vectors.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use feishu::crypto;
use feishu::vectors::*;

fn orgsync(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
    cmd.args(args)
        .env_remove("ORGSYNC_ENCRYPT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A usage error exits before reading stdin: a broken pipe here is that, not a failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn decrypt_reads_the_raw_http_body() {
    let body = crypto::encrypted_body(WORKED_ENCRYPT);
    let out = orgsync(
        &[
            "event",
            "decrypt",
            "--encrypt-key",
            WORKED_KEY,
            "--show-token",
        ],
        &[],
        body.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{WORKED_PLAINTEXT}\n"));
}

/// The Verification Token is a secret and the output gets shared: it shows as "***" unless
/// asked for, and everything else stays exactly as Feishu sent it.
#[test]
fn decrypt_masks_the_verification_token_unless_asked() {
    let cases = [
        (WORKED_ENCRYPT, WORKED_PLAINTEXT, WORKED_VERIFICATION_TOKEN),
        (
            WORKED_URL_VERIFICATION_ENCRYPT,
            WORKED_URL_VERIFICATION_PLAINTEXT,
            WORKED_VERIFICATION_TOKEN,
        ),
    ];
    for (ciphertext, plaintext, token) in cases {
        let out = orgsync(
            &["event", "decrypt", "--encrypt-key", WORKED_KEY],
            &[],
            ciphertext.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stdout(&out).contains(token), "{}", stdout(&out));
        assert_eq!(
            stdout(&out),
            format!(
                "{}\n",
                plaintext.replace(&format!("\"{token}\""), "\"***\"")
            )
        );
        assert!(stderr(&out).contains("--show-token"), "{}", stderr(&out));
        let pretty = orgsync(
            &["event", "decrypt", "--encrypt-key", WORKED_KEY, "--pretty"],
            &[],
            ciphertext.as_bytes(),
        );
        assert!(!stdout(&pretty).contains(token), "{}", stdout(&pretty));
        assert!(stdout(&pretty).contains("\"***\""), "{}", stdout(&pretty));
    }
}

#[test]
fn decrypt_reads_the_bare_base64_value_of_every_vector() {
    for (key, ciphertext, plain) in [
        (A_KEY, A_CIPHERTEXT, A_PLAINTEXT),
        (B_KEY, B_CIPHERTEXT, B_PLAINTEXT),
        (C_KEY, C_CIPHERTEXT, C_PLAINTEXT),
        (D_KEY, D_CIPHERTEXT, D_PLAINTEXT),
        (
            WORKED_KEY,
            WORKED_URL_VERIFICATION_ENCRYPT,
            WORKED_URL_VERIFICATION_PLAINTEXT,
        ),
    ] {
        let input = format!("{ciphertext}\n");
        let out = orgsync(
            &["event", "decrypt", "--encrypt-key", key, "--show-token"],
            &[],
            input.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{plain}\n"));
    }
}

#[test]
fn decrypt_takes_the_key_from_the_environment_and_accepts_wrapped_base64() {
    let wrapped: String = WORKED_ENCRYPT
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let out = orgsync(
        &["event", "decrypt", "--pretty", "--show-token"],
        &[("ORGSYNC_ENCRYPT_KEY", WORKED_KEY)],
        wrapped.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let expected: serde_json::Value = serde_json::from_str(WORKED_PLAINTEXT).unwrap();
    assert_eq!(printed, expected);
    assert!(stdout(&out).contains("\n  \"header\""), "pretty-printed");
}

#[test]
fn decrypt_bad_input_is_a_clear_error_with_exit_code_2() {
    let cases: [(&[&str], &str, &str); 6] = [
        (&["--encrypt-key", "k"], "%%% not base64", "base64"),
        (&["--encrypt-key", "k"], "", "stdin is empty"),
        (
            &["--encrypt-key", "k"],
            r#"{"schema":"2.0"}"#,
            "no \"encrypt\" field",
        ),
        (&["--encrypt-key", "k"], "{not json", "does not parse"),
        (
            &["--encrypt-key", "wrong key"],
            WORKED_ENCRYPT,
            "Encrypt Key",
        ),
        (
            &["--encrypt-key", "k"],
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "16-byte",
        ),
    ];
    for (flags, input, needle) in cases {
        let mut args = vec!["event", "decrypt"];
        args.extend_from_slice(flags);
        let out = orgsync(&args, &[], input.as_bytes());
        assert_eq!(out.status.code(), Some(2), "input {input:?}");
        assert!(
            stderr(&out).contains(needle),
            "input {input:?}: stderr {:?} lacks {needle:?}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
    // No key at all is a usage error.
    let out = orgsync(&["event", "decrypt"], &[], WORKED_ENCRYPT.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--encrypt-key"));
}

fn verify(key: Option<&str>, ts: &str, nonce: &str, sig: &str, body: &[u8]) -> Output {
    let mut args = vec![
        "event",
        "verify",
        "--timestamp",
        ts,
        "--nonce",
        nonce,
        "--signature",
        sig,
    ];
    if let Some(key) = key {
        args.extend(["--encrypt-key", key]);
    }
    orgsync(&args, &[], body)
}

#[test]
fn verify_accepts_every_signature_vector() {
    let encrypted = crypto::encrypted_body(WORKED_ENCRYPT);
    // (key, timestamp, nonce, signature, body)
    type Case<'a> = (Option<&'a str>, &'a str, &'a str, &'a str, &'a [u8]);
    let cases: [Case; 4] = [
        (
            Some(WORKED_KEY),
            WORKED_TIMESTAMP,
            WORKED_NONCE,
            WORKED_SIGNATURE_ENCRYPTED,
            encrypted.as_bytes(),
        ),
        (
            None,
            WORKED_TIMESTAMP,
            WORKED_NONCE,
            WORKED_SIGNATURE_PLAINTEXT,
            WORKED_PLAINTEXT.as_bytes(),
        ),
        (
            Some(""),
            REAL_TRAFFIC_TIMESTAMP,
            REAL_TRAFFIC_NONCE,
            REAL_TRAFFIC_SIGNATURE,
            REAL_TRAFFIC_BODY.as_bytes(),
        ),
        (
            Some(B_KEY),
            GO_SDK_SIGNATURE_TIMESTAMP,
            GO_SDK_SIGNATURE_NONCE,
            GO_SDK_SIGNATURE,
            B_PLAINTEXT.as_bytes(),
        ),
    ];
    for (i, (key, ts, nonce, sig, body)) in cases.into_iter().enumerate() {
        let out = verify(key, ts, nonce, sig, body);
        assert_eq!(out.status.code(), Some(0), "case {i}: {}", stdout(&out));
        assert!(stdout(&out).starts_with("signature valid"));
    }
}

#[test]
fn verify_takes_the_key_from_the_environment() {
    let encrypted = crypto::encrypted_body(WORKED_ENCRYPT);
    let out = orgsync(
        &[
            "event",
            "verify",
            "--timestamp",
            WORKED_TIMESTAMP,
            "--nonce",
            WORKED_NONCE,
            "--signature",
            WORKED_SIGNATURE_ENCRYPTED,
        ],
        &[("ORGSYNC_ENCRYPT_KEY", WORKED_KEY)],
        encrypted.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn verify_rejects_tampering_with_exit_code_1() {
    let encrypted = crypto::encrypted_body(WORKED_ENCRYPT);
    let tampered = encrypted.replacen("AAEC", "AAED", 1);
    let out = verify(
        Some(WORKED_KEY),
        WORKED_TIMESTAMP,
        WORKED_NONCE,
        WORKED_SIGNATURE_ENCRYPTED,
        tampered.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("INVALID"));
    assert!(stdout(&out).contains("expected "));
    // Wrong nonce, wrong key.
    for (key, nonce) in [(WORKED_KEY, "123456780"), ("feishu-test-kez", WORKED_NONCE)] {
        let out = verify(
            Some(key),
            WORKED_TIMESTAMP,
            nonce,
            WORKED_SIGNATURE_ENCRYPTED,
            encrypted.as_bytes(),
        );
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn verify_forgives_the_newline_a_shell_adds() {
    let body = format!("{}\n", crypto::encrypted_body(WORKED_ENCRYPT));
    let out = verify(
        Some(WORKED_KEY),
        WORKED_TIMESTAMP,
        WORKED_NONCE,
        WORKED_SIGNATURE_ENCRYPTED,
        body.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("trailing newline"));
}

#[test]
fn verify_bad_usage_is_exit_code_2() {
    let out = verify(Some("k"), "1", "2", "not-hex", b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("64 hex digits"));
    let out = orgsync(
        &[
            "event",
            "verify",
            "--timestamp",
            "1",
            "--signature",
            REAL_TRAFFIC_SIGNATURE,
        ],
        &[],
        b"{}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--nonce"));
}

/// A plain HTTP/1.1 request over std's TCP with an optional bearer token and JSON body: the
/// status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.unwrap_or("").as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {out}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A plain HTTP/1.1 GET over std's TCP, so the CLI tests need no async client.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn emulator_serves_a_generated_tenant_and_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "300",
            "--departments",
            "20",
            "--seed",
            "7",
            "--app-id",
            "cli_clitest000000001",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains("App ID:             cli_clitest000000001"),
        "{banner}"
    );
    assert!(banner.contains("300 users"), "{banner}");
    assert!(banner.contains("App Secret:"), "{banner}");
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("Feishu emulator listening on http://"))
        .unwrap()
        .to_owned();

    let summary = http_get(&base, "/_emulator");
    assert!(summary.starts_with("HTTP/1.1 200"), "{summary}");
    assert!(summary.contains(r#""users":300"#), "{summary}");
    // The Open API answers Feishu's way without a token.
    let denied = http_get(
        &base,
        "/open-apis/contact/v3/users/find_by_department?department_id=0",
    );
    assert!(denied.contains("99991661"), "{denied}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest, vec!["stopping".to_owned()]);
}

#[test]
fn emulator_refuses_bad_flags() {
    let out = orgsync(
        &["emulator", "--app-id", "nope", "--listen", "127.0.0.1:0"],
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cli_"), "{}", stderr(&out));
    let out = orgsync(&["emulator", "--users", "many"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
}

// ---- serve, demo, import -------------------------------------------------------------------

/// A running `orgsync` child whose stdout lines arrive on a channel (read by a thread, so a
/// test can wait with a timeout), killed on drop if still running.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], cwd: &std::path::Path, env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        cmd.args(args);
        Self::spawn(cmd, cwd, env)
    }

    /// [`Running::start`] with the process's umask set first (as a shell would leave it).
    fn start_with_umask(
        umask: &str,
        args: &[&str],
        cwd: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Running {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_orgsync"))
            .args(args);
        Self::spawn(cmd, cwd, env)
    }

    fn spawn(mut cmd: Command, cwd: &std::path::Path, env: &[(&str, &str)]) -> Running {
        cmd.current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("ORGSYNC_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line `pred` accepts; panics with everything seen after `timeout`.
    fn wait_for(&mut self, timeout: std::time::Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "no expected line within {timeout:?}; stdout:\n{}\nstderr:\n{err}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// SIGTERM, then the exit code (within `timeout`) and stderr.
    fn terminate(mut self, timeout: std::time::Duration) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        (code, err)
    }
}

impl Running {
    /// `kill -9`: the process gets no chance to finish anything.
    fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SECS: fn(u64) -> std::time::Duration = std::time::Duration::from_secs;

/// The count written before `word` in a demo line: `1,940` in `…, 1,940 active; …`.
fn count_of(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find_map(|pair| {
        let after = pair[1].trim_end_matches([',', ';', ')', ':']);
        let number = pair[0].trim_start_matches('(').replace(',', "");
        (after == word).then(|| number.parse().ok()).flatten()
    })
}

/// The line with every number (`1,940`) replaced by `N`: what the demo's lines look like.
fn shape_of(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == ',' && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            out.push('N');
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn demo_imports_applies_pushed_events_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Running::start(
        &[
            "demo",
            "--users",
            "1100",
            "--change-every",
            "1",
            "--port",
            "0",
            "--seed",
            "3",
            "--webhook-echo",
            "--ldap-port",
            "0",
        ],
        dir.path(),
        &[],
    );
    let url = demo.wait_for(SECS(60), |l| l.starts_with("orgsync: http://"));
    let addr = url.trim_start_matches("orgsync: http://").to_owned();
    let imported = demo.wait_for(SECS(180), |l| l.starts_with("import finished:"));
    assert_eq!(
        shape_of(&imported),
        "import finished: N users (N active), N departments, N groups; verdict complete in N.N s",
        "{imported}"
    );
    assert!(count_of(&imported, "users").unwrap() > 1000, "{imported}");
    assert!(imported.contains(" 1,"), "thousands separators: {imported}");
    let status = demo.wait_for(SECS(60), |l| {
        l.starts_with("status:") && count_of(l, "applied").is_some_and(|n| n >= 1)
    });
    // "status: 1,100 users, 1,072 active; 121 departments; 12 groups; events: …"
    let shape = shape_of(&status);
    let shape = if shape.ends_with(" change") {
        shape + "s"
    } else {
        shape
    };
    assert_eq!(
        shape,
        "status: N users, N active; N departments; N groups; events: N pushed, N applied; N changes",
        "{status}"
    );
    let users = count_of(&status, "users").unwrap();
    let active = count_of(&status, "active").unwrap();
    assert!(users > 1000 && active > 900 && active <= users, "{status}");
    assert!(
        status.starts_with("status: 1,"),
        "thousands separators: {status}"
    );
    assert!(count_of(&status, "departments").unwrap() > 1, "{status}");
    assert!(count_of(&status, "groups").unwrap() >= 1, "{status}");
    assert!(count_of(&status, "pushed").unwrap() >= 1, "{status}");
    // The change feed pushed to the echo, which checked each signature.
    let echoed = demo.wait_for(SECS(60), |l| l.starts_with("  webhook: "));
    assert!(echoed.contains("signature verified"), "{echoed}");
    let banner = demo.seen.join("\n");
    assert!(
        banner.contains("Bearer osc_"),
        "the feed's curl line: {banner}"
    );
    assert!(banner.contains("/events?after="), "{banner}");
    assert!(
        banner.contains("webhook echo: http://127.0.0.1:"),
        "{banner}"
    );
    assert!(banner.contains("/console"), "{banner}");
    assert!(banner.contains("admin token: osat_"), "{banner}");
    assert!(banner.contains("URL check: passed"), "{banner}");
    // The printed ldapsearch line works as printed (Debian's ldap-utils; scripts/test.sh
    // installs it).
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with("ldapsearch "))
        .unwrap_or_else(|| panic!("no ldapsearch line: {banner}"));
    if std::process::Command::new("ldapsearch")
        .arg("-VV")
        .output()
        .is_ok()
    {
        let out = std::process::Command::new("sh")
            .args(["-c", line.trim()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{line}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let people = text.lines().filter(|l| l.starts_with("dn: uid=")).count();
        assert!(people > 900, "{people} people from {line}");
        // And the person's login with its app password.
        let line = banner
            .lines()
            .find(|l| l.trim_start().starts_with("ldapwhoami "))
            .unwrap_or_else(|| panic!("no ldapwhoami line: {banner}"));
        let out = std::process::Command::new("sh")
            .args(["-c", line.trim()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("dn:uid="),
            "{line}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(std::env::var("CI").is_err(), "ldapsearch is missing in CI");
    }

    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("orgsync_events_accepted_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orgsync_apply_lag_seconds_bucket"),
        "{metrics}"
    );
    for name in [
        "orgsync_feed_events_appended_total",
        "orgsync_webhook_deliveries_total",
        "orgsync_webhook_lag_events",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }
    let ready = http_get(&addr, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#""worker":"running""#), "{ready}");

    let (code, err) = demo.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
}

fn start_serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Running, String, Vec<String>) {
    let mut env = env.to_vec();
    env.push(("ORGSYNC_LISTEN", "127.0.0.1:0"));
    let mut serve = Running::start(&["serve"], dir, &env);
    let line = serve.wait_for(SECS(60), |l| l.starts_with("orgsync listening on http://"));
    let addr = line
        .trim_start_matches("orgsync listening on http://")
        .to_owned();
    let before = serve.seen.clone();
    (serve, addr, before)
}

#[test]
fn serve_prints_the_admin_token_once_answers_health_and_stops_on_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (serve, addr, banner) = start_serve(dir.path(), &[]);
    let token = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("osat_"))
        .map(|t| format!("osat_{t}"))
        .unwrap_or_else(|| panic!("no token printed: {banner:?}"));
    let health = http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#"{"status":"ok"}"#), "{health}");
    let ready = http_get(&addr, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");

    // What the data directory holds: the key (0600), the token's hash only, the database.
    let data = dir.path().join("orgsync-data");
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(mode("admin-token.sha256"), 0o600);
    let hash = std::fs::read_to_string(data.join("admin-token.sha256")).unwrap();
    assert!(!hash.contains(&token));
    assert_eq!(hash.trim().len(), 64);
    assert!(data.join("orgsync.db").exists());

    // Restarted: the same key and token hash, no token printed; JSON logs on request.
    let (serve, addr, banner) = start_serve(dir.path(), &[("ORGSYNC_LOG_FORMAT", "json")]);
    assert!(
        !banner.iter().any(|l| l.contains("osat_")),
        "token printed again: {banner:?}"
    );
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert_eq!(
        std::fs::read_to_string(data.join("admin-token.sha256")).unwrap(),
        hash
    );
}

#[test]
fn serve_config_errors_name_the_key_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        cmd.arg("serve").current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("ORGSYNC_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let out = run(&[("ORGSYNC_LISTEN", "localhost")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("listen (ORGSYNC_LISTEN)"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        ("ORGSYNC_LISTEN", "127.0.0.1:0"),
        ("ORGSYNC_MASTER_KEY", "short"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ORGSYNC_MASTER_KEY"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("32 bytes"), "{}", stderr(&out));

    let key = dir.path().join("key");
    std::fs::write(&key, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&[
        ("ORGSYNC_LISTEN", "127.0.0.1:0"),
        ("ORGSYNC_MASTER_KEY_FILE", key.to_str().unwrap()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    let out = run(&[
        ("ORGSYNC_LISTEN", "127.0.0.1:0"),
        (
            "ORGSYNC_DATABASE_URL",
            "postgres://nobody:pw@127.0.0.1:1/none",
        ),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("database_url (ORGSYNC_DATABASE_URL)"), "{err}");
    assert!(!err.contains(":pw@"), "password shown: {err}");

    std::fs::write(dir.path().join("orgsync.toml"), "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("orgsync.toml"), "{}", stderr(&out));
}

#[test]
fn import_runs_a_job_with_progress_and_exit_codes_by_verdict() {
    use directory::admin::{Admin, NewConnection};
    use directory::engine::{Engine, EngineConfig};
    use directory::secrets::MasterKey;

    let dir = tempfile::tempdir().unwrap();
    let mut emu = Running::start(
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "60",
            "--departments",
            "8",
            "--rate-limit-scale",
            "0",
            "--app-id",
            "cli_importtest000001",
            "--app-secret",
            "import-test-secret",
        ],
        dir.path(),
        &[],
    );
    let line = emu.wait_for(SECS(60), |l| l.starts_with("Feishu emulator listening on "));
    let base = line
        .trim_start_matches("Feishu emulator listening on ")
        .to_owned();
    emu.wait_for(SECS(10), |l| l.starts_with("Press Ctrl-C"));

    // The database `orgsync serve` would use, with a pool and two connections in it.
    let data = dir.path().join("orgsync-data");
    std::fs::create_dir_all(&data).unwrap();
    let (key, key_text) = MasterKey::generate();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pool, good, bad) = runtime.block_on(async {
        let store = store::open(data.join("orgsync.db").to_str().unwrap())
            .await
            .unwrap();
        let admin = Admin::new(
            Engine::new(store, key, EngineConfig::default()),
            None,
            "http://127.0.0.1:8080".into(),
        );
        let pool = admin.create_pool("CLI").await.unwrap();
        let connection = |identifier: &str, secret: &str| NewConnection {
            identifier: identifier.into(),
            display_name: None,
            provider: None,
            base_url: Some(base.clone()),
            app_id: "cli_importtest000001".into(),
            app_secret: secret.into(),
            encrypt_key: None,
            verification_token: None,
            settings: None,
        };
        let good = admin
            .create_connection(&pool.id, connection("feishu", "import-test-secret"))
            .await
            .unwrap();
        let bad = admin
            .create_connection(&pool.id, connection("wrong-secret", "not-the-secret"))
            .await
            .unwrap();
        (pool.id, good.id, bad.id)
    });
    drop(runtime);
    let env = [
        ("ORGSYNC_DATA_DIR", data.to_str().unwrap()),
        ("ORGSYNC_MASTER_KEY", key_text.as_str()),
    ];
    let import = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
        cmd.arg("import").args(args).current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("ORGSYNC_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    };

    let out = import(&["--connection", &format!("{pool}/feishu")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("verdict: complete"), "{text}");
    assert!(text.contains("CreateUser"), "{text}");
    assert!(text.contains("applied"), "{text}");

    // By id, as a reconciliation: nothing changed.
    let out = import(&["--connection", good.as_str(), "--reconcile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Reconciliation finished"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("CreateUser"), "{}", stdout(&out));

    // Bad credentials: the job fails with the reason; exit 1.
    let out = import(&["--connection", bad.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("verdict: failed"), "{}", stdout(&out));

    // Usage errors: exit 2.
    let out = import(&["--connection", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("orgsync connections"),
        "{}",
        stderr(&out)
    );
    let out = import(&[]);
    assert_eq!(out.status.code(), Some(2));

    // The listings.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgsync"));
    let out = cmd
        .arg("connections")
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("/connections/enterprise/feishu/{pool}/events")),
        "{}",
        stdout(&out)
    );
    drop(emu);
}

// ---- private files ---------------------------------------------------------------------------

/// The permission bits of a path.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` (recursively) with its mode.
fn modes_below(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(modes_below(&path));
        } else {
            out.push((path.display().to_string(), mode(&path)));
        }
    }
    out
}

/// `orgsync serve` started from a shell with the usual umask 022.
fn start_serve_umask_022(dir: &std::path::Path) -> (Running, String) {
    let mut serve =
        Running::start_with_umask("022", &["serve"], dir, &[("ORGSYNC_LISTEN", "127.0.0.1:0")]);
    let line = serve.wait_for(SECS(60), |l| l.starts_with("orgsync listening on http://"));
    let addr = line
        .trim_start_matches("orgsync listening on http://")
        .to_owned();
    (serve, addr)
}

#[test]
fn serve_keeps_its_data_directory_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, addr) = start_serve_umask_022(dir.path());
    // The store answers (its migrations wrote the WAL).
    let (status, _) = http(&addr, "GET", "/readyz", None, None);
    assert_eq!(status, 200);
    let data = dir.path().join("orgsync-data");
    assert_eq!(mode(&data), 0o700);
    let files = modes_below(&data);
    for name in [
        "orgsync.db",
        "orgsync.db-wal",
        "orgsync.db-shm",
        "master.key",
        "admin-token.sha256",
        "instance-id",
    ] {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(&format!("/{name}"))),
            "{name} missing: {files:?}"
        );
    }
    let open: Vec<_> = files.iter().filter(|(_, m)| *m != 0o600).collect();
    assert!(open.is_empty(), "not 0600 while serving: {open:?}");
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    let open: Vec<_> = modes_below(&data)
        .into_iter()
        .filter(|(_, m)| *m != 0o600)
        .collect();
    assert!(open.is_empty(), "not 0600 after a stop: {open:?}");
    // Nothing was found to tighten.
    assert!(!err.contains("let other users read it"), "{err}");

    // The instance id survives the restart.
    let id = std::fs::read_to_string(data.join("instance-id")).unwrap();
    let (serve, _) = start_serve_umask_022(dir.path());
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("instance-id")).unwrap(),
        id
    );
    assert!(err.contains(id.trim()), "the instance is logged: {err}");
}

#[test]
fn serve_tightens_a_data_directory_it_finds_open_and_says_which_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (serve, _) = start_serve_umask_022(dir.path());
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    // As an older release (or a restored backup) left it.
    let data = dir.path().join("orgsync-data");
    let set = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(&data, 0o755);
    for name in ["orgsync.db", "master.key", "instance-id"] {
        set(&data.join(name), 0o644);
    }
    std::fs::write(data.join("notes.txt"), "backup of 2026-01-01").unwrap();
    set(&data.join("notes.txt"), 0o664);

    let (serve, addr) = start_serve_umask_022(dir.path());
    assert_eq!(http(&addr, "GET", "/readyz", None, None).0, 200);
    assert_eq!(mode(&data), 0o700);
    let open: Vec<_> = modes_below(&data)
        .into_iter()
        .filter(|(_, m)| *m != 0o600)
        .collect();
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(mode(&data.join("orgsync.db-wal")), 0o600);
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    // Paths as configured (data_dir defaults to ./orgsync-data).
    for (path, old, new) in [
        ("orgsync-data", "0755", "0700"),
        ("orgsync-data/orgsync.db", "0644", "0600"),
        ("orgsync-data/master.key", "0644", "0600"),
        ("orgsync-data/instance-id", "0644", "0600"),
        ("orgsync-data/notes.txt", "0664", "0600"),
    ] {
        let line = format!("{path}: mode {old} let other users read it; changed to {new}");
        assert!(err.contains(&line), "no line {line:?} in:\n{err}");
    }
}

// ---- a job killed with its process -----------------------------------------------------------

/// `orgsync emulator` with a generated tenant of `users` and `departments` and one app, its
/// rate limits off: the process and its base URL.
fn start_emulator(
    dir: &std::path::Path,
    users: &str,
    departments: &str,
    app_id: &str,
    app_secret: &str,
) -> (Running, String) {
    let mut emu = Running::start(
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--users",
            users,
            "--departments",
            departments,
            "--rate-limit-scale",
            "0",
            "--app-id",
            app_id,
            "--app-secret",
            app_secret,
        ],
        dir,
        &[],
    );
    let line = emu.wait_for(SECS(60), |l| l.starts_with("Feishu emulator listening on "));
    let base = line
        .trim_start_matches("Feishu emulator listening on ")
        .to_owned();
    emu.wait_for(SECS(10), |l| l.starts_with("Press Ctrl-C"));
    (emu, base)
}

/// A call of serve's admin API at `addr` with `token`: the status and the JSON answer.
fn admin_api(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, method, &format!("/api/v1{path}"), Some(token), body);
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {status} {body} ({e})"));
    (status, json)
}

/// A pool named `name` with a connection to the emulator's app: their ids.
fn pool_with_connection(
    api: impl Fn(&str, &str, Option<&str>) -> (u16, serde_json::Value),
    name: &str,
    base: &str,
    app_id: &str,
    app_secret: &str,
) -> (String, String) {
    let (status, pool) = api(
        "POST",
        "/pools",
        Some(&serde_json::json!({ "name": name }).to_string()),
    );
    assert_eq!(status, 201, "{pool}");
    let pool = pool["id"].as_str().unwrap().to_owned();
    let (status, connection) = api(
        "POST",
        &format!("/pools/{pool}/connections"),
        Some(
            &serde_json::json!({
                "identifier": "feishu",
                "app_id": app_id,
                "app_secret": app_secret,
                "base_url": base,
            })
            .to_string(),
        ),
    );
    assert_eq!(status, 201, "{connection}");
    (pool, connection["id"].as_str().unwrap().to_owned())
}

/// Calls `look` every `every` until it gives a value; after `timeout`, panics with the last
/// thing `look` saw (`Err`).
fn poll_until<T, E: std::fmt::Debug>(
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut look: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match look() {
            Ok(value) => return value,
            Err(last) => assert!(
                std::time::Instant::now() < deadline,
                "not within {timeout:?}: {last:?}"
            ),
        }
        std::thread::sleep(every);
    }
}

/// Polls job `job` until it is finished (at most a minute): its last state.
fn finished_job(
    api: impl Fn(&str, &str, Option<&str>) -> (u16, serde_json::Value),
    job: &str,
) -> serde_json::Value {
    poll_until(SECS(60), std::time::Duration::from_millis(100), || {
        let (_, j) = api("GET", &format!("/jobs/{job}"), None);
        if j["state"] == "finished" {
            Ok(j)
        } else {
            Err(j)
        }
    })
}

#[test]
fn a_job_killed_with_serve_ends_failed_at_restart_and_a_new_one_starts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, base) = start_emulator(
        dir.path(),
        "60",
        "8",
        "cli_killtest00000001",
        "kill-test-secret",
    );
    let emu_addr = base.trim_start_matches("http://").to_owned();

    const TOKEN: &str = "kill-test-admin-token-0123456789";
    let env = [("ORGSYNC_ADMIN_TOKEN", TOKEN)];
    let (serve, addr, _) = start_serve(dir.path(), &env);
    let api = |addr: &str, method: &str, path: &str, body: Option<&str>| {
        admin_api(addr, TOKEN, method, path, body)
    };
    let (_, connection) = pool_with_connection(
        |m, p, b| api(&addr, m, p, b),
        "Kill",
        &base,
        "cli_killtest00000001",
        "kill-test-secret",
    );

    // Feishu answers the scope read after a minute: the import is in flight when serve dies.
    let slow = r#"{"latency_rate":1.0,"latency_min":{"secs":60,"nanos":0},"latency_max":{"secs":60,"nanos":0},"endpoints":["contact/v3/scopes"]}"#;
    assert_eq!(
        http(&emu_addr, "PUT", "/_emulator/faults", None, Some(slow)).0,
        200
    );
    let jobs = format!("/connections/{connection}/jobs");
    let (status, job) = api(&addr, "POST", &jobs, Some(r#"{"kind":"import"}"#));
    assert_eq!(status, 202, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, running) = api(&addr, "GET", &format!("/jobs/{job}"), None);
    assert_eq!(running["state"], "running", "{running}");
    serve.kill_hard();

    // Restarted: the job is failed with the reason, and the connection takes a job at once.
    assert_eq!(
        http(&emu_addr, "PUT", "/_emulator/faults", None, Some("{}")).0,
        200
    );
    let (serve, addr, _) = start_serve(dir.path(), &env);
    let (_, ended) = api(&addr, "GET", &format!("/jobs/{job}"), None);
    assert_eq!(ended["state"], "finished", "{ended}");
    assert_eq!(ended["verdict"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("interrupted: the process stopped")
            && error.contains("start the job again"),
        "{ended}"
    );
    assert!(ended["finished_at"].as_i64().is_some(), "{ended}");
    let (status, next) = api(&addr, "POST", &jobs, Some(r#"{"kind":"import"}"#));
    assert_eq!(
        status, 202,
        "a new job is refused after the restart: {next}"
    );
    let next = next["id"].as_str().unwrap().to_owned();
    let done = finished_job(|m, p, b| api(&addr, m, p, b), &next);
    assert_eq!(done["verdict"], "complete", "{done}");
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(&job) && l.contains("ended as failed")),
        "no log line for the recovered job {job}:\n{err}"
    );
    drop(emu);
}

/// A webhook receiver on std's TCP that notes every request (its `webhook-id` and body) and,
/// while `hang` is set, answers none of them: the request stays in flight for as long as the
/// test likes. Otherwise it answers 200 on the same keep-alive connection.
struct HangingReceiver {
    addr: String,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl HangingReceiver {
    fn start() -> HangingReceiver {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hang = Arc::new(AtomicBool::new(false));
        let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let (h, g) = (hang.clone(), got.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let (hang, got) = (h.clone(), g.clone());
                std::thread::spawn(move || {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        // One request: the head, then Content-Length bytes of body.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                                .map(|v| v.trim().to_owned())
                        };
                        let length: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < head_end + length {
                            match stream.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: serde_json::Value =
                            serde_json::from_slice(&buf[head_end..head_end + length])
                                .unwrap_or(serde_json::Value::Null);
                        let id = header("webhook-id").unwrap_or_default();
                        buf.drain(..head_end + length);
                        got.lock().unwrap().push((id, body));
                        if hang.load(Ordering::SeqCst) {
                            // Never answered: held until the sender goes away.
                            while stream.read(&mut chunk).is_ok_and(|n| n > 0) {}
                            return;
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(ok).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HangingReceiver { addr, hang, got }
    }

    fn got(&self) -> Vec<(String, serde_json::Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` accepts what was received; panics with it after `timeout`.
    fn wait_for(
        &self,
        timeout: std::time::Duration,
        what: &str,
        pred: impl Fn(&[(String, serde_json::Value)]) -> bool,
    ) -> Vec<(String, serde_json::Value)> {
        poll_until(timeout, std::time::Duration::from_millis(50), || {
            let got = self.got();
            if pred(&got) {
                return Ok(got);
            }
            let ids: Vec<String> = got.into_iter().map(|(id, _)| id).collect();
            Err(format!("{what}; received {ids:?}"))
        })
    }
}

/// `kill -9` of `orgsync serve` while a webhook request is in flight: after the restart the
/// endpoint gets the interrupted event again (the same `webhook-id`) and then every later one,
/// in order: nothing is lost, and the only duplicate is the one in flight (docs/webhooks.md).
#[test]
fn a_webhook_delivery_survives_kill_9_of_serve_with_duplicates_only() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (emu, base) = start_emulator(
        dir.path(),
        "40",
        "5",
        "cli_killhook00000001",
        "kill-hook-secret",
    );

    const TOKEN: &str = "kill-hook-admin-token-0123456789";
    let env = [
        ("ORGSYNC_ADMIN_TOKEN", TOKEN),
        ("ORGSYNC_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ];
    let (serve, addr, _) = start_serve(dir.path(), &env);
    let api = |addr: &str, method: &str, path: &str, body: Option<&str>| {
        admin_api(addr, TOKEN, method, path, body)
    };
    let (pool, connection) = pool_with_connection(
        |m, p, b| api(&addr, m, p, b),
        "Hooks",
        &base,
        "cli_killhook00000001",
        "kill-hook-secret",
    );
    // Every imported user is a `user.created`: a stream of events to interrupt.
    let (status, settings) = api(
        &addr,
        "PUT",
        &format!("/pools/{pool}/feed-settings"),
        Some(r#"{"retention_days":30,"initial_import_events":true}"#),
    );
    assert_eq!(status, 200, "{settings}");
    let receiver = HangingReceiver::start();
    receiver.hang.store(true, Ordering::SeqCst);
    let (status, endpoint) = api(
        &addr,
        "POST",
        &format!("/pools/{pool}/webhooks"),
        Some(
            &serde_json::json!({
                "url": format!("http://{}/hook", receiver.addr),
                "description": "kill -9",
                "types": ["user.*"],
            })
            .to_string(),
        ),
    );
    assert_eq!(status, 201, "{endpoint}");
    let (status, job) = api(
        &addr,
        "POST",
        &format!("/connections/{connection}/jobs"),
        Some(r#"{"kind":"import"}"#),
    );
    assert_eq!(status, 202, "{job}");

    // The first delivery is in flight, unanswered: the process dies under it.
    let first = receiver.wait_for(SECS(60), "the first delivery", |got| !got.is_empty());
    serve.kill_hard();
    assert_eq!(first.len(), 1, "one request at a time per endpoint");
    receiver.hang.store(false, Ordering::SeqCst);

    let (serve, addr, _) = start_serve(dir.path(), &env);
    // What the endpoint must receive: every user event of the feed, in order, once the
    // import (finished before the kill, or failed by it and run again) has written them.
    let (_, ended) = api(
        &addr,
        "GET",
        &format!("/jobs/{}", job["id"].as_str().unwrap()),
        None,
    );
    if ended["verdict"] != "complete" {
        let (status, job) = api(
            &addr,
            "POST",
            &format!("/connections/{connection}/jobs"),
            Some(r#"{"kind":"import"}"#),
        );
        assert_eq!(status, 202, "{job}");
        let done = finished_job(|m, p, b| api(&addr, m, p, b), job["id"].as_str().unwrap());
        assert_eq!(done["verdict"], "complete", "{done}");
    }
    let (status, page) = api(
        &addr,
        "GET",
        &format!("/pools/{pool}/events?types=user.*&limit=500"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let expected = page["data"].as_array().unwrap().clone();
    assert!(!expected.is_empty(), "{page}");
    assert!(
        expected.iter().all(|e| e["type"] == "user.created"),
        "{page}"
    );
    let got = receiver.wait_for(SECS(120), "every event after the restart", |got| {
        got.len() > expected.len()
    });
    let (code, err) = serve.terminate(SECS(30));
    assert_eq!(code, Some(0), "{err}");

    assert_eq!(
        got[0].0, got[1].0,
        "the interrupted event comes again first"
    );
    let ids: Vec<String> = got[1..].iter().map(|(id, _)| id.clone()).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, want, "every event once after the restart, in order");
    let bodies: Vec<serde_json::Value> = got[1..].iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(bodies, expected);
    drop(emu);
}
