//! Field permissions (protocol §3.5–3.6) and id types (§2.2) in every id field.

use emulator::config::UserIdWithoutPermission;
use emulator::tenant::{AppRecord, perm};
use feishu::client::FeishuError;
use feishu::ids::{DepartmentIdType, IdTypes, MemberIdType, MemberType, UserIdType};
use futures::TryStreamExt;
use serde_json::Value;

use crate::support::{APP, Raw, SECRET, build_tenant, client, full_app, start};

const LIMITED: &str = "cli_limited0000001";
const LIMITED_SECRET: &str = "limited-secret";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn gated_fields_vanish_without_their_permission() {
    let (tenant, marks) = build_tenant(120, 15, vec![full_app()]);
    let mut limited = AppRecord::new(LIMITED, LIMITED_SECRET);
    limited.permissions = [perm::CONTACT_BASE.to_owned()].into();
    let emu = start(tenant, |c| {
        c.tenant.apps.insert(LIMITED.into(), limited);
    })
    .await;
    let raw = Raw::new(&emu);
    let key = marks.multi;
    let (open_id, dept) = emu.with_tenant(|t| {
        (
            t.apps[LIMITED].open_id(key),
            t.users[&key].memberships[0].department.clone(),
        )
    });
    let user_path = format!("/open-apis/contact/v3/users/{open_id}");
    let dept_path = format!("/open-apis/contact/v3/departments/{dept}");

    let token = raw.token(LIMITED, LIMITED_SECRET).await;
    let u = raw.get(Some(&token), &user_path).await;
    assert_eq!(u.code(), 0, "{}", u.text);
    assert_eq!(
        keys(&u.data()["user"]),
        ["is_frozen", "mobile_visible", "open_id", "union_id"]
    );
    let d = raw.get(Some(&token), &dept_path).await;
    assert_eq!(keys(&d.data()["department"]), ["open_department_id"]);

    // Each permission unlocks its fields (a new grant takes effect at once here).
    let grants: [(&str, &[&str]); 7] = [
        (perm::USER_BASE, &["name", "en_name", "avatar"]),
        (perm::USER_EMAIL, &["email"]),
        (perm::USER_PHONE, &["mobile"]),
        (
            perm::USER_EMPLOYEE,
            &["status", "employee_no", "join_time", "city"],
        ),
        (
            perm::USER_DEPARTMENT,
            &["department_ids", "orders", "leader_user_id"],
        ),
        (perm::USER_EMPLOYEE_ID, &["user_id"]),
        (perm::USER_GENDER, &["gender"]),
    ];
    for (grant, fields) in grants {
        let before = raw.get(Some(&token), &user_path).await;
        emu.with_tenant_mut(|t| {
            t.apps
                .get_mut(LIMITED)
                .unwrap()
                .permissions
                .insert(grant.to_owned());
        });
        let after = raw.get(Some(&token), &user_path).await;
        for f in fields {
            assert!(
                before.data()["user"].get(*f).is_none(),
                "{f} before {grant}"
            );
            assert!(after.data()["user"].get(*f).is_some(), "{f} after {grant}");
        }
    }
    for (grant, fields) in [
        (
            perm::DEPARTMENT_BASE,
            &["name", "i18n_name", "department_id", "status"][..],
        ),
        (
            perm::DEPARTMENT_ORGANIZE,
            &["parent_department_id", "order", "member_count", "leaders"][..],
        ),
    ] {
        let before = raw.get(Some(&token), &dept_path).await;
        emu.with_tenant_mut(|t| {
            t.apps
                .get_mut(LIMITED)
                .unwrap()
                .permissions
                .insert(grant.to_owned());
        });
        let after = raw.get(Some(&token), &dept_path).await;
        for f in fields {
            assert!(
                before.data()["department"].get(*f).is_none(),
                "{f} before {grant}"
            );
            assert!(
                after.data()["department"].get(*f).is_some(),
                "{f} after {grant}"
            );
        }
    }

    // A legacy contact permission unlocks everything except e-mail and mobile.
    emu.with_tenant_mut(|t| {
        t.apps.get_mut(LIMITED).unwrap().permissions =
            [perm::LEGACY_READONLY_AS_APP.to_owned()].into();
    });
    let u = raw.get(Some(&token), &user_path).await;
    let user = &u.data()["user"];
    assert!(user.get("status").is_some() && user.get("user_id").is_some());
    assert!(user.get("email").is_none() && user.get("mobile").is_none());
    // The order is a string on the wire.
    let d = raw.get(Some(&token), &dept_path).await;
    assert!(d.data()["department"]["order"].is_string());
}

#[tokio::test]
async fn every_id_field_follows_the_requested_id_types() {
    let (tenant, marks) = build_tenant(200, 25, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let open = client(&emu, APP, SECRET);

    for types in [
        IdTypes::new(UserIdType::UserId, DepartmentIdType::DepartmentId),
        IdTypes::new(UserIdType::UnionId, DepartmentIdType::DepartmentId),
        IdTypes::new(UserIdType::UserId, DepartmentIdType::OpenDepartmentId),
    ] {
        let c = open.with_id_types(types);
        let (dept_key, user_key, dept_ids) = emu.with_tenant(|t| {
            // A department with a leader, an HRBP and a parent that is not the root.
            let d = t
                .departments
                .values()
                .find(|d| d.parent != "0" && d.leaders.len() == 2 && !d.hrbps.is_empty())
                .or_else(|| {
                    t.departments
                        .values()
                        .find(|d| d.parent != "0" && !d.leaders.is_empty())
                })
                .unwrap();
            (
                d.open_department_id.clone(),
                marks.multi,
                t.users[&marks.multi].memberships.clone(),
            )
        });
        let (d_id, u_id, expect) = emu.with_tenant(|t| {
            let app = &t.apps[APP];
            let d_id = t.department_id_as(&dept_key, types.department);
            let u_id = t.user_id_as(app, user_key, types.user);
            let d = &t.departments[&dept_key];
            let u = &t.users[&user_key];
            let expect = (
                t.department_id_as(&d.parent, types.department),
                d.leaders
                    .iter()
                    .map(|(_, k)| t.user_id_as(app, *k, types.user))
                    .collect::<Vec<_>>(),
                d.hrbps
                    .iter()
                    .map(|k| t.user_id_as(app, *k, types.user))
                    .collect::<Vec<_>>(),
                dept_ids
                    .iter()
                    .map(|m| t.department_id_as(&m.department, types.department))
                    .collect::<Vec<_>>(),
                u.leader.map(|k| t.user_id_as(app, k, types.user)),
            );
            (d_id, u_id, expect)
        });
        // Path ids are read in the requested type; every id in the answer is in it too.
        let d = c.department(&d_id).await.unwrap();
        assert_eq!(d.parent_department_id.as_deref(), Some(expect.0.as_str()));
        let leaders: Vec<String> = d
            .leaders
            .unwrap()
            .into_iter()
            .map(|l| l.leader_id.unwrap())
            .collect();
        assert_eq!(leaders, expect.1);
        assert_eq!(d.leader_user_id.as_ref(), expect.1.first());
        let hrbps: Vec<String> = d
            .department_hrbps
            .unwrap_or_default()
            .iter()
            .map(|h| h.best_id().unwrap().to_owned())
            .collect();
        assert_eq!(hrbps, expect.2);

        let u = c.user(&u_id).await.unwrap();
        assert_eq!(u.department_ids.as_ref(), Some(&expect.3));
        let orders: Vec<String> = u
            .orders
            .unwrap()
            .into_iter()
            .map(|o| o.department_id.unwrap())
            .collect();
        assert_eq!(orders, expect.3);
        assert_eq!(u.leader_user_id, expect.4);
        assert_eq!(c.users_batch(&[&u_id]).await.unwrap().len(), 1);

        // Listing by a department given in the requested type.
        let listed: Vec<_> = c
            .users_by_department(&expect.3[0])
            .try_collect()
            .await
            .unwrap();
        assert!(
            listed
                .iter()
                .any(|x| x.department_ids.as_ref() == Some(&expect.3))
        );
        // Children of a first-level department: parent "0" stays "0" for the top level.
        let top = emu.with_tenant(|t| t.department_id_as(&marks.top[0], types.department));
        let top_d = c.department(&top).await.unwrap();
        assert_eq!(top_d.parent_department_id.as_deref(), Some("0"));
        let kids: Vec<_> = c
            .department_children(&top, false)
            .try_collect()
            .await
            .unwrap();
        assert!(
            kids.iter()
                .all(|k| k.parent_department_id.as_deref() == Some(top.as_str()))
        );
        // /scopes answers in the requested types.
        let scopes = c.scopes().await.unwrap();
        let want_depts: Vec<String> = emu.with_tenant(|t| {
            t.children("0")
                .iter()
                .map(|d| t.department_id_as(d, types.department))
                .collect()
        });
        assert_eq!(scopes.department_ids, want_depts);
        let want_users: Vec<String> = emu.with_tenant(|t| {
            t.members("0")
                .iter()
                .map(|k| t.user_id_as(&t.apps[APP], *k, types.user))
                .collect()
        });
        assert_eq!(scopes.user_ids, want_users);
    }

    // Group members in each member id type.
    let (gid, expected) = emu.with_tenant(|t| {
        let g = t.groups.values().next().unwrap();
        let app = &t.apps[APP];
        let users = |ty| {
            g.users
                .iter()
                .map(|k| t.user_id_as(app, *k, ty))
                .collect::<Vec<_>>()
        };
        (
            g.id.clone(),
            [
                (MemberIdType::OpenId, users(UserIdType::OpenId)),
                (MemberIdType::UnionId, users(UserIdType::UnionId)),
                (MemberIdType::UserId, users(UserIdType::UserId)),
            ],
        )
    });
    for (ty, want) in expected {
        let got: Vec<String> = open
            .group_members(&gid, MemberType::User, ty)
            .map_ok(|m| m.member_id.unwrap())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, want, "{ty}");
    }

    // An id of the wrong type does not resolve: od- id read as a custom id, another
    // app's open_id.
    let as_custom = open.with_id_types(IdTypes::new(
        UserIdType::OpenId,
        DepartmentIdType::DepartmentId,
    ));
    assert_eq!(
        as_custom
            .department(&marks.top[0])
            .await
            .unwrap_err()
            .code(),
        Some(40015)
    );
    let foreign = emulator::tenant::AppRecord::new("cli_other", "x").open_id(marks.multi);
    assert_eq!(open.user(&foreign).await.unwrap_err().code(), Some(41012));
}

#[tokio::test]
async fn user_id_without_its_permission_is_an_error_or_empty() {
    let (tenant, marks) = build_tenant(60, 10, vec![full_app()]);
    let mut app = AppRecord::new(LIMITED, LIMITED_SECRET);
    app.permissions.remove(perm::USER_EMPLOYEE_ID);
    let emu = start(tenant, |c| {
        c.tenant.apps.insert(LIMITED.into(), app);
    })
    .await;
    let c = client(&emu, LIMITED, LIMITED_SECRET).with_id_types(IdTypes::new(
        UserIdType::UserId,
        DepartmentIdType::OpenDepartmentId,
    ));
    let dept = emu.with_tenant(|t| {
        t.departments
            .values()
            .find(|d| !d.leaders.is_empty())
            .unwrap()
            .open_department_id
            .clone()
    });
    let err = c.department(&dept).await.unwrap_err();
    assert!(
        matches!(&err, FeishuError::MissingPermission { scopes, .. } if scopes == &[perm::USER_EMPLOYEE_ID]),
        "{err:?}"
    );
    let err = c
        .group_members(
            &emu.with_tenant(|t| t.groups.keys().next().unwrap().clone()),
            MemberType::User,
            MemberIdType::UserId,
        )
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(99991672));

    emu.state()
        .update_behaviour(|b| b.user_id_without_permission = UserIdWithoutPermission::Empty);
    let d = c.department(&dept).await.unwrap();
    assert_eq!(d.leader_user_id.as_deref(), Some(""));
    assert!(
        d.leaders
            .unwrap()
            .iter()
            .all(|l| l.leader_id.as_deref() == Some(""))
    );
    let user_id = emu.with_tenant(|t| t.users[&marks.multi].user_id.clone());
    let u = c.user(&user_id).await.unwrap();
    assert_eq!(u.user_id, None);
    // The open_id path still works for that app.
    assert!(u.open_id.unwrap().starts_with("ou_"));
}

/// Avatar URLs point at the emulator, which serves a placeholder image there (a browser
/// showing a mirrored user must not get a broken image).
#[tokio::test]
async fn avatars_are_served_by_the_emulator() {
    let (tenant, marks) = build_tenant(30, 4, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let key = marks.multi;
    let (open_id, name) =
        emu.with_tenant(|t| (t.apps[APP].open_id(key), t.users[&key].name.clone()));
    let token = raw.token(APP, SECRET).await;
    let u = raw
        .get(
            Some(&token),
            &format!("/open-apis/contact/v3/users/{open_id}"),
        )
        .await;
    assert_eq!(u.code(), 0, "{}", u.text);
    let avatar = &u.data()["user"]["avatar"];
    let http = reqwest::Client::new();
    for (field, px) in [
        ("avatar_72", "72"),
        ("avatar_240", "240"),
        ("avatar_640", "640"),
        ("avatar_origin", "640"),
    ] {
        let url = avatar[field].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/avatar/", emu.base_url())),
            "{field}: {url}"
        );
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "image/svg+xml");
        assert!(header("cache-control").contains("max-age="), "{url}");
        let image = resp.text().await.unwrap();
        assert!(image.starts_with("<svg "), "{image}");
        assert!(image.contains(&format!(r#"width="{px}""#)), "{image}");
        assert!(
            image.contains(&emulator::avatar::initials(&name)),
            "{name}: {image}"
        );
    }
    for path in [
        "/avatar/999999/72",
        "/avatar/x/72",
        &format!("/avatar/{key}/73"),
    ] {
        let resp = http
            .get(format!("{}{path}", emu.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    emu.shutdown().await.unwrap();

    // A configured base (browsers reach the emulator under another name) is used as given.
    let (tenant, _) = build_tenant(30, 4, vec![full_app()]);
    let emu = start(tenant, |c| {
        c.avatar_base = Some("https://avatars.example.com/".into());
    })
    .await;
    let raw = Raw::new(&emu);
    let open_id = emu.with_tenant(|t| t.apps[APP].open_id(key));
    let token = raw.token(APP, SECRET).await;
    let u = raw
        .get(
            Some(&token),
            &format!("/open-apis/contact/v3/users/{open_id}"),
        )
        .await;
    assert_eq!(
        u.data()["user"]["avatar"]["avatar_72"],
        format!("https://avatars.example.com/avatar/{key}/72")
    );
}
