//! Endpoint discovery and the handshake's refusals (docs/long-connection.md, "Connecting"):
//! the request body, the lenient response, the connection URL's parts, and what each
//! documented failure means for the admin.

use serde::{Deserialize, Serialize};
use url::Url;

use super::config::ClientConfig;

/// The path of endpoint discovery on the Open API base (not under `/open-apis`).
pub const ENDPOINT_PATH: &str = "/callback/ws/endpoint";

/// Endpoint codes (docs/long-connection.md, "Errors").
pub mod codes {
    pub const OK: i64 = 0;
    pub const SYSTEM_BUSY: i64 = 1;
    pub const INTERNAL: i64 = 1_000_040_343;
    pub const CREDENTIALS_MISSING: i64 = 1_000_040_344;
    pub const CREDENTIALS_INVALID: i64 = 1_000_040_345;
    pub const TOO_MANY_CONNECTIONS: i64 = 1_000_040_350;
    pub const WRONG_DOMAIN: i64 = 1_000_040_351;
}

/// The body of the endpoint request: the app's credentials, capitalised keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointRequest {
    #[serde(rename = "AppID")]
    pub app_id: String,
    #[serde(rename = "AppSecret")]
    pub app_secret: String,
}

/// `{"code", "msg", "data": {"URL", "ClientConfig"}}`; error bodies may carry `data`
/// without a URL, or none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointResponse {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub data: Option<EndpointData>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointData {
    #[serde(rename = "URL", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(
        rename = "ClientConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_config: Option<ClientConfig>,
}

/// Why connecting failed, as the connection's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailure {
    #[error("Feishu refused the App ID or App Secret (code {code}: {msg})")]
    Credentials { code: i64, msg: String },
    #[error("Feishu allows no more long connections for this app (code {code}: {msg})")]
    TooManyConnections { code: i64, msg: String },
    #[error("the app belongs to the other platform (code {code}: {msg})")]
    WrongDomain { code: i64, msg: String },
    #[error("Feishu blocked this app's long connection (handshake status 403: {msg})")]
    Blocked { msg: String },
    #[error("Feishu refused the long connection (code {code}: {msg})")]
    Refused { code: i64, msg: String },
    #[error("Feishu is busy or failed (code {code}: {msg}); retrying")]
    Transient { code: i64, msg: String },
    #[error("endpoint discovery failed with HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("the endpoint answered without a connection URL")]
    NoUrl,
    #[error("cannot use the connection URL: {0}")]
    BadUrl(String),
    #[error("could not reach Feishu: {0}")]
    Transport(String),
}

impl ConnectFailure {
    /// What the admin should do (shown next to the status).
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Credentials { .. } => {
                "check the App ID and App Secret of this connection, and that the app has a \
                 published version in the Feishu developer console"
            }
            Self::TooManyConnections { .. } => {
                "another process holds this app's long connections (another orgsync, or an \
                 SDK client started with the same credentials): stop it, or give it an app of \
                 its own"
            }
            Self::WrongDomain { .. } => {
                "the app is a Lark app on the Feishu base URL or the reverse: set the \
                 connection's base URL to https://open.larksuite.com for Lark, \
                 https://open.feishu.cn for Feishu"
            }
            Self::Blocked { .. } => {
                "Feishu blocked the app's long connection: check the app's status in the \
                 developer console"
            }
            Self::Refused { .. } => {
                "long connections are for self-built apps only: check the app type, or use \
                 the webhook mode"
            }
            Self::Transient { .. } | Self::Http { .. } | Self::Transport(_) => {
                "nothing to fix yet: orgsync keeps retrying; check the network path to \
                 Feishu if this persists"
            }
            Self::NoUrl | Self::BadUrl(_) => {
                "Feishu answered unexpectedly: orgsync keeps retrying; report it if this \
                 persists"
            }
        }
    }

    /// Whether only an admin can fix it: the official SDKs stop for good on these; orgsync
    /// retries them slowly instead ([`super::config::Schedule`]).
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Self::Credentials { .. }
                | Self::TooManyConnections { .. }
                | Self::WrongDomain { .. }
                | Self::Blocked { .. }
                | Self::Refused { .. }
        )
    }

    /// A stable short name for metrics and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Credentials { .. } => "credentials",
            Self::TooManyConnections { .. } => "too_many_connections",
            Self::WrongDomain { .. } => "wrong_domain",
            Self::Blocked { .. } => "blocked",
            Self::Refused { .. } => "refused",
            Self::Transient { .. } => "transient",
            Self::Http { .. } => "http",
            Self::NoUrl | Self::BadUrl(_) => "bad_response",
            Self::Transport(_) => "transport",
        }
    }
}

impl EndpointResponse {
    /// The connection URL and the config, or why there is none.
    pub fn into_result(self) -> Result<(ConnectionUrl, Option<ClientConfig>), ConnectFailure> {
        let (code, msg) = (self.code, self.msg);
        match code {
            codes::OK => {
                let data = self.data.unwrap_or_default();
                let url = data.url.ok_or(ConnectFailure::NoUrl)?;
                Ok((ConnectionUrl::parse(&url)?, data.client_config))
            }
            codes::SYSTEM_BUSY | codes::INTERNAL => Err(ConnectFailure::Transient { code, msg }),
            codes::CREDENTIALS_MISSING | codes::CREDENTIALS_INVALID => {
                Err(ConnectFailure::Credentials { code, msg })
            }
            codes::TOO_MANY_CONNECTIONS => Err(ConnectFailure::TooManyConnections { code, msg }),
            codes::WRONG_DOMAIN => Err(ConnectFailure::WrongDomain { code, msg }),
            _ => Err(ConnectFailure::Refused { code, msg }),
        }
    }
}

/// A refused WebSocket upgrade, from its `Handshake-Status`, `Handshake-Msg` and
/// `Handshake-Autherrcode` headers (the HTTP status when the first is missing).
pub fn handshake_failure(
    http_status: u16,
    status: Option<&str>,
    msg: Option<&str>,
    auth_code: Option<&str>,
) -> ConnectFailure {
    let code = status
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(i64::from(http_status));
    let msg = msg.unwrap_or_default().to_owned();
    let auth = auth_code.and_then(|s| s.trim().parse::<i64>().ok());
    match (code, auth) {
        (403, _) => ConnectFailure::Blocked { msg },
        (514, Some(codes::TOO_MANY_CONNECTIONS)) => ConnectFailure::TooManyConnections {
            code: codes::TOO_MANY_CONNECTIONS,
            msg,
        },
        _ => ConnectFailure::Transient { code, msg },
    }
}

/// The URL to dial, as returned (opaque), and the two parameters the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionUrl {
    pub url: String,
    /// The connection's id (logs only).
    pub device_id: String,
    /// Put in the `service` field of every ping.
    pub service_id: i32,
}

impl ConnectionUrl {
    pub fn parse(raw: &str) -> Result<Self, ConnectFailure> {
        let url = Url::parse(raw).map_err(|e| ConnectFailure::BadUrl(e.to_string()))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(ConnectFailure::BadUrl(format!(
                "scheme {:?}, not ws or wss",
                url.scheme()
            )));
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let service_id = param("service_id")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ConnectFailure::BadUrl("no numeric service_id".into()))?;
        Ok(Self {
            url: raw.to_owned(),
            device_id: param("device_id").unwrap_or_default(),
            service_id,
        })
    }

    /// The URL for logs: `access_key` and `ticket` are credentials.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

/// A connection URL with its `access_key` and `ticket` values hidden.
pub fn redact(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        return "<unparsable URL>".into();
    };
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "access_key" || k == "ticket" {
                "***".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "wss://msg-frontier.feishu.cn/ws/v2?fpid=493&aid=552564&device_id=7300000000000000001&access_key=0123456789abcdef0123456789abcdef&service_id=33554678&ticket=6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

    #[test]
    fn the_request_has_capitalised_keys() {
        let body = serde_json::to_string(&EndpointRequest {
            app_id: "cli_a1b2c3d4e5f60718".into(),
            app_secret: "s".into(),
        })
        .unwrap();
        assert_eq!(body, r#"{"AppID":"cli_a1b2c3d4e5f60718","AppSecret":"s"}"#);
        // The Java SDK's spacing parses the same.
        let back: EndpointRequest =
            serde_json::from_str(r#"{"AppID": "a", "AppSecret": "b"}"#).unwrap();
        assert_eq!(back.app_id, "a");
    }

    #[test]
    fn a_success_gives_the_url_and_the_config() {
        let body = format!(
            r#"{{"code":0,"msg":"","data":{{"URL":"{URL}","ClientConfig":{{"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30,"PingInterval":120}}}}}}"#
        );
        let response: EndpointResponse = serde_json::from_str(&body).unwrap();
        let (url, config) = response.into_result().unwrap();
        assert_eq!(url.service_id, 33_554_678);
        assert_eq!(url.device_id, "7300000000000000001");
        assert_eq!(url.url, URL, "dialled exactly as returned");
        assert_eq!(config.unwrap().reconnect_count, Some(-1));
        let shown = url.redacted();
        assert!(
            !shown.contains("0123456789abcdef0123456789abcdef"),
            "{shown}"
        );
        assert!(!shown.contains("6f1c2b3a"), "{shown}");
        assert!(shown.contains("device_id=7300000000000000001"), "{shown}");
    }

    #[test]
    fn each_documented_code_names_its_fix() {
        let fail = |body: &str| {
            serde_json::from_str::<EndpointResponse>(body)
                .unwrap()
                .into_result()
                .unwrap_err()
        };
        let wrong =
            fail(r#"{"code":1000040345,"msg":"app_id or app_secret is invalid","data":{}}"#);
        assert!(matches!(wrong, ConnectFailure::Credentials { .. }));
        assert!(wrong.needs_admin() && wrong.hint().contains("App Secret"));
        let many =
            fail(r#"{"code":1000040350,"msg":"the number of connections exceeded the limit"}"#);
        assert!(matches!(many, ConnectFailure::TooManyConnections { .. }));
        assert!(many.hint().contains("another process"));
        let domain = fail(
            r#"{"code":1000040351,"msg":"Incorrect domain name","data":{"ClientConfig":{"PingInterval":120}}}"#,
        );
        assert!(matches!(domain, ConnectFailure::WrongDomain { .. }));
        assert!(domain.hint().contains("larksuite"));
        for transient in [r#"{"code":1,"msg":"busy"}"#, r#"{"code":1000040343}"#] {
            let f = fail(transient);
            assert!(matches!(f, ConnectFailure::Transient { .. }), "{f:?}");
            assert!(!f.needs_admin());
        }
        assert!(matches!(
            fail(r#"{"code":99}"#),
            ConnectFailure::Refused { .. }
        ));
        assert_eq!(
            fail(r#"{"code":0,"msg":"","data":{}}"#),
            ConnectFailure::NoUrl
        );
        assert!(matches!(
            fail(r#"{"code":0,"data":{"URL":"https://x/?service_id=1"}}"#),
            ConnectFailure::BadUrl(_)
        ));
    }

    #[test]
    fn handshake_refusals_follow_the_sdks() {
        assert!(matches!(
            handshake_failure(400, Some("403"), Some("banned"), None),
            ConnectFailure::Blocked { .. }
        ));
        assert!(matches!(
            handshake_failure(400, Some("514"), None, Some("1000040350")),
            ConnectFailure::TooManyConnections { .. }
        ));
        assert!(matches!(
            handshake_failure(400, Some("514"), None, Some("1")),
            ConnectFailure::Transient { code: 514, .. }
        ));
        assert!(matches!(
            handshake_failure(403, None, None, None),
            ConnectFailure::Blocked { .. }
        ));
        assert!(matches!(
            handshake_failure(502, None, None, None),
            ConnectFailure::Transient { code: 502, .. }
        ));
    }
}
