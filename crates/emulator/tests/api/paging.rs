//! Page sizes (defaults, maxima, 40011 or clamping), opaque page tokens (40012), `/scopes`
//! filling its three lists from one budget, and 43010 on big departments.

use emulator::config::PageSizeOutOfRange;
use feishu::client::FeishuError;
use futures::TryStreamExt;
use serde_json::Value;

use crate::support::{APP, Raw, RawResponse, SECRET, build_tenant, client, full_app, start};

const C: &str = "/open-apis/contact/v3";

fn items(r: &RawResponse, key: &str) -> usize {
    r.data()
        .get(key)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn enc(token: &str) -> String {
    url::form_urlencoded::byte_serialize(token.as_bytes()).collect()
}

#[tokio::test]
async fn page_sizes_have_defaults_maxima_and_a_clamp_switch() {
    let (tenant, marks) = build_tenant(300, 60, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let root_children = format!("{C}/departments/0/children?fetch_child=true");
    let dept_count = emu.with_tenant(|t| t.departments.len());

    // Defaults: 10 for children and find_by_department, 50 for groups and /scopes.
    let first = raw.get(Some(&token), &root_children).await;
    assert_eq!(items(&first, "items"), 10);
    assert_eq!(first.data()["has_more"], true);
    let big_user_dept = emu.with_tenant(|t| {
        t.departments
            .keys()
            .max_by_key(|d| t.members(d).len())
            .unwrap()
            .clone()
    });
    assert!(emu.with_tenant(|t| t.members(&big_user_dept).len()) > 10);
    let r = raw
        .get(
            Some(&token),
            &format!("{C}/users/find_by_department?department_id={big_user_dept}"),
        )
        .await;
    assert_eq!(items(&r, "items"), 10);

    // Maxima.
    for (path, max) in [
        (format!("{root_children}&page_size="), 50),
        (
            format!("{C}/users/find_by_department?department_id={big_user_dept}&page_size="),
            50,
        ),
        (format!("{C}/group/simplelist?page_size="), 100),
        (format!("{C}/scopes?page_size="), 100),
        (
            format!("{C}/group/g000100/member/simplelist?page_size="),
            100,
        ),
    ] {
        let ok = raw.get(Some(&token), &format!("{path}{max}")).await;
        assert_eq!(ok.code(), 0, "{path}{max}: {}", ok.text);
        for bad in [max + 1, 0] {
            let r = raw.get(Some(&token), &format!("{path}{bad}")).await;
            assert_eq!((r.status, r.code()), (400, 40011), "{path}{bad}");
            assert_eq!(r.json["msg"], "page size is invalid");
        }
    }
    let r = raw
        .get(Some(&token), &format!("{root_children}&page_size=50"))
        .await;
    assert_eq!(items(&r, "items"), 50.min(dept_count));

    emu.state()
        .update_behaviour(|b| b.page_size_out_of_range = PageSizeOutOfRange::Clamp);
    let r = raw
        .get(Some(&token), &format!("{root_children}&page_size=500"))
        .await;
    assert_eq!((r.code(), items(&r, "items")), (0, 50));
    let r = raw
        .get(Some(&token), &format!("{root_children}&page_size=0"))
        .await;
    assert_eq!((r.code(), items(&r, "items")), (0, 10));

    // The client's own page sizes (the maxima) walk everything.
    let all: Vec<_> = client(&emu, APP, SECRET)
        .department_children("0", true)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), dept_count);
    drop(marks);
}

#[tokio::test]
async fn page_tokens_are_opaque_and_checked() {
    let (tenant, marks) = build_tenant(200, 60, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let path = format!("{C}/departments/0/children?fetch_child=true&page_size=7");
    let first = raw.get(Some(&token), &path).await;
    let next = first.data()["page_token"].as_str().unwrap().to_owned();
    assert!(next.ends_with('='), "base64 with padding: {next}");

    // Verbatim (URL-encoded) it works, and pages do not overlap.
    let second = raw
        .get(Some(&token), &format!("{path}&page_token={}", enc(&next)))
        .await;
    assert_eq!(second.code(), 0);
    let ids = |r: &RawResponse| -> Vec<String> {
        r.data()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["open_department_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)));

    let mut tampered = next.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_list = format!(
        "{C}/departments/{}/children?fetch_child=true&page_size=7",
        marks.top[0]
    );
    for (p, t) in [
        (path.as_str(), "garbage"),
        (path.as_str(), "AAAAAAAAAAAAAAAAAAAAAA=="),
        (path.as_str(), tampered.as_str()),
        // A real token of another list.
        (other_list.as_str(), next.as_str()),
    ] {
        let r = raw
            .get(Some(&token), &format!("{p}&page_token={}", enc(t)))
            .await;
        assert_eq!((r.status, r.code()), (400, 40012), "{t}");
        assert_eq!(r.json["msg"], "page token is invalid error");
    }
    // Another app cannot use it either.
    let mut other = full_app();
    other.app_id = "cli_second_app_0001".into();
    other.app_secret = "second".into();
    emu.with_tenant_mut(|t| t.apps.insert(other.app_id.clone(), other.clone()));
    let other_token = raw.token(&other.app_id, "second").await;
    let r = raw
        .get(
            Some(&other_token),
            &format!("{path}&page_token={}", enc(&next)),
        )
        .await;
    assert_eq!(r.code(), 40012);
}

#[tokio::test]
async fn scopes_fill_users_then_departments_then_groups_from_one_budget() {
    let (tenant, _) = build_tenant(200, 20, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let (users, depts, groups) =
        emu.with_tenant(|t| (t.members("0").len(), t.children("0").len(), t.groups.len()));
    assert_eq!((users, depts, groups), (3, 5, 8));
    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut path = format!("{C}/scopes?page_size=3");
        if let Some(t) = &page_token {
            path.push_str(&format!("&page_token={}", enc(t)));
        }
        let r = raw.get(Some(&token), &path).await;
        let d = r.data();
        let count = |k: &str| d.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        seen.push((
            count("user_ids"),
            count("department_ids"),
            count("group_ids"),
        ));
        if d["has_more"] == false {
            assert!(d.get("page_token").is_none());
            break;
        }
        page_token = Some(d["page_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        vec![
            (3, 0, 0),
            (0, 3, 0),
            (0, 2, 1),
            (0, 0, 3),
            (0, 0, 3),
            (0, 0, 1)
        ]
    );
}

#[tokio::test]
async fn recursion_into_a_big_department_answers_43010() {
    let (tenant, marks) = build_tenant(100, 30, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let c = client(&emu, APP, SECRET);
    let err = c
        .department_children(&marks.big, true)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, FeishuError::RecursionRefused { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(43010));
    c.department_children(&marks.big, false)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    // Other departments recurse fine.
    c.department_children(&marks.top[0], true)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}
