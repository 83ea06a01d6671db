//! The console over HTTP, as a browser (or someone guessing) uses it: the login's per-address
//! limits, and users' avatars that load from where the connection's API said.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::serve_support::{ADMIN_TOKEN, Served};
use crate::support::{APP_ID, APP_SECRET, Backend, ENCRYPT_KEY, VERIFICATION_TOKEN, tenant};

const FORM: &str = "application/x-www-form-urlencoded";

/// A browser-like client (no redirects followed) connecting from `local`: the whole of
/// 127.0.0.0/8 is loopback, so each test address is another client to the server.
fn client_from(local: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(IpAddr::V4(local))
        .build()
        .unwrap()
}

struct Attempt {
    status: StatusCode,
    retry_after: Option<u64>,
    cookie: Option<String>,
    body: String,
    took: Duration,
}

async fn log_in(s: &Served, http: &reqwest::Client, token: &str) -> Attempt {
    let started = Instant::now();
    let resp = http
        .post(s.url("/console/login"))
        .header("content-type", FORM)
        .body(format!("token={token}&next=%2Fconsole"))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after").map(|v| v.parse().unwrap());
    let cookie = header("set-cookie").filter(|c| c.starts_with("orgsync_session=") && c.len() > 40);
    let status = resp.status();
    Attempt {
        status,
        retry_after,
        cookie,
        body: resp.text().await.unwrap(),
        took: started.elapsed(),
    }
}

#[tokio::test]
async fn wrong_console_logins_are_slowed_then_locked_out_per_address() {
    let s = Served::start(Backend::Sqlite, tenant(20, 3, 1, 5)).await;
    let guesser = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let colleague = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let bystander = client_from(Ipv4Addr::new(127, 0, 0, 3));

    // The guesser's five wrong tokens and, at the same time, four of the colleague's.
    let guessing = async {
        let mut attempts = Vec::new();
        for i in 0..5 {
            attempts.push(log_in(&s, &guesser, &format!("osat_guess{i}")).await);
        }
        attempts
    };
    let typos = async {
        let mut attempts = Vec::new();
        for i in 0..4 {
            attempts.push(log_in(&s, &colleague, &format!("osat_typo{i}")).await);
        }
        attempts
    };
    let (guesses, typos) = tokio::join!(guessing, typos);
    for (i, a) in guesses[..4].iter().chain(&typos).enumerate() {
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            a.body
        );
        assert!(a.body.contains("That is not the admin token"), "{}", a.body);
        assert!(a.cookie.is_none());
    }
    // Each wrong token waits longer than the one before: 0.3 s, 0.6 s, 1.2 s, 2.4 s.
    assert!(
        guesses[0].took >= Duration::from_millis(300),
        "{:?}",
        guesses[0].took
    );
    assert!(
        guesses[3].took >= Duration::from_millis(2400),
        "{:?}",
        guesses[3].took
    );
    // The fifth locks the guesser out: 429, with when to come back.
    let locked = &guesses[4];
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert_eq!(locked.retry_after, Some(900));
    assert!(
        locked.body.contains("Too many wrong admin tokens")
            && locked.body.contains("UTC")
            && locked.body.contains("in 15 minutes"),
        "{}",
        locked.body
    );

    // During the lockout even the right token is refused.
    let right = log_in(&s, &guesser, ADMIN_TOKEN).await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );
    assert!(right.cookie.is_none(), "a locked-out address got a session");
    let left = right.retry_after.unwrap();
    assert!((1..=900).contains(&left), "{left}");

    // Other addresses are not affected.
    let bystanding = log_in(&s, &bystander, ADMIN_TOKEN).await;
    assert_eq!(
        bystanding.status,
        StatusCode::SEE_OTHER,
        "{}",
        bystanding.body
    );
    assert!(bystanding.cookie.is_some());
    // The colleague's right token works, and clears their four failures: a wrong token
    // afterwards is a first failure again, not a fifth (which would lock them out).
    let colleague_in = log_in(&s, &colleague, ADMIN_TOKEN).await;
    assert_eq!(
        colleague_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        colleague_in.body
    );
    assert!(colleague_in.cookie.is_some());
    let another_typo = log_in(&s, &colleague, "osat_typo4").await;
    assert_eq!(
        another_typo.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        another_typo.body
    );
}

/// A pool with a connection to the emulator, imported.
async fn imported_pool(s: &Served) -> String {
    let (status, pool) = s.post("/api/v1/pools", &json!({"name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{pool}");
    let pool_id = pool["id"].as_str().unwrap();
    let (status, connection) = s
        .post(
            &format!("/api/v1/pools/{pool_id}/connections"),
            &json!({
                "identifier": "acme",
                "base_url": s.emu.base_url(),
                "app_id": APP_ID,
                "app_secret": APP_SECRET,
                "encrypt_key": ENCRYPT_KEY,
                "verification_token": VERIFICATION_TOKEN,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let (status, job) = s
        .post(
            &format!(
                "/api/v1/connections/{}/jobs",
                connection["id"].as_str().unwrap()
            ),
            &json!({"kind": "import"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = s.get(&job_path).await;
        if job["state"] == "finished" {
            assert_eq!(job["verdict"], "complete", "{job}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import did not finish: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    pool_id.to_owned()
}

/// A user's avatar on the console page is the emulator's URL, the console's CSP lets the
/// browser load it, and the emulator serves an image there (no broken image in the demo).
#[tokio::test]
async fn the_console_shows_avatars_the_emulator_serves() {
    let s = Served::start(Backend::Sqlite, tenant(20, 3, 1, 5)).await;
    let pool_id = &imported_pool(&s).await;
    let (_, users) = s
        .get(&format!(
            "/api/v1/pools/{pool_id}/users?status=active&limit=1"
        ))
        .await;
    let user: &Value = &users["items"][0];

    let http = client_from(Ipv4Addr::LOCALHOST);
    let cookie = log_in(&s, &http, ADMIN_TOKEN).await.cookie.unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let resp = http
        .get(s.url(&format!(
            "/console/pools/{pool_id}/users/{}",
            user["id"].as_str().unwrap()
        )))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = resp.text().await.unwrap();
    let src = page
        .split(r#"<img class="avatar" src=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no avatar on the user page:\n{page}"))
        .replace("&#x2f;", "/")
        .replace("&#47;", "/");
    assert!(
        src.starts_with(&format!("{}/avatar/", s.emu.base_url())),
        "{src}"
    );
    let img_src: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("img-src "))
        .unwrap_or_else(|| panic!("no img-src in {csp}"))
        .split_whitespace()
        .collect();
    assert!(
        img_src.contains(&"http:") || img_src.contains(&s.emu.base_url().as_str()),
        "the console's CSP blocks {src}: {csp}"
    );
    let image = reqwest::get(&src).await.unwrap();
    assert_eq!(image.status(), StatusCode::OK, "{src}");
    assert_eq!(image.headers()["content-type"], "image/svg+xml");
    assert!(image.text().await.unwrap().starts_with("<svg "));
}

/// The value of the first form field `name` on a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn an_admin_creates_shows_once_and_revokes_a_credential_in_the_console() {
    let s = Served::start(Backend::Sqlite, tenant(10, 2, 1, 6)).await;
    let (_, pool) = s.post("/api/v1/pools", &json!({"name": "Acme"})).await;
    let pool = pool["id"].as_str().unwrap().to_owned();
    let http = client_from(Ipv4Addr::new(127, 0, 0, 9));
    let session = log_in(&s, &http, ADMIN_TOKEN).await.cookie.unwrap();
    let cookie = session.split(';').next().unwrap().to_owned();
    let get = |path: String| {
        let req = http.get(s.url(&path)).header("cookie", cookie.clone());
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let post = |path: String, body: String| {
        let req = http
            .post(s.url(&path))
            .header("cookie", cookie.clone())
            .header("content-type", FORM)
            .body(body);
        async move {
            let resp = req.send().await.unwrap();
            let location = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status(), location, resp.text().await.unwrap())
        }
    };
    let (status, page) = get(format!("/console/pools/{pool}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("/console/pools/{pool}/downstream")));
    let (status, page) = get(format!("/console/pools/{pool}/downstream")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("No credential yet"), "{page}");
    // Every section is in the page's body, none in its title.
    let title = &page[page.find("<title>").unwrap() + 7..page.find("</title>").unwrap()];
    assert!(!title.contains('<'), "{title}");
    let body = &page[page.find("<body").unwrap()..];
    for id in [
        "credentials",
        "new-credential",
        "feed-settings",
        "webhooks",
        "new-webhook",
    ] {
        assert!(
            body.contains(&format!("id=\"{id}\"")) || id == "credentials",
            "{id} is not in the body"
        );
    }
    let csrf = field(&page, "_csrf");

    // No scope: the form comes back with what to fix, and nothing is created.
    let (status, _, page) = post(
        format!("/console/pools/{pool}/credentials"),
        format!("_csrf={csrf}&name=hr-sync&expires_in_days="),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("directory:read"), "{page}");
    assert!(
        page.contains("value=\"hr-sync\""),
        "the name is kept: {page}"
    );

    let (status, _, page) = post(
        format!("/console/pools/{pool}/credentials"),
        format!("_csrf={csrf}&name=hr-sync&scope_directory_read=1&expires_in_days=30"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let at = page.find("<code id=\"token-value\">").unwrap() + 23;
    let token = page[at..at + page[at..].find('<').unwrap()].to_owned();
    assert!(token.starts_with("osc_"), "{token}");
    // It works, and the next page no longer shows it.
    let (status, _) = {
        let resp = s
            .http
            .get(s.url(&format!("/api/v1/pools/{pool}/users")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (resp.status(), ())
    };
    assert_eq!(status, StatusCode::OK);
    let (_, page) = get(format!("/console/pools/{pool}/downstream")).await;
    assert!(!page.contains(&token));
    assert!(
        page.contains("hr-sync") && page.contains("badge live"),
        "{page}"
    );

    // Revoked from the console: refused at once.
    let id = token.split('_').nth(1).unwrap();
    let (status, location, _) = post(
        format!("/console/pools/{pool}/credentials/{id}/revoke"),
        format!("_csrf={csrf}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().ends_with("done=credential_revoked"));
    let resp = s
        .http
        .get(s.url(&format!("/api/v1/pools/{pool}/users")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, page) = get(format!("/console/pools/{pool}/downstream")).await;
    assert!(page.contains("badge revoked"), "{page}");

    // Feed settings.
    let (status, location, _) = post(
        format!("/console/pools/{pool}/feed-settings"),
        format!("_csrf={csrf}&retention_days=7&initial_import_events=1"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().ends_with("done=feed_settings_saved"));
    let (_, settings) = s.get(&format!("/api/v1/pools/{pool}/feed-settings")).await;
    assert_eq!(
        settings,
        json!({"retention_days": 7, "initial_import_events": true})
    );
    let (status, _, page) = post(
        format!("/console/pools/{pool}/feed-settings"),
        format!("_csrf={csrf}&retention_days=0"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("1 to 3650"), "{page}");

    // A webhook endpoint: added with its secret shown once, tested, disabled and enabled,
    // its attempts listed.
    let receiver = crate::receiver::Receiver::start(&[]).await;
    let url = crate::api::url_encode(&receiver.url());
    let (status, _, page) = post(
        format!("/console/pools/{pool}/webhooks"),
        format!("_csrf={csrf}&url={url}&description=HR&types=user.*"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("webhook-secret-value\">whsec_"), "{page}");
    let (_, listed) = s.get(&format!("/api/v1/pools/{pool}/webhooks")).await;
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let (status, _, page) = post(
        format!("/console/pools/{pool}/webhooks/{id}"),
        format!("_csrf={csrf}&action=test"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Test event delivered"), "{page}");
    assert!(!page.contains("whsec_"), "the secret is not shown again");
    for (action, state) in [("disable", "disabled"), ("enable", "enabled")] {
        let (status, location, _) = post(
            format!("/console/pools/{pool}/webhooks/{id}"),
            format!("_csrf={csrf}&action={action}"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{action}");
        assert!(location.unwrap().contains("done=webhook_"));
        let (_, v) = s.get(&format!("/api/v1/pools/{pool}/webhooks/{id}")).await;
        assert_eq!(v["state"], state);
    }
    let (status, page) = get(format!("/console/pools/{pool}/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("webhook.test") && page.contains(">200<"),
        "{page}"
    );
}

/// A logged-in console: GETs pages and POSTs forms with the session cookie, as a browser.
struct Console<'a> {
    s: &'a Served,
    http: reqwest::Client,
    cookie: String,
}

impl<'a> Console<'a> {
    async fn open(s: &'a Served, local: Ipv4Addr) -> Console<'a> {
        let http = client_from(local);
        let session = log_in(s, &http, ADMIN_TOKEN).await.cookie.unwrap();
        let cookie = session.split(';').next().unwrap().to_owned();
        Console { s, http, cookie }
    }

    /// Status and body (with its character references resolved, as a browser shows it).
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(self.s.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status(), unescape(&resp.text().await.unwrap()))
    }

    /// Status, `Location` and body (resolved as by [`Console::get`]).
    async fn post(&self, path: &str, body: String) -> (StatusCode, Option<String>, String) {
        let resp = self
            .http
            .post(self.s.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", FORM)
            .body(body)
            .send()
            .await
            .unwrap();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            resp.status(),
            location,
            unescape(&resp.text().await.unwrap()),
        )
    }
}

/// Text with the character references askama writes resolved.
fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The words of a page shaped like an app password: 23 characters, four groups of five
/// lower-case letters and digits joined by dashes.
fn app_passwords_in(page: &str) -> Vec<String> {
    page.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            w.len() == 23
                && w.split('-').count() == 4
                && w.split('-').all(|g| {
                    g.len() == 5
                        && g.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                })
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_admin_sets_the_ldap_view_in_the_console() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(5, 1, 1, 8)).await;
        let (_, pool) = s.post("/api/v1/pools", &json!({"name": "Acme"})).await;
        let pool = pool["id"].as_str().unwrap().to_owned();
        let (_, other) = s.post("/api/v1/pools", &json!({"name": "Beta"})).await;
        let other = other["id"].as_str().unwrap().to_owned();
        let (status, credential) = s
            .post(
                &format!("/api/v1/pools/{pool}/credentials"),
                &json!({"name": "gitlab", "scopes": ["ldap:search"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{credential}");
        let c = Console::open(&s, Ipv4Addr::new(127, 0, 0, 10)).await;

        // Linked from the pool's page; the defaults and the DNs they give.
        let (_, page) = c.get(&format!("/console/pools/{pool}")).await;
        assert!(
            page.contains(&format!("/console/pools/{pool}/ldap\"")),
            "{page}"
        );
        let (status, page) = c.get(&format!("/console/pools/{pool}/ldap")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let default = format!("o={pool},dc=orgsync");
        assert!(
            page.contains(&format!("<code id=\"effective-base\">{default}</code>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("placeholder=\"{default}\"")),
            "{page}"
        );
        assert!(
            page.contains(&format!("cn=<credential name>,ou=services,{default}"))
                && page.contains(&format!("uid=<login>,ou=people,{default}")),
            "{page}"
        );
        assert!(
            page.contains(&format!("cn=gitlab,ou=services,{default}")),
            "the credential with ldap:search is listed with its bind DN: {page}"
        );
        assert!(page.contains("value=\"user_id\" checked"), "{page}");
        assert!(page.contains("value=\"subtree\" checked"), "{page}");
        assert!(
            page.contains("the part of the e-mail address before @"),
            "{page}"
        );
        assert!(
            page.contains("POSIX attributes (for SSSD and other Linux hosts)")
                && page.contains("name=\"posix\" value=\"1\">")
                && page.contains("name=\"posix_id_base\" value=\"10000\""),
            "POSIX is off by default, from 10000: {page}"
        );
        let csrf = field(&page, "_csrf");

        // Without the CSRF token: refused.
        let (status, _, _) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                "base_dn=dc%3Dx&login=user_id&department_members=subtree".into(),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Saved through the form; the API reads back the canonical spelling.
        let (status, location, page) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                format!(
                    "_csrf={csrf}&base_dn={}&login=email_local_part&department_members=direct",
                    crate::api::url_encode("DC=Example, DC=com")
                ),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let location = location.unwrap();
        assert!(
            location.ends_with("/ldap?done=ldap_settings_saved"),
            "{location}"
        );
        let (_, settings) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
        assert_eq!(
            settings,
            json!({
                "base_dn": "dc=Example,dc=com",
                "login": "email_local_part",
                "department_members": "direct",
                "posix": false,
                "posix_id_base": 10000,
            })
        );
        let (_, page) = c.get(&location).await;
        assert!(page.contains("LDAP view settings saved"), "{page}");
        assert!(
            page.contains("<code id=\"effective-base\">dc=Example,dc=com</code>")
                && page.contains("uid=<login>,ou=people,dc=Example,dc=com")
                && page.contains("cn=gitlab,ou=services,dc=Example,dc=com"),
            "{page}"
        );
        assert!(
            page.contains("value=\"email_local_part\" checked"),
            "{page}"
        );
        assert!(page.contains("value=\"direct\" checked"), "{page}");

        // Not a DN: the form comes back with what to write, as entered, and nothing changes.
        let (status, _, page) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                format!(
                    "_csrf={csrf}&base_dn=example.com&login=orgsync_id&department_members=subtree"
                ),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        let errors = &page[page.find("id=\"ldap-settings\"").unwrap()..];
        assert!(
            errors.contains("is not a DN") && errors.contains("write it like dc=example,dc=com"),
            "{page}"
        );
        assert!(page.contains("value=\"example.com\""), "{page}");
        assert!(page.contains("value=\"orgsync_id\" checked"), "{page}");
        let (_, unchanged) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
        assert_eq!(unchanged, settings);

        // POSIX on, from 20000.
        let keep = format!(
            "_csrf={csrf}&base_dn={}&login=email_local_part&department_members=direct",
            crate::api::url_encode("dc=Example,dc=com")
        );
        let (status, _, page) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                format!("{keep}&posix=1&posix_id_base=20000"),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let (_, settings) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
        assert_eq!(
            settings,
            json!({
                "base_dn": "dc=Example,dc=com",
                "login": "email_local_part",
                "department_members": "direct",
                "posix": true,
                "posix_id_base": 20000,
            })
        );
        let (_, page) = c.get(&format!("/console/pools/{pool}/ldap")).await;
        assert!(
            page.contains("name=\"posix\" value=\"1\" checked")
                && page.contains("name=\"posix_id_base\" value=\"20000\""),
            "{page}"
        );

        // A base out of range, or not a number: the admin's message, the form as entered, and
        // nothing changes.
        for (entered, says) in [
            (
                "5",
                "posix_id_base: 5 is out of range; use 1000 to 1000000000",
            ),
            (
                "ten",
                "posix_id_base: the first POSIX number must be a whole number",
            ),
        ] {
            let (status, _, page) = c
                .post(
                    &format!("/console/pools/{pool}/ldap-settings"),
                    format!("{keep}&posix=1&posix_id_base={entered}"),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
            let errors = &page[page.find("class=\"error-box\"").unwrap()..];
            let errors = &errors[..errors.find("</div>").unwrap()];
            assert!(errors.contains(says), "{page}");
            assert!(
                page.contains(&format!("name=\"posix_id_base\" value=\"{entered}\""))
                    && page.contains("name=\"posix\" value=\"1\" checked"),
                "{page}"
            );
            let (_, unchanged) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
            assert_eq!(unchanged, settings);
        }

        // Saved without the checkbox (an unchecked box is not in the form): POSIX off, the
        // base kept.
        let (status, _, page) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                format!("{keep}&posix_id_base=20000"),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let (_, settings) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
        assert_eq!(settings["posix"], json!(false), "{settings}");
        assert_eq!(settings["posix_id_base"], json!(20000), "{settings}");
        let (_, page) = c.get(&format!("/console/pools/{pool}/ldap")).await;
        assert!(
            page.contains("name=\"posix\" value=\"1\">")
                && page.contains("name=\"posix_id_base\" value=\"20000\""),
            "{page}"
        );

        // Another pool's base may not hold this one's.
        let (_, page) = c.get(&format!("/console/pools/{other}/ldap")).await;
        let csrf = field(&page, "_csrf");
        let (status, _, page) = c
            .post(
                &format!("/console/pools/{other}/ldap-settings"),
                format!("_csrf={csrf}&base_dn=dc%3Dcom&login=user_id&department_members=subtree"),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{page}");
        assert!(
            page.contains("overlaps the base dc=example,dc=com")
                && page.contains("give each pool a base of its own"),
            "{page}"
        );
        let (_, theirs) = s.get(&format!("/api/v1/pools/{other}/ldap-settings")).await;
        assert_eq!(theirs["base_dn"], Value::Null);

        // Emptied: back to the default.
        let (status, _, _) = c
            .post(
                &format!("/console/pools/{pool}/ldap-settings"),
                format!("_csrf={csrf}&base_dn=&login=user_id&department_members=subtree"),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, settings) = s.get(&format!("/api/v1/pools/{pool}/ldap-settings")).await;
        assert_eq!(settings["base_dn"], Value::Null);
        let (_, page) = c.get(&format!("/console/pools/{pool}/ldap")).await;
        assert!(
            page.contains(&format!("<code id=\"effective-base\">{default}</code>")),
            "{page}"
        );
    }
}

#[tokio::test]
async fn an_admin_issues_shows_once_and_revokes_an_app_password_in_the_console() {
    for backend in Backend::all() {
        // 40 users: one of them frozen.
        let s = Served::start(backend, tenant(40, 4, 1, 7)).await;
        let pool = imported_pool(&s).await;
        let (_, users) = s
            .get(&format!("/api/v1/pools/{pool}/users?status=active&limit=2"))
            .await;
        let user = users["items"][0]["id"].as_str().unwrap().to_owned();
        let colleague = users["items"][1]["id"].as_str().unwrap().to_owned();
        let c = Console::open(&s, Ipv4Addr::new(127, 0, 0, 11)).await;
        let user_page = format!("/console/pools/{pool}/users/{user}");
        let (status, page) = c.get(&user_page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("id=\"app-passwords\"") && page.contains("No app password yet"),
            "{page}"
        );
        assert!(
            page.contains(&format!("uid=<uid>,ou=people,o={pool},dc=orgsync")),
            "{page}"
        );
        let csrf = field(&page, "_csrf");
        let issue = format!("{user_page}/app-passwords");

        // What to fix, with the form as entered; nothing is issued.
        for (form, status, says) in [
            (
                "label=gitlab&expires_in_days=soon",
                StatusCode::BAD_REQUEST,
                "whole number from 1 to 3650",
            ),
            (
                "label=gitlab&expires_in_days=0",
                StatusCode::BAD_REQUEST,
                "expires_in_days must be 1 to 3650",
            ),
            (
                "label=+&expires_in_days=",
                StatusCode::BAD_REQUEST,
                "give 1–64 characters naming the application",
            ),
        ] {
            let (got, _, page) = c.post(&issue, format!("_csrf={csrf}&{form}")).await;
            assert_eq!(got, status, "{form}: {page}");
            let section = &page[page.find("id=\"app-passwords\"").unwrap()..];
            assert!(
                section.contains("error-box") && section.contains(says),
                "{form}: {page}"
            );
            assert!(app_passwords_in(&page).is_empty(), "{page}");
        }
        // Without the CSRF token: refused.
        let (status, _, _) = c.post(&issue, "label=gitlab".into()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, listed) = s
            .get(&format!("/api/v1/pools/{pool}/users/{user}/app-passwords"))
            .await;
        assert_eq!(listed, json!([]));

        // Issued: the password is on this page, once.
        let (status, _, page) = c
            .post(
                &issue,
                format!("_csrf={csrf}&label=gitlab&expires_in_days=30"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("it is not shown again"), "{page}");
        let shown = app_passwords_in(&page);
        assert_eq!(shown.len(), 1, "{page}");
        let password = &shown[0];
        assert!(
            page.contains(&format!(
                "<code id=\"app-password-value\">{password}</code>"
            )),
            "{page}"
        );
        assert!(page.contains("badge live"), "{page}");
        let (_, listed) = s
            .get(&format!("/api/v1/pools/{pool}/users/{user}/app-passwords"))
            .await;
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        let id = listed[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(listed[0]["label"], "gitlab");
        assert_eq!(listed[0]["revoked_at"], Value::Null);
        let lasts =
            listed[0]["expires_at"].as_i64().unwrap() - listed[0]["created_at"].as_i64().unwrap();
        assert_eq!(lasts, 30 * 86_400_000);
        assert!(page.contains(&format!("id=\"revoke-{id}\"")), "{page}");

        // The next page lists it, without the password.
        let (_, page) = c.get(&user_page).await;
        assert!(app_passwords_in(&page).is_empty(), "shown again: {page}");
        assert!(!page.contains(password.as_str()));
        let table = &page[page.find("id=\"app-password-list\"").unwrap()..];
        assert!(
            table.contains("<td>gitlab</td>") && table.contains("badge live"),
            "{page}"
        );

        // Revoking it through another user's page is refused; through its own, it is revoked.
        let (status, _, page) = c
            .post(
                &format!("/console/pools/{pool}/users/{colleague}/app-passwords/{id}/revoke"),
                format!("_csrf={csrf}"),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
        let (status, location, _) = c
            .post(
                &format!("{user_page}/app-passwords/{id}/revoke"),
                format!("_csrf={csrf}"),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert_eq!(location, format!("{user_page}?done=app_password_revoked"));
        let (_, page) = c.get(&location).await;
        assert!(page.contains("App password revoked"), "{page}");
        let table = &page[page.find("id=\"app-password-list\"").unwrap()..];
        assert!(
            table.contains("badge revoked") && !table.contains(&format!("id=\"revoke-{id}\"")),
            "{page}"
        );
        let (_, listed) = s
            .get(&format!("/api/v1/pools/{pool}/users/{user}/app-passwords"))
            .await;
        assert!(listed[0]["revoked_at"].as_i64().is_some(), "{listed}");

        // A user who is not active gets none: the page says why.
        let (_, frozen) = s
            .get(&format!("/api/v1/pools/{pool}/users?status=frozen&limit=1"))
            .await;
        let frozen = frozen["items"][0]["id"].as_str().unwrap().to_owned();
        let frozen_page = format!("/console/pools/{pool}/users/{frozen}");
        let (_, page) = c.get(&frozen_page).await;
        assert!(
            page.contains("only active users get app passwords"),
            "{page}"
        );
        let (status, _, page) = c
            .post(
                &format!("{frozen_page}/app-passwords"),
                format!("_csrf={csrf}&label=gitlab&expires_in_days="),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{page}");
        let section = &page[page.find("id=\"app-passwords\"").unwrap()..];
        assert!(
            section.contains(&format!(
                "user {frozen} is frozen: app passwords are only issued to active users"
            )),
            "{page}"
        );
        assert!(
            page.contains("value=\"gitlab\""),
            "the label is kept: {page}"
        );
        assert!(app_passwords_in(&page).is_empty(), "{page}");
    }
}
