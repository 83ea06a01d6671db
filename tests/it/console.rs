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

/// A user's avatar on the console page is the emulator's URL, the console's CSP lets the
/// browser load it, and the emulator serves an image there (no broken image in the demo).
#[tokio::test]
async fn the_console_shows_avatars_the_emulator_serves() {
    let s = Served::start(Backend::Sqlite, tenant(20, 3, 1, 5)).await;
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
