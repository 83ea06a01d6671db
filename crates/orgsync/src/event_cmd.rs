//! `orgsync event decrypt` and `orgsync event verify`: the two questions an admin asks when a
//! Feishu delivery is rejected — "what did Feishu send?" and "is this signature right?".

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use feishu::crypto;

/// Exit code for bad usage or unreadable input (clap uses 2 for usage errors too).
const EXIT_USAGE: u8 = 2;
/// Exit code of `verify` for a signature that does not match.
const EXIT_INVALID: u8 = 1;

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Decrypt an event body read from stdin: the raw HTTP body {"encrypt":"…"} or the bare
    /// base64 value. Prints the plaintext JSON, its Verification Token as "***" unless
    /// --show-token.
    Decrypt(DecryptArgs),
    /// Check an X-Lark-Signature against the raw body read from stdin.
    /// Exit code 0: valid; 1: invalid; 2: bad usage.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The Encrypt Key from the Feishu console (Events & Callbacks → Encryption Strategy).
    #[arg(long, env = "ORGSYNC_ENCRYPT_KEY", hide_env_values = true)]
    encrypt_key: String,
    /// Pretty-print the JSON instead of printing it exactly as Feishu sent it.
    #[arg(long)]
    pretty: bool,
    /// Print the Verification Token too. By default it shows as "***": the output is meant to
    /// be shared (a ticket, a chat) and the token is a secret (docs/secrets.md).
    #[arg(long)]
    show_token: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Encrypt Key; leave it out (or pass "") when the app has no Encrypt Key: Feishu then
    /// signs with the empty key.
    #[arg(long, env = "ORGSYNC_ENCRYPT_KEY", hide_env_values = true)]
    encrypt_key: Option<String>,
    /// The X-Lark-Request-Timestamp header.
    #[arg(long)]
    timestamp: String,
    /// The X-Lark-Request-Nonce header.
    #[arg(long)]
    nonce: String,
    /// The X-Lark-Signature header.
    #[arg(long)]
    signature: String,
}

pub fn run(cmd: EventCommand) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("error: could not read stdin: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let outcome = match cmd {
        EventCommand::Decrypt(args) => decrypt(&args, &input),
        EventCommand::Verify(args) => verify(&args, &input),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Finds the base64 value: the `encrypt` field of a JSON body, or the input itself.
fn encrypted_value(input: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(input)
        .map_err(|_| "stdin is not UTF-8 text; paste the HTTP body or the base64 value".to_owned())?
        .trim();
    if text.is_empty() {
        return Err(
            "stdin is empty; pipe in the raw HTTP body {\"encrypt\":\"…\"} or the base64 value"
                .to_owned(),
        );
    }
    if text.starts_with('{') {
        let body: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("stdin looks like JSON but does not parse: {e}"))?;
        return match body.get("encrypt") {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err("the \"encrypt\" field is not a string".to_owned()),
            None => Err(
                "the JSON body has no \"encrypt\" field: it is not encrypted, nothing to decrypt"
                    .to_owned(),
            ),
        };
    }
    // A bare value may have been wrapped over several lines when copied.
    Ok(text.split_whitespace().collect())
}

fn decrypt(args: &DecryptArgs, input: &[u8]) -> Result<ExitCode, String> {
    if args.encrypt_key.is_empty() {
        return Err("--encrypt-key is empty; give the Encrypt Key from the Feishu console".into());
    }
    let value = encrypted_value(input)?;
    let plaintext = crypto::decrypt(&args.encrypt_key, &value).map_err(|e| e.to_string())?;
    let (plaintext, masked) = if args.show_token {
        (plaintext, false)
    } else {
        mask_token(plaintext)
    };
    let out = if args.pretty {
        match serde_json::from_str::<serde_json::Value>(&plaintext) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(plaintext),
            Err(_) => plaintext,
        }
    } else {
        plaintext
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}").map_err(|e| format!("could not write stdout: {e}"))?;
    if masked {
        eprintln!("note: the Verification Token shows as \"***\"; --show-token prints it");
    }
    Ok(ExitCode::SUCCESS)
}

/// The plaintext with the Verification Token (top-level `token`, or `header.token`) written
/// as `"***"`, the rest exactly as Feishu sent it; `true` when there was one.
fn mask_token(plaintext: String) -> (String, bool) {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&plaintext) else {
        return (plaintext, false);
    };
    let tokens: Vec<&str> = [
        doc.get("token"),
        doc.get("header").and_then(|h| h.get("token")),
    ]
    .into_iter()
    .flatten()
    .filter_map(serde_json::Value::as_str)
    .filter(|t| !t.is_empty())
    .collect();
    if tokens.is_empty() {
        return (plaintext, false);
    }
    let mut out = plaintext.clone();
    for token in &tokens {
        if let Ok(quoted) = serde_json::to_string(token) {
            out = out.replace(&quoted, "\"***\"");
        }
    }
    if tokens.iter().any(|t| out.contains(t)) {
        // Written in a way the search missed (e.g. with escapes): print the document again
        // (keys sorted) rather than the token.
        let mut doc = doc;
        if let Some(t) = doc.get_mut("token") {
            *t = "***".into();
        }
        if let Some(t) = doc.get_mut("header").and_then(|h| h.get_mut("token")) {
            *t = "***".into();
        }
        out = doc.to_string();
    }
    (out, true)
}

fn verify(args: &VerifyArgs, body: &[u8]) -> Result<ExitCode, String> {
    let key = args.encrypt_key.as_deref().unwrap_or("");
    let signature = args.signature.trim();
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--signature must be the 64 hex digits of the X-Lark-Signature header, got {} characters",
            signature.len()
        ));
    }
    let check =
        |body: &[u8]| crypto::verify_signature(&args.timestamp, &args.nonce, key, body, signature);
    let key_note = if key.is_empty() {
        " with the empty key (no Encrypt Key)"
    } else {
        ""
    };
    if check(body) {
        println!("signature valid{key_note}");
        return Ok(ExitCode::SUCCESS);
    }
    // `echo` and heredocs add a newline Feishu never sent; say so instead of failing.
    let trimmed = body
        .strip_suffix(b"\n")
        .map(|b| b.strip_suffix(b"\r").unwrap_or(b));
    if let Some(trimmed) = trimmed.filter(|t| check(t)) {
        println!(
            "signature valid{key_note} (over the body without the trailing newline your shell added; {} bytes)",
            trimmed.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let expected = crypto::signature(&args.timestamp, &args.nonce, key, body);
    println!(
        "signature INVALID{key_note}: expected {expected} over {} body bytes, got {signature}",
        body.len()
    );
    eprintln!(
        "hint: pipe the body exactly as received (no re-formatting), and use the same Encrypt Key as the Feishu console"
    );
    Ok(ExitCode::from(EXIT_INVALID))
}
