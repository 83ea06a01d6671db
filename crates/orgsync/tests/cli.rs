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
        &["event", "decrypt", "--encrypt-key", WORKED_KEY],
        &[],
        body.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{WORKED_PLAINTEXT}\n"));
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
            &["event", "decrypt", "--encrypt-key", key],
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
        &["event", "decrypt", "--pretty"],
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
