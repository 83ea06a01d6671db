//! The configuration of `orgsync serve` (and of the commands that share its database):
//! a TOML file (`--config`, else `./orgsync.toml` when present) overlaid by `ORGSYNC_*`
//! environment variables (the environment wins). Every error names the key and the fix.
//!
//! | key | env | default |
//! |---|---|---|
//! | `listen` | `ORGSYNC_LISTEN` | `127.0.0.1:8080` |
//! | `public_url` | `ORGSYNC_PUBLIC_URL` | `http://{listen}` |
//! | `data_dir` | `ORGSYNC_DATA_DIR` | `./orgsync-data` (0700, its files 0600) |
//! | `instance_id` | `ORGSYNC_INSTANCE_ID` | created once in `{data_dir}/instance-id` |
//! | `database_url` | `ORGSYNC_DATABASE_URL` | `sqlite://{data_dir}/orgsync.db` |
//! | (env only) | `ORGSYNC_MASTER_KEY` | — |
//! | `master_key_file` | `ORGSYNC_MASTER_KEY_FILE` | `{data_dir}/master.key`, created (0600) if missing |
//! | (env only) | `ORGSYNC_ADMIN_TOKEN` | generated once; its SHA-256 in `{data_dir}/admin-token.sha256` |
//! | `log_format` | `ORGSYNC_LOG_FORMAT` | `text` (`json`: one JSON object per line) |
//! | `reconcile_check_secs` | `ORGSYNC_RECONCILE_CHECK_SECS` | `60` |
//! | `event_signature_when_encrypted` | `ORGSYNC_EVENT_SIGNATURE_WHEN_ENCRYPTED` | `required` |
//! | `event_signature_when_plaintext` | `ORGSYNC_EVENT_SIGNATURE_WHEN_PLAINTEXT` | `ignore` |
//! | `event_accept_plaintext_with_key` | `ORGSYNC_EVENT_ACCEPT_PLAINTEXT_WITH_KEY` | `false` |
//! | `event_replay_window_secs` | `ORGSYNC_EVENT_REPLAY_WINDOW_SECS` | `0` (off) |
//! | `login_max_failures` | `ORGSYNC_LOGIN_MAX_FAILURES` | `5` wrong console logins from one address … |
//! | `login_lockout_secs` | `ORGSYNC_LOGIN_LOCKOUT_SECS` | … within `900` s lock it out for `900` s |
//! | `webhooks_allow_private_targets` | `ORGSYNC_WEBHOOKS_ALLOW_PRIVATE_TARGETS` | `false`: webhooks to loopback and private addresses are refused (link-local and metadata addresses always are) |
//! | `ldap_listen` | `ORGSYNC_LDAP_LISTEN` | off; `IP:port` serves the LDAP view there (plain LDAP: keep it on loopback or a trusted network) |
//! | `ldap_tls_listen` | `ORGSYNC_LDAP_TLS_LISTEN` | off; `IP:port` serves it over LDAPS, with the two files below |
//! | `ldap_tls_cert_file` | `ORGSYNC_LDAP_TLS_CERT_FILE` | — (PEM certificate chain) |
//! | `ldap_tls_key_file` | `ORGSYNC_LDAP_TLS_KEY_FILE` | — (PEM private key) |
//! | `ldap_anonymous` | `ORGSYNC_LDAP_ANONYMOUS` | `off`; `root_dse` lets unbound clients read the Root DSE |
//! | `ldap_idle_timeout_secs` | `ORGSYNC_LDAP_IDLE_TIMEOUT_SECS` | `300` |
//! | `ldap_max_connections` | `ORGSYNC_LDAP_MAX_CONNECTIONS` | `256` |

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use feishu::envelope::{DecodeOptions, SignatureCheck};
use serde::Deserialize;
use server::{AdminToken, LoginLimits};

use crate::files;

pub const DEFAULT_CONFIG_FILE: &str = "orgsync.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "orgsync-data";
pub const MASTER_KEY_FILE: &str = "master.key";
pub const ADMIN_TOKEN_HASH_FILE: &str = "admin-token.sha256";

/// Keys that may come from the environment (`ORGSYNC_` + upper case). Others, such as
/// `ORGSYNC_ENCRYPT_KEY` of `orgsync event`, are not configuration.
const ENV_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "instance_id",
    "database_url",
    "master_key_file",
    "log_format",
    "reconcile_check_secs",
    "event_signature_when_encrypted",
    "event_signature_when_plaintext",
    "event_accept_plaintext_with_key",
    "event_replay_window_secs",
    "login_max_failures",
    "login_lockout_secs",
    "webhooks_allow_private_targets",
    "ldap_listen",
    "ldap_tls_listen",
    "ldap_tls_cert_file",
    "ldap_tls_key_file",
    "ldap_anonymous",
    "ldap_idle_timeout_secs",
    "ldap_max_connections",
];

/// The file and environment as read, before validation (no `Debug`: the database URL may
/// hold a password).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    instance_id: Option<String>,
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    log_format: Option<String>,
    reconcile_check_secs: Option<u64>,
    event_signature_when_encrypted: Option<String>,
    event_signature_when_plaintext: Option<String>,
    event_accept_plaintext_with_key: Option<bool>,
    event_replay_window_secs: Option<u64>,
    login_max_failures: Option<u32>,
    login_lockout_secs: Option<u64>,
    webhooks_allow_private_targets: Option<bool>,
    ldap_listen: Option<String>,
    ldap_tls_listen: Option<String>,
    ldap_tls_cert_file: Option<PathBuf>,
    ldap_tls_key_file: Option<PathBuf>,
    ldap_anonymous: Option<String>,
    ldap_idle_timeout_secs: Option<u64>,
    ldap_max_connections: Option<u32>,
}

/// The LDAP view's listeners (docs/ldap.md), when `ldap_listen` or `ldap_tls_listen` is set.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// Plain LDAP.
    pub listen: Option<SocketAddr>,
    /// LDAPS: the address, the certificate chain and the key (PEM files).
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    pub anonymous: ldap::session::Anonymous,
    pub limits: ldap::server::Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings. `Debug` shows the database URL without its password.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `None`: `http://{bound address}`.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    /// `None`: the id kept in the data directory ([`crate::instance`]).
    pub instance_id: Option<String>,
    pub database_url: String,
    pub master_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub reconcile_check_secs: u64,
    /// How event requests are checked where the protocol is UNVERIFIED.
    pub decode: DecodeOptions,
    /// Wrong admin tokens at the console login, per client address.
    pub login_limits: LoginLimits,
    /// Webhooks may be sent to loopback and private addresses (docs/webhooks.md).
    pub webhooks_allow_private_targets: bool,
    pub ldap: Option<LdapSettings>,
    /// Where the settings came from, for the log.
    pub source: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact(&self.database_url))
            .field("master_key_file", &self.master_key_file)
            .field("ldap", &self.ldap)
            .field("log_format", &self.log_format)
            .field("reconcile_check_secs", &self.reconcile_check_secs)
            .field("decode", &self.decode)
            .field("source", &self.source)
            .finish()
    }
}

impl Settings {
    /// Reads `explicit` (must exist) or `./orgsync.toml` (if present), then the environment.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(explicit, &env)
    }

    pub fn load_from(explicit: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let file = match explicit {
            Some(p) if !p.exists() => bail!(
                "--config {}: no such file; give the path of a TOML file, or leave --config out to use ./{DEFAULT_CONFIG_FILE} (if present) and ORGSYNC_* variables",
                p.display()
            ),
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        for (k, _) in env {
            if k == "ORGSYNC_MASTER_KEY_PATH" {
                bail!("ORGSYNC_MASTER_KEY_PATH is not a setting: use ORGSYNC_MASTER_KEY_FILE");
            }
        }
        let mut builder = config::Config::builder();
        if let Some(path) = &file {
            builder = builder.add_source(
                config::File::from(path.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        for key in ENV_KEYS {
            let var = format!("ORGSYNC_{}", key.to_uppercase());
            if let Some((_, value)) = env.iter().find(|(k, _)| *k == var) {
                builder = builder
                    .set_override(*key, value.clone())
                    .with_context(|| format!("{var}: cannot be used"))?;
            }
        }
        let where_ = match &file {
            Some(p) => format!("{} and the environment", p.display()),
            None => "the environment (no config file)".to_owned(),
        };
        let raw: RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| {
                if e.to_string().contains("master_key`") || e.to_string().contains("admin_token") {
                    anyhow!(
                        "{where_}: {e}; the master key and the admin token are read from ORGSYNC_MASTER_KEY / ORGSYNC_ADMIN_TOKEN (or master_key_file), never from the config file"
                    )
                } else {
                    anyhow!("{where_}: {e}")
                }
            })?;
        Self::validate(raw, where_)
    }

    fn validate(raw: RawConfig, source: String) -> anyhow::Result<Self> {
        // Checked first: validation below moves fields out of `raw`.
        let ldap = ldap_settings(&raw)?;
        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
            anyhow!(
                "listen (ORGSYNC_LISTEN) = {listen_text:?} is not a socket address: give IP:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
            )
        })?;
        let public_url = match raw
            .public_url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
        {
            None => None,
            Some(u) if u.is_empty() => None,
            Some(u) if is_http_url(&u) => Some(u),
            Some(u) => bail!(
                "public_url (ORGSYNC_PUBLIC_URL) = {u:?} is not an http(s) URL: give how Feishu reaches this server, e.g. https://orgsync.example.com"
            ),
        };
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let instance_id = match raw.instance_id.map(|id| id.trim().to_owned()) {
            Some(id) if !id.is_empty() => {
                crate::instance::check_instance_id(&id).map_err(|why| {
                    anyhow!(
                        "instance_id (ORGSYNC_INSTANCE_ID) = {id:?} cannot name an instance: {why}, e.g. orgsync-1; or leave it out to use the id kept in the data directory"
                    )
                })?;
                Some(id)
            }
            _ => None,
        };
        let database_url = match raw.database_url.map(|u| u.trim().to_owned()) {
            Some(u) if !u.is_empty() => u,
            _ => format!("sqlite://{}", data_dir.join("orgsync.db").to_string_lossy()),
        };
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!(
                "log_format (ORGSYNC_LOG_FORMAT) = {other:?} is not known: use \"text\" or \"json\""
            ),
        };
        let reconcile_check_secs = raw.reconcile_check_secs.unwrap_or(60);
        if reconcile_check_secs == 0 {
            bail!(
                "reconcile_check_secs (ORGSYNC_RECONCILE_CHECK_SECS) is 0: give how often (in seconds) to look for due reconciliations, e.g. 60"
            );
        }
        let decode = DecodeOptions {
            signature_when_encrypted: signature_check(
                "event_signature_when_encrypted",
                raw.event_signature_when_encrypted.as_deref(),
                SignatureCheck::Required,
            )?,
            signature_when_plaintext: signature_check(
                "event_signature_when_plaintext",
                raw.event_signature_when_plaintext.as_deref(),
                SignatureCheck::Ignore,
            )?,
            accept_plaintext_with_key: raw.event_accept_plaintext_with_key.unwrap_or(false),
            replay_window: raw
                .event_replay_window_secs
                .filter(|s| *s > 0)
                .map(std::time::Duration::from_secs),
        };
        let mut login_limits = LoginLimits::default();
        match raw.login_max_failures {
            Some(0) => bail!(
                "login_max_failures (ORGSYNC_LOGIN_MAX_FAILURES) is 0: give how many wrong admin tokens from one address lock it out of the console, e.g. 5"
            ),
            Some(n) => login_limits.max_failures = n,
            None => {}
        }
        match raw.login_lockout_secs {
            Some(0) => bail!(
                "login_lockout_secs (ORGSYNC_LOGIN_LOCKOUT_SECS) is 0: give how long (in seconds) failures count and an address stays locked out, e.g. 900"
            ),
            Some(secs) => {
                login_limits.window = std::time::Duration::from_secs(secs);
                login_limits.lockout = std::time::Duration::from_secs(secs);
            }
            None => {}
        }
        Ok(Self {
            listen,
            public_url,
            data_dir,
            instance_id,
            database_url,
            master_key_file: raw.master_key_file,
            log_format,
            reconcile_check_secs,
            decode,
            login_limits,
            webhooks_allow_private_targets: raw.webhooks_allow_private_targets.unwrap_or(false),
            ldap,
            source,
        })
    }

    /// Creates the data directory (0700) and a SQLite database's directory, and makes them
    /// private: what is found looser is tightened, with a log line ([`crate::files`]). Call
    /// it before opening the store, so that SQLite's `-wal` and `-shm` files, which take the
    /// database file's mode, are private too.
    pub fn prepare_dirs(&self) -> anyhow::Result<()> {
        files::secure_data_dir(&self.data_dir)?;
        if let Some(path) = sqlite_path(&self.database_url) {
            files::secure_sqlite_files(Path::new(path))?;
        }
        Ok(())
    }

    /// The SQLite database's file (`None` for PostgreSQL and in-memory databases).
    pub fn sqlite_file(&self) -> Option<&Path> {
        sqlite_path(&self.database_url).map(Path::new)
    }

    /// Opens the store; the error says which key to fix.
    pub async fn open_store(&self) -> anyhow::Result<Arc<dyn DirectoryStore>> {
        let shown = redact(&self.database_url);
        let fix = "Give a reachable postgres://user:password@host/db URL, or a writable SQLite path (sqlite://path/orgsync.db)";
        // The pool retries a refused connection until its timeout and then only says it timed
        // out: try the address first, for a message that says what is wrong.
        if let Some(addr) = postgres_address(&self.database_url) {
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::TcpStream::connect(addr.as_str()),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!(
                    "database_url (ORGSYNC_DATABASE_URL) = {shown}: cannot reach {addr}: {e}. Is PostgreSQL running there? {fix}"
                ),
                Err(_) => bail!(
                    "database_url (ORGSYNC_DATABASE_URL) = {shown}: {addr} did not answer within 5 s. {fix}"
                ),
            }
        }
        match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            store::open(&self.database_url),
        )
        .await
        {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(e)) => Err(anyhow!(
                "database_url (ORGSYNC_DATABASE_URL) = {shown}: cannot open the database: {e}. {fix}"
            )),
            Err(_) => Err(anyhow!(
                "database_url (ORGSYNC_DATABASE_URL) = {shown}: the database did not answer within 30 s. {fix}"
            )),
        }
    }
}

/// `required` / `if_present` / `ignore`.
fn signature_check(
    key: &str,
    value: Option<&str>,
    default: SignatureCheck,
) -> anyhow::Result<SignatureCheck> {
    Ok(match value.map(str::trim) {
        None | Some("") => default,
        Some("required") => SignatureCheck::Required,
        Some("if_present") => SignatureCheck::IfPresent,
        Some("ignore") => SignatureCheck::Ignore,
        Some(other) => bail!(
            "{key} (ORGSYNC_{}) = {other:?} is not known: use \"required\", \"if_present\" or \"ignore\"",
            key.to_uppercase()
        ),
    })
}

/// `host:port` of a PostgreSQL URL with a TCP host (`None` otherwise, e.g. a Unix socket).
fn postgres_address(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() || hostport.contains(',') {
        return None;
    }
    let has_port = match hostport.rfind(']') {
        Some(bracket) => hostport[bracket..].contains(':'),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    })
}

fn is_http_url(u: &str) -> bool {
    ["https://", "http://"]
        .iter()
        .any(|p| u.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

/// The file path of a SQLite URL (`None` for PostgreSQL and in-memory databases).
fn sqlite_path(url: &str) -> Option<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    (path != ":memory:" && !path.is_empty()).then_some(path)
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

/// The master key: `ORGSYNC_MASTER_KEY`, else `master_key_file` (mode 0600 or refused),
/// else `{data_dir}/master.key`, generated when `generate` and missing.
pub fn master_key(
    settings: &Settings,
    env_value: Option<&str>,
    generate: bool,
) -> anyhow::Result<(MasterKey, KeySource)> {
    if let Some(text) = env_value.filter(|t| !t.trim().is_empty()) {
        let key = MasterKey::parse(text).map_err(|e| {
            anyhow!(
                "ORGSYNC_MASTER_KEY: {e}. Generate one with `openssl rand -hex 32`, or unset it to use a key file"
            )
        })?;
        return Ok((key, KeySource::Env));
    }
    if let Some(path) = &settings.master_key_file {
        return Ok((
            read_key_file(path, "master_key_file (ORGSYNC_MASTER_KEY_FILE)")?,
            KeySource::File(path.clone()),
        ));
    }
    let path = settings.data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        return Ok((
            read_key_file(&path, "the data directory's master key")?,
            KeySource::File(path),
        ));
    }
    if !generate {
        bail!(
            "no master key: set ORGSYNC_MASTER_KEY or master_key_file (ORGSYNC_MASTER_KEY_FILE), or run `orgsync serve` once to create {}",
            path.display()
        );
    }
    let (key, text) = MasterKey::generate();
    write_private(&path, &format!("{text}\n")).with_context(|| {
        format!(
            "cannot create the master key file {}: make data_dir (ORGSYNC_DATA_DIR) writable, or set ORGSYNC_MASTER_KEY",
            path.display()
        )
    })?;
    Ok((key, KeySource::Generated(path)))
}

fn read_key_file(path: &Path, what: &str) -> anyhow::Result<MasterKey> {
    check_private(path, what)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what} {}: cannot be read", path.display()))?;
    MasterKey::parse(&text).map_err(|e| anyhow!("{what} {}: {e}", path.display()))
}

/// Refuses a key file that others can read.
#[cfg(unix)]
fn check_private(path: &Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{what} {}: cannot be read", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{what} {} has mode {mode:o}: the master key must be readable by its owner only; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _what: &str) -> anyhow::Result<()> {
    Ok(())
}

/// Creates `path` with mode 0600 (fails if it exists).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The admin token: `ORGSYNC_ADMIN_TOKEN`, else the stored hash, else a new token whose
/// plaintext is returned once (to print) and whose hash is stored.
pub fn admin_token(
    settings: &Settings,
    env_value: Option<&str>,
) -> anyhow::Result<(AdminToken, Option<String>)> {
    if let Some(token) = env_value.map(str::trim).filter(|t| !t.is_empty()) {
        if token.len() < 16 {
            bail!(
                "ORGSYNC_ADMIN_TOKEN is {} characters: use at least 16 random characters (e.g. `openssl rand -hex 24`), or unset it to have one generated",
                token.len()
            );
        }
        return Ok((AdminToken::from_plaintext(token), None));
    }
    let path = settings.data_dir.join(ADMIN_TOKEN_HASH_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot be read", path.display()))?;
        let token = AdminToken::from_hash_hex(&text).ok_or_else(|| {
            anyhow!(
                "{} does not hold a hex SHA-256: delete it to have a new admin token generated (printed once), or set ORGSYNC_ADMIN_TOKEN",
                path.display()
            )
        })?;
        return Ok((token, None));
    }
    let (token, plaintext) = AdminToken::generate();
    write_private(&path, &format!("{}\n", token.hash_hex())).with_context(|| {
        format!(
            "cannot store the admin token's hash in {}: make data_dir (ORGSYNC_DATA_DIR) writable, or set ORGSYNC_ADMIN_TOKEN",
            path.display()
        )
    })?;
    Ok((token, Some(plaintext)))
}

/// The LDAP listeners' settings; `None` when neither `ldap_listen` nor `ldap_tls_listen` is
/// set.
fn ldap_settings(raw: &RawConfig) -> anyhow::Result<Option<LdapSettings>> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let (plain, secure) = (text(&raw.ldap_listen), text(&raw.ldap_tls_listen));
    if plain.is_none() && secure.is_none() {
        for (set, key) in [
            (raw.ldap_anonymous.is_some(), "ldap_anonymous"),
            (
                raw.ldap_idle_timeout_secs.is_some(),
                "ldap_idle_timeout_secs",
            ),
            (raw.ldap_max_connections.is_some(), "ldap_max_connections"),
            (raw.ldap_tls_cert_file.is_some(), "ldap_tls_cert_file"),
            (raw.ldap_tls_key_file.is_some(), "ldap_tls_key_file"),
        ] {
            if set {
                bail!(
                    "{key} is set but ldap_listen (ORGSYNC_LDAP_LISTEN) is not: set ldap_listen (e.g. 127.0.0.1:3389) or ldap_tls_listen (e.g. 0.0.0.0:636) to serve LDAP, or remove {key}"
                );
            }
        }
        return Ok(None);
    }
    let address =
        |key: &str, env: &str, value: &str, example: &str| -> anyhow::Result<SocketAddr> {
            value.parse().map_err(|_| {
            anyhow!(
                "{key} ({env}) = {value:?} is not a socket address: give IP:port, e.g. {example}"
            )
        })
        };
    let listen = plain
        .map(|t| address("ldap_listen", "ORGSYNC_LDAP_LISTEN", &t, "127.0.0.1:3389"))
        .transpose()?;
    let tls = match secure {
        None => {
            if raw.ldap_tls_cert_file.is_some() || raw.ldap_tls_key_file.is_some() {
                bail!(
                    "ldap_tls_cert_file / ldap_tls_key_file are set but ldap_tls_listen (ORGSYNC_LDAP_TLS_LISTEN) is not: set it, e.g. 0.0.0.0:636, to serve LDAPS"
                );
            }
            None
        }
        Some(t) => {
            let addr = address(
                "ldap_tls_listen",
                "ORGSYNC_LDAP_TLS_LISTEN",
                &t,
                "0.0.0.0:636",
            )?;
            let (Some(cert), Some(key)) = (&raw.ldap_tls_cert_file, &raw.ldap_tls_key_file) else {
                bail!(
                    "ldap_tls_listen is set: give ldap_tls_cert_file (ORGSYNC_LDAP_TLS_CERT_FILE, the PEM certificate chain) and ldap_tls_key_file (ORGSYNC_LDAP_TLS_KEY_FILE, its PEM private key)"
                );
            };
            Some((addr, cert.clone(), key.clone()))
        }
    };
    let anonymous = match raw.ldap_anonymous.as_deref().map(str::trim) {
        None | Some("") | Some("off") => ldap::session::Anonymous::Off,
        Some("root_dse") => ldap::session::Anonymous::RootDse,
        Some(other) => bail!(
            "ldap_anonymous (ORGSYNC_LDAP_ANONYMOUS) = {other:?} is not known: use \"off\" or \"root_dse\""
        ),
    };
    let mut limits = ldap::server::Limits::default();
    match raw.ldap_idle_timeout_secs {
        Some(0) => bail!(
            "ldap_idle_timeout_secs (ORGSYNC_LDAP_IDLE_TIMEOUT_SECS) is 0: give how long (in seconds) an idle LDAP connection stays open, e.g. 300"
        ),
        Some(secs) => limits.idle_timeout = std::time::Duration::from_secs(secs),
        None => {}
    }
    match raw.ldap_max_connections {
        Some(0) => bail!(
            "ldap_max_connections (ORGSYNC_LDAP_MAX_CONNECTIONS) is 0: give how many LDAP connections may be open at once, e.g. 256"
        ),
        Some(n) => limits.max_connections = n as usize,
        None => {}
    }
    Ok(Some(LdapSettings {
        listen,
        tls,
        anonymous,
        limits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn event_checks_default_to_the_sdk_behaviour_and_can_be_switched() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        assert_eq!(s.decode, DecodeOptions::default());
        let s = Settings::load_from(
            None,
            &env(&[
                ("ORGSYNC_EVENT_SIGNATURE_WHEN_ENCRYPTED", "if_present"),
                ("ORGSYNC_EVENT_SIGNATURE_WHEN_PLAINTEXT", "required"),
                ("ORGSYNC_EVENT_ACCEPT_PLAINTEXT_WITH_KEY", "true"),
                ("ORGSYNC_EVENT_REPLAY_WINDOW_SECS", "300"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.decode,
            DecodeOptions {
                signature_when_encrypted: SignatureCheck::IfPresent,
                signature_when_plaintext: SignatureCheck::Required,
                accept_plaintext_with_key: true,
                replay_window: Some(std::time::Duration::from_secs(300)),
            }
        );
        let e = Settings::load_from(
            None,
            &env(&[("ORGSYNC_EVENT_SIGNATURE_WHEN_ENCRYPTED", "sometimes")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("event_signature_when_encrypted"), "{e}");
        assert!(e.contains("if_present"), "{e}");
    }

    #[test]
    fn console_login_limits_default_and_can_be_set() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        assert_eq!(s.login_limits, LoginLimits::default());
        let s = Settings::load_from(
            None,
            &env(&[
                ("ORGSYNC_LOGIN_MAX_FAILURES", "3"),
                ("ORGSYNC_LOGIN_LOCKOUT_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(s.login_limits.max_failures, 3);
        assert_eq!(s.login_limits.window, std::time::Duration::from_secs(60));
        assert_eq!(s.login_limits.lockout, std::time::Duration::from_secs(60));
        for key in ["ORGSYNC_LOGIN_MAX_FAILURES", "ORGSYNC_LOGIN_LOCKOUT_SECS"] {
            let e = Settings::load_from(None, &env(&[(key, "0")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("e.g."), "{e}");
        }
    }

    #[test]
    fn ldap_is_off_until_it_has_an_address() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        assert!(s.ldap.is_none());
        let s = Settings::load_from(
            None,
            &env(&[
                ("ORGSYNC_LDAP_LISTEN", "127.0.0.1:3389"),
                ("ORGSYNC_LDAP_ANONYMOUS", "root_dse"),
                ("ORGSYNC_LDAP_IDLE_TIMEOUT_SECS", "30"),
                ("ORGSYNC_LDAP_MAX_CONNECTIONS", "8"),
            ]),
        )
        .unwrap();
        let l = s.ldap.unwrap();
        assert_eq!(l.listen.unwrap().to_string(), "127.0.0.1:3389");
        assert!(l.tls.is_none());
        assert_eq!(l.anonymous, ldap::session::Anonymous::RootDse);
        assert_eq!(l.limits.idle_timeout, std::time::Duration::from_secs(30));
        assert_eq!(l.limits.max_connections, 8);
        for (pairs, names) in [
            (
                vec![("ORGSYNC_LDAP_LISTEN", "localhost")],
                "ldap_listen (ORGSYNC_LDAP_LISTEN)",
            ),
            (
                vec![
                    ("ORGSYNC_LDAP_LISTEN", "127.0.0.1:1"),
                    ("ORGSYNC_LDAP_ANONYMOUS", "yes"),
                ],
                "ldap_anonymous",
            ),
            (
                vec![
                    ("ORGSYNC_LDAP_LISTEN", "127.0.0.1:1"),
                    ("ORGSYNC_LDAP_MAX_CONNECTIONS", "0"),
                ],
                "ldap_max_connections",
            ),
            (vec![("ORGSYNC_LDAP_ANONYMOUS", "off")], "set ldap_listen"),
            (
                vec![("ORGSYNC_LDAP_TLS_LISTEN", "0.0.0.0:636")],
                "ldap_tls_cert_file (ORGSYNC_LDAP_TLS_CERT_FILE",
            ),
            (
                vec![("ORGSYNC_LDAP_TLS_KEY_FILE", "/k.pem")],
                "ldap_tls_listen",
            ),
        ] {
            let e = Settings::load_from(None, &env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(names), "{e}");
        }
    }

    #[test]
    fn defaults_and_environment_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orgsync.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("ORGSYNC_LISTEN", "0.0.0.0:7000"),
                ("ORGSYNC_ENCRYPT_KEY", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.database_url, "sqlite:///tmp/x/orgsync.db");
        assert_eq!(s.reconcile_check_secs, 60);
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = Settings::load_from(None, &env(&[("ORGSYNC_LISTEN", "localhost")])).unwrap_err();
        assert!(e.to_string().contains("listen (ORGSYNC_LISTEN)"), "{e}");
        let e = Settings::load_from(None, &env(&[("ORGSYNC_LOG_FORMAT", "yaml")])).unwrap_err();
        assert!(e.to_string().contains("log_format"), "{e}");
        let e = Settings::load_from(None, &env(&[("ORGSYNC_INSTANCE_ID", "node/1")])).unwrap_err();
        assert!(
            e.to_string().contains("instance_id (ORGSYNC_INSTANCE_ID)"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let e = Settings::load_from(Some(&file), &[]).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        std::fs::write(&file, "master_key = \"x\"\n").unwrap();
        let e = Settings::load_from(Some(&file), &[]).unwrap_err();
        assert!(e.to_string().contains("ORGSYNC_MASTER_KEY"), "{e}");
        let e = Settings::load_from(Some(&dir.path().join("missing.toml")), &[]).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn master_key_is_generated_once_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(
            None,
            &env(&[("ORGSYNC_DATA_DIR", dir.path().to_str().unwrap())]),
        )
        .unwrap();
        assert!(master_key(&s, None, false).is_err());
        let (k1, src) = master_key(&s, None, true).unwrap();
        assert!(matches!(src, KeySource::Generated(_)));
        let path = dir.path().join(MASTER_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, src) = master_key(&s, None, true).unwrap();
        assert!(matches!(src, KeySource::File(_)));
        let sealed = k1.seal("secret");
        assert_eq!(k2.open(&sealed).unwrap(), "secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = master_key(&s, None, true).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let e = master_key(&s, Some("abcd"), true).unwrap_err();
        assert!(e.to_string().contains("ORGSYNC_MASTER_KEY"), "{e}");
    }

    #[test]
    fn admin_token_plaintext_is_given_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(
            None,
            &env(&[("ORGSYNC_DATA_DIR", dir.path().to_str().unwrap())]),
        )
        .unwrap();
        let (t1, plain) = admin_token(&s, None).unwrap();
        let plain = plain.unwrap();
        let (t2, again) = admin_token(&s, None).unwrap();
        assert!(again.is_none());
        assert!(t1.verify(&plain) && t2.verify(&plain));
        let (t3, none) = admin_token(&s, Some("a-token-from-the-env-0123")).unwrap();
        assert!(none.is_none() && t3.verify("a-token-from-the-env-0123"));
    }

    #[test]
    fn postgres_addresses_are_found() {
        assert_eq!(
            postgres_address("postgres://u:p@db.example:6543/x?sslmode=require").as_deref(),
            Some("db.example:6543")
        );
        assert_eq!(
            postgres_address("postgresql://db/x").as_deref(),
            Some("db:5432")
        );
        assert_eq!(postgres_address("postgres:///x?host=/run/pg"), None);
        assert_eq!(postgres_address("sqlite://x.db"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn settings_debug_hides_the_database_password() {
        let s = Settings::load_from(
            None,
            &env(&[(
                "ORGSYNC_DATABASE_URL",
                "postgres://orgsync:pg-secret@db:5432/orgsync",
            )]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("pg-secret"), "{shown}");
        assert!(
            shown.contains("postgres://orgsync:***@db:5432/orgsync"),
            "{shown}"
        );
    }
}
