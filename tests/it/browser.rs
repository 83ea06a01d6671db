//! The web console in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) with fantoccini. An admin logs in, creates a pool, walks the
//! connection wizard against the in-process emulator, tests the credentials, imports, and
//! browses the org tree, a department and a user. Screenshots of each step land in
//! `target/screenshots/`.
//!
//! Needs `/usr/bin/chromedriver` and `/usr/bin/chromium` (`scripts/test.sh` installs them);
//! without them the test fails rather than passing silently.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use emulator::faults::FaultConfig;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::serve_support::{ADMIN_TOKEN, Served};
use crate::support::{APP_ID, APP_SECRET, Backend, ENCRYPT_KEY, VERIFICATION_TOKEN, tenant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: the console browser test needs Debian's chromium and \
                 chromium-driver packages. Run scripts/test.sh (it installs them), or \
                 `apt-get install chromium chromium-driver`."
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver failed to start");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = http.get(format!("{}/status", driver.url)).send().await
                && resp.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    async fn client(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                ],
            }),
        );
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("could not start a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Polls the page until it contains `needle` (pages reload under htmx polling, so elements
/// may go stale; the page source does not).
async fn wait_for_text(c: &Client, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(src) = c.source().await
            && src.contains(needle)
        {
            return src;
        }
        if Instant::now() > deadline {
            let src = c.source().await.unwrap_or_default();
            panic!("timed out waiting for {needle:?}; the page is:\n{src}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

#[tokio::test]
async fn console_end_to_end_in_chromium() {
    // Listing users is slowed down, so the import runs long enough for the job page to show
    // its live progress (htmx polling) before the verdict.
    let served = Served::start_with(Backend::Sqlite, tenant(60, 8, 3, 7), |config| {
        config.faults = FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_millis(300),
            latency_max: Duration::from_millis(300),
            endpoints: vec!["contact/v3/users/find_by_department".into()],
            ..FaultConfig::none()
        };
    })
    .await;
    let driver = Driver::start().await;
    let c = driver.client().await;

    // Without a session every page sends the browser to the login page.
    c.goto(&served.url("/console/connections")).await.unwrap();
    let at = path_of(&c).await;
    assert_eq!(
        at,
        "/console/login",
        "not sent to the login page; the page is:\n{}",
        c.source().await.unwrap_or_default()
    );
    shot(&c, "login.png").await;
    fill(&c, "#token", "wrong-token").await;
    click(&c, "#login").await;
    wait_for_text(&c, "That is not the admin token", Duration::from_secs(10)).await;
    fill(&c, "#token", ADMIN_TOKEN).await;
    click(&c, "#login").await;
    // Back where we wanted to go.
    wait_for_text(&c, "<h1>Connections</h1>", Duration::from_secs(10)).await;

    // No pool yet: the dashboard offers to create one.
    c.goto(&served.url("/")).await.unwrap();
    wait_for_text(
        &c,
        "Start here: create a user pool",
        Duration::from_secs(10),
    )
    .await;
    fill(&c, "#pool-name", "Acme").await;
    click(&c, "form[action='/console/pools'] button[type=submit]").await;
    wait_for_text(&c, "User pool created.", Duration::from_secs(10)).await;
    let pool_id = path_of(&c)
        .await
        .trim_start_matches("/console/pools/")
        .to_owned();
    click(&c, "#add-connection").await;

    // The wizard: Feishu's steps, the callback URL to copy, events and permissions.
    let src = wait_for_text(&c, "Create a self-built app", Duration::from_secs(10)).await;
    for needle in [
        "contact.user.deleted_v3",
        "contact.scope.updated_v3",
        "contact.department.updated_v3",
        "contact:user.employee:readonly",
        "contact:contact.base:readonly",
        "failed to get Feishu organization departments",
        "all employees",
    ] {
        assert!(src.contains(needle), "the wizard lacks {needle:?}");
    }
    fill(&c, "#identifier", "feishu").await;
    fill(&c, "#display_name", "Acme on Feishu").await;
    fill(&c, "#app_id", APP_ID).await;
    fill(&c, "#app_secret", APP_SECRET).await;
    click(&c, "details.advanced summary").await;
    fill(&c, "#base_url", &served.emu.base_url()).await;
    fill(&c, "#encrypt_key", ENCRYPT_KEY).await;
    fill(&c, "#verification_token", VERIFICATION_TOKEN).await;
    // The callback URL follows the identifier as it is typed.
    let callback = c
        .find(Locator::Id("callback-url"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        callback,
        served.url(&format!("/connections/enterprise/feishu/{pool_id}/events"))
    );
    c.set_window_size(1280, 3400).await.unwrap();
    shot(&c, "wizard.png").await;
    c.set_window_size(1280, 900).await.unwrap();
    click(&c, "#save-connection").await;
    let src = wait_for_text(&c, "Connection saved", Duration::from_secs(10)).await;
    assert!(src.contains(&format!("/connections/enterprise/feishu/{pool_id}/events")));
    assert!(!src.contains(APP_SECRET), "a secret leaked into the page");
    assert!(!src.contains(ENCRYPT_KEY), "a secret leaked into the page");

    // Saving already checked the credentials; the page shows that check.
    assert!(
        src.contains("Credentials work"),
        "the check on save is shown"
    );
    // Test credentials (htmx): each step with its message. The saved page's result is marked
    // first, so the wait below sees htmx's fresh answer rather than the check made on save.
    c.execute(
        "const el = document.getElementById('check-summary'); if (el) { el.dataset.stale = '1'; }",
        vec![],
    )
    .await
    .unwrap();
    click(&c, "#test-credentials").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = c
            .execute(
                "const el = document.getElementById('check-summary'); \
                 return el !== null && el.dataset.stale === undefined \
                 && el.textContent.includes('Credentials work');",
                vec![],
            )
            .await
            .unwrap();
        if fresh == json!(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the credential test's answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary = c
        .find(Locator::Id("check-summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.contains("App ID and App Secret"), "{summary}");
    // htmx swapped the result in: the page did not navigate to the form's fallback target.
    assert!(!path_of(&c).await.ends_with("/test"));
    let htmx = c.execute("return typeof htmx;", vec![]).await.unwrap();
    assert_eq!(htmx, json!("object"), "htmx loads under the console's CSP");
    assert!(summary.contains("Contact scope"), "{summary}");
    shot(&c, "credentials.png").await;

    // Import with live progress, until the verdict.
    click(&c, "#start-import").await;
    let src = wait_for_text(&c, "Progress", Duration::from_secs(10)).await;
    assert!(path_of(&c).await.starts_with("/console/jobs/"));
    assert!(
        src.contains("hx-trigger=\"every 1s\""),
        "a running job's page polls its progress:\n{src}"
    );
    shot(&c, "import-running.png").await;
    wait_for_text(&c, "id=\"verdict\">complete<", Duration::from_secs(90)).await;
    let src = wait_for_text(&c, "Action log", Duration::from_secs(10)).await;
    assert!(
        src.contains("CreateUser"),
        "the counts show the created users"
    );
    shot(&c, "import.png").await;

    // The org tree and a department.
    click(&c, "nav.side a[href$='/tree']").await;
    wait_for_text(&c, "<h1>Org tree</h1>", Duration::from_secs(10)).await;
    shot(&c, "tree.png").await;
    let link = c.find(Locator::Css("ul.tree a")).await.unwrap();
    let department = link.text().await.unwrap();
    link.click().await.unwrap();
    let src = wait_for_text(&c, "Sub-departments", Duration::from_secs(10)).await;
    assert!(src.contains(&department));
    assert!(src.contains("Members"));
    shot(&c, "department.png").await;

    // A user and their fields.
    click(&c, "nav.side a[href$='/users']").await;
    wait_for_text(&c, "<h1>Users</h1>", Duration::from_secs(10)).await;
    let first = c
        .find(Locator::Css("table.users tbody tr td a"))
        .await
        .unwrap();
    let name = first.text().await.unwrap();
    first.click().await.unwrap();
    let src = wait_for_text(&c, "Feishu ids", Duration::from_secs(10)).await;
    assert!(src.contains(&name));
    for needle in [
        "Profile",
        "E-mail",
        "Departments",
        "open_id",
        "History",
        "user_created",
    ] {
        assert!(src.contains(needle), "the user page lacks {needle:?}");
    }
    assert!(src.contains("ou_"), "the user's open_id is shown");
    // The avatar is an image the browser loaded: served by the emulator, let in by the CSP.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loaded = c
            .execute(
                "const i = document.querySelector('img.avatar'); \
                 return i ? (i.complete && i.naturalWidth > 0) : null;",
                vec![],
            )
            .await
            .unwrap();
        if loaded == json!(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the user's avatar did not load ({loaded})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shot(&c, "user.png").await;

    // Search finds the user by name.
    c.goto(&served.url(&format!(
        "/console/pools/{pool_id}/users?q={}",
        name.split_whitespace().next().unwrap_or(&name)
    )))
    .await
    .unwrap();
    wait_for_text(&c, &name, Duration::from_secs(10)).await;

    // Unknown ids answer 404 with what to do.
    c.goto(&served.url(&format!("/console/pools/{pool_id}/users/no-such-user")))
        .await
        .unwrap();
    let src = wait_for_text(&c, "404", Duration::from_secs(10)).await;
    assert!(src.contains("user no-such-user not found"), "{src}");
    assert!(src.contains("How to fix"));
    shot(&c, "not-found.png").await;

    // The jobs list and the parked deletions and event pages render.
    c.goto(&served.url("/console/jobs")).await.unwrap();
    wait_for_text(&c, "complete", Duration::from_secs(10)).await;
    shot(&c, "jobs.png").await;
    c.goto(&served.url("/console/events")).await.unwrap();
    wait_for_text(&c, "<h1>Event log</h1>", Duration::from_secs(10)).await;
    c.goto(&served.url(&format!("/console/pools/{pool_id}/parked")))
        .await
        .unwrap();
    wait_for_text(&c, "<h1>Parked deletions</h1>", Duration::from_secs(10)).await;

    c.close().await.unwrap();
    drop(driver);

    csrf_is_enforced(&served).await;
}

const FORM: &str = "application/x-www-form-urlencoded";

/// `k=v&…`, percent-encoded (reqwest here is built without its `form` feature).
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A POST without the session's CSRF token is refused, with any session.
async fn csrf_is_enforced(served: &Served) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: to the login page.
    let resp = http.get(served.url("/console")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login")
    );
    let resp = http
        .post(served.url("/console/login"))
        .header("content-type", FORM)
        .body(form_body(&[("token", ADMIN_TOKEN), ("next", "/console")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let post = |form: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http.post(served.url("/console/pools"))
            .header("cookie", &cookie)
            .header("content-type", FORM)
            .body(form_body(&pairs))
            .send()
    };
    let resp = post(vec![("name", "Sneaky".into())]).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("CSRF token is missing or wrong")
    );
    let resp = post(vec![("name", "Sneaky".into()), ("_csrf", "0".repeat(64))])
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The token from a page works.
    let page = http
        .get(served.url("/console/pools"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let resp = post(vec![("name", "Second pool".into()), ("_csrf", token)])
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let names: Vec<String> = served
        .store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&"Second pool".to_owned()), "{names:?}");
    assert!(!names.contains(&"Sneaky".to_owned()), "{names:?}");
}

/// A logged-in console client without a browser (no redirects followed).
struct Console<'a> {
    served: &'a Served,
    http: reqwest::Client,
    cookie: String,
}

impl<'a> Console<'a> {
    async fn login(served: &'a Served) -> Console<'a> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .post(served.url("/console/login"))
            .header("content-type", FORM)
            .body(form_body(&[("token", ADMIN_TOKEN)]))
            .send()
            .await
            .unwrap();
        if resp.status() != 303 {
            let status = resp.status();
            let headers = format!("{:?}", resp.headers());
            panic!(
                "login answered {status} {headers}: {}",
                resp.text().await.unwrap()
            );
        }
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Console {
            served,
            http,
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(self.served.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or(resp.text().await.unwrap()))
    }

    async fn csrf(&self) -> String {
        let (_, page) = self.get("/console/pools").await;
        page.split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    }

    /// POSTs a form with the CSRF token; answers the status and the body or `Location`.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let token = self.csrf().await;
        let mut all = fields.to_vec();
        all.push(("_csrf", &token));
        let resp = self
            .http
            .post(self.served.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", FORM)
            .body(form_body(&all))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or(resp.text().await.unwrap()))
    }
}

#[tokio::test]
async fn console_forms_errors_and_edits() {
    let served = Served::start(Backend::Sqlite, tenant(20, 4, 2, 11)).await;
    let console = Console::login(&served).await;

    // Static files are embedded and cacheable; pages are not cached.
    let resp = served
        .http
        .get(served.url("/console/static/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(resp.text().await.unwrap().contains("htmx"));
    let (status, _) = console.get("/console").await;
    assert_eq!(status, 200);
    let resp = served.http.get(served.url("/")).send().await.unwrap();
    assert!(resp.url().path().starts_with("/console"));

    // The wizard without a pool goes to the pools page; then a pool is created.
    let (status, location) = console.get("/console/connections/new").await;
    assert_eq!((status, location.as_str()), (303, "/console/pools"));
    let (status, location) = console.post("/console/pools", &[("name", "Acme")]).await;
    assert_eq!(status, 303, "{location}");
    let pool = location
        .trim_start_matches("/console/pools/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    // A bad identifier: the form comes back with the message and the fix, secrets not echoed.
    let base = served.emu.base_url();
    let mut fields = vec![
        ("pool", pool.as_str()),
        ("identifier", "Not Valid!"),
        ("provider", "feishu"),
        ("base_url", base.as_str()),
        ("app_id", APP_ID),
        ("app_secret", APP_SECRET),
        ("encrypt_key", ENCRYPT_KEY),
        ("verification_token", VERIFICATION_TOKEN),
    ];
    let (status, page) = console.post("/console/connections", &fields).await;
    assert_eq!(status, 400);
    assert!(page.contains("is not allowed"), "{page}");
    assert!(page.contains("How to fix"), "{page}");
    assert!(!page.contains(APP_SECRET) && !page.contains(ENCRYPT_KEY));
    assert!(page.contains(APP_ID), "the non-secret fields are kept");
    fields[1] = ("identifier", "feishu");
    // Saved: the connection's page comes back at once with the credential check it ran.
    let (status, page) = console.post("/console/connections", &fields).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connection saved"), "{page}");
    assert!(page.contains("Credentials work"), "{page}");
    let connection = page
        .split("action=\"/console/connections/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    assert!(directory::ids::is_id(&connection), "{connection}");
    // A duplicate identifier is a conflict, said on the form.
    let (status, page) = console.post("/console/connections", &fields).await;
    assert_eq!(status, 409, "{page}");

    // The detail page masks the secrets.
    let (status, page) = console
        .get(&format!("/console/connections/{connection}"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("set (hidden)"));
    assert!(!page.contains(APP_SECRET) && !page.contains(VERIFICATION_TOKEN));

    // Edit: rename, drop the Encrypt Key; a bad number is refused with its fix.
    let edit = |name: &'static str, interval: &'static str| {
        let base = base.as_str();
        vec![
            ("display_name", name),
            ("provider", "feishu"),
            ("base_url", base),
            ("app_id", APP_ID),
            ("app_secret", "a-wrong-secret"),
            ("encrypt_key", ""),
            ("clear_encrypt_key", "1"),
            ("verification_token", ""),
            ("reconcile_interval_secs", interval),
            ("max_count", "50"),
            ("max_fraction", "0.05"),
        ]
    };
    let path = format!("/console/connections/{connection}");
    let (status, page) = console.post(&path, &edit("Renamed", "soon")).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("is not a number") && page.contains("21600"),
        "{page}"
    );
    // A new App Secret is checked on save: the page shows the failure with its fix.
    let (status, page) = console.post(&path, &edit("Renamed", "3600")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connection updated"), "{page}");
    assert!(page.contains("The credential test failed"), "{page}");
    assert!(page.contains("How to fix"), "{page}");
    let view = served
        .store
        .get_connection(&connection.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.display_name, "Renamed");
    assert!(view.encrypt_key.is_none());
    assert!(
        view.verification_token.is_some(),
        "a blank field keeps the secret"
    );
    assert_eq!(view.base_url.as_deref(), Some(base.as_str()));
    assert_eq!(view.settings.reconcile_interval_secs, 3600);

    // Without htmx the credential test renders the whole page; the wrong secret is named
    // with what to fix.
    let (status, page) = console.post(&format!("{path}/test"), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("The credential test failed"), "{page}");
    assert!(page.contains("How to fix"), "{page}");

    // Unknown ids and kinds.
    for missing in [
        "/console/jobs/nope".to_owned(),
        "/console/connections/nope".to_owned(),
        format!("/console/pools/{pool}/departments/nope"),
        format!("/console/pools/{pool}/groups/nope"),
        "/console/pools/nope/tree".to_owned(),
        "/console/events/123456".to_owned(),
        "/console/nothing-here".to_owned(),
    ] {
        let (status, page) = console.get(&missing).await;
        assert_eq!(status, 404, "{missing}: {page}");
        assert!(page.contains("How to fix"), "{missing}: {page}");
    }
    let (status, _) = console
        .post(&format!("{path}/jobs"), &[("kind", "purge")])
        .await;
    assert_eq!(status, 400);
    let (status, page) = console.post("/console/parked/999/approve", &[]).await;
    assert_eq!(status, 404, "{page}");

    // Delete with a confirmation page.
    let (status, page) = console.get(&format!("{path}/delete")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Delete the connection"));
    let (status, location) = console.post(&format!("{path}/delete"), &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/connections?done=connection_deleted")
    );
    assert!(
        served
            .store
            .get_connection(&connection.as_str().into())
            .await
            .unwrap()
            .is_none()
    );

    // The pool: renamed, then deleted after typing its name.
    let pool_path = format!("/console/pools/{pool}");
    let (status, page) = console.get(&pool_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"rename-pool\"") && page.contains("id=\"delete-pool\""));
    let (status, page) = console
        .post(&format!("{pool_path}/rename"), &[("name", " ")])
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("name is required"), "{page}");
    let (status, location) = console
        .post(&format!("{pool_path}/rename"), &[("name", "Acme Two")])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("{pool_path}?done=pool_renamed").as_str())
    );
    let (status, page) = console.get(&format!("{pool_path}/delete")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Type the pool's name") && page.contains("Acme Two"),
        "{page}"
    );
    for (typed, needle) in [("", "was not typed"), ("Acme", "neither the name")] {
        let (status, page) = console
            .post(&format!("{pool_path}/delete"), &[("confirm", typed)])
            .await;
        assert_eq!(status, 400, "{typed:?}: {page}");
        assert!(page.contains(needle), "{typed:?}: {page}");
    }
    let (status, location) = console
        .post(&format!("{pool_path}/delete"), &[("confirm", "Acme Two")])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/pools?done=pool_deleted")
    );
    assert!(
        served
            .store
            .get_pool(&pool.as_str().into())
            .await
            .unwrap()
            .is_none()
    );

    // Logout ends the session cookie.
    let token = console.csrf().await;
    let resp = console
        .http
        .post(served.url("/console/logout"))
        .header("cookie", &console.cookie)
        .header("content-type", FORM)
        .body(form_body(&[("_csrf", &token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}
