//! Partial contact scope (protocol §3.4): root calls refused with 40004, `/scopes` lists
//! exactly what was picked, in-scope objects readable, others 40004 / 41050 / 42009.

use std::collections::BTreeSet;

use feishu::client::FeishuError;
use feishu::ids::GroupType;
use futures::TryStreamExt;

use crate::support::{
    PARTIAL_APP, PARTIAL_SECRET, Raw, build_tenant, client, full_app, import, partial_app, start,
};

#[tokio::test]
async fn partial_scope_reads_exactly_the_picked_objects() {
    let (mut tenant, marks) = build_tenant(400, 40, vec![full_app()]);
    // Pick the second and fourth top-level departments, one user elsewhere, one group.
    let picked_depts = vec![marks.top[1].clone(), marks.top[3].clone()];
    let outside_dept = marks.top[0].clone();
    let picked_user = marks.root_user;
    let picked_group = tenant.groups.keys().next().unwrap().clone();
    let other_group = tenant.groups.keys().nth(1).unwrap().clone();
    let app = partial_app(
        picked_depts.clone(),
        vec![picked_user],
        vec![picked_group.clone()],
    );
    tenant.apps.insert(app.app_id.clone(), app);
    let emu = start(tenant, |_| {}).await;
    let client = client(&emu, PARTIAL_APP, PARTIAL_SECRET);

    // Root: 40004, with the client's message for it.
    let err = client
        .department_children("0", true)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, FeishuError::RootDepartmentOutOfScope { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(40004));
    assert!(
        err.to_string()
            .starts_with("failed to get Feishu organization departments"),
        "{err}"
    );
    assert_eq!(
        client.department("0").await.unwrap_err().code(),
        Some(40004)
    );
    let err = client
        .users_by_department("0")
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, FeishuError::RootDepartmentOutOfScope { .. }));
    let raw = Raw::new(&emu);
    let token = raw.token(PARTIAL_APP, PARTIAL_SECRET).await;
    let r = raw
        .get(Some(&token), "/open-apis/contact/v3/departments/0/children")
        .await;
    assert_eq!((r.status, r.code()), (403, 40004));
    assert_eq!(r.json["msg"], "no dept authority error");

    // /scopes: the picked objects, not their descendants.
    let scopes = client.scopes().await.unwrap();
    let (user_open_id, in_scope_user, out_user, resigned) = emu.with_tenant(|t| {
        let app = &t.apps[PARTIAL_APP];
        let in_dept = |k: &u64, d: &str| {
            t.users[k]
                .memberships
                .iter()
                .any(|m| t.ancestors_and_self(&m.department).contains(&d.to_owned()))
        };
        let inside = t
            .users
            .keys()
            .find(|k| in_dept(k, &picked_depts[0]))
            .copied()
            .unwrap();
        let outside = t
            .users
            .keys()
            .find(|k| {
                !t.users[*k].memberships.is_empty()
                    && t.users[*k]
                        .memberships
                        .iter()
                        .all(|m| t.ancestors_and_self(&m.department).contains(&outside_dept))
            })
            .copied()
            .unwrap();
        (
            app.open_id(picked_user),
            app.open_id(inside),
            app.open_id(outside),
            app.open_id(marks.resigned),
        )
    });
    assert_eq!(scopes.department_ids, picked_depts);
    assert_eq!(scopes.user_ids, vec![user_open_id.clone()]);
    assert_eq!(scopes.group_ids, vec![picked_group.clone()]);

    // In scope: picked departments and their subtrees, their users, the picked user/group.
    client.department(&picked_depts[0]).await.unwrap();
    let below: Vec<_> = client
        .department_children(&picked_depts[1], false)
        .try_collect()
        .await
        .unwrap();
    for d in &below {
        client
            .department(d.open_department_id.as_deref().unwrap())
            .await
            .unwrap();
    }
    client.user(&in_scope_user).await.unwrap();
    client.user(&user_open_id).await.unwrap();
    client.group(&picked_group).await.unwrap();
    let groups: Vec<_> = client
        .groups(GroupType::Normal)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);

    // Out of scope.
    let err = client.department(&outside_dept).await.unwrap_err();
    assert!(
        matches!(err, FeishuError::DepartmentOutOfScope { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(40004));
    let err = client.user(&out_user).await.unwrap_err();
    assert!(matches!(err, FeishuError::UserOutOfScope { .. }), "{err:?}");
    assert_eq!(err.code(), Some(41050));
    let err = client.group(&other_group).await.unwrap_err();
    assert!(
        matches!(err, FeishuError::GroupOutOfScope { .. }),
        "{err:?}"
    );
    let r = raw
        .get(
            Some(&token),
            &format!("/open-apis/contact/v3/group/{other_group}"),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, 42009));
    // A leaver belongs to no in-scope department any more (§9 point 2).
    assert_eq!(
        client.user(&resigned).await.unwrap_err().code(),
        Some(41050)
    );
    emu.state()
        .update_behaviour(|b| b.resigned_user_readable_in_partial_scope = true);
    assert_eq!(
        client.user(&resigned).await.unwrap().is_resigned(),
        Some(true)
    );
    // Batches silently drop what is out of scope.
    let got = client
        .users_batch(&[in_scope_user.clone(), out_user])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let got = client
        .departments_batch(&[picked_depts[0].clone(), outside_dept.clone()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);

    // The importer's partial path sees exactly the picked subtrees.
    let snap = import(&client).await.unwrap();
    assert!(!snap.full_scope);
    emu.with_tenant(|t| {
        let want: BTreeSet<String> = picked_depts
            .iter()
            .flat_map(|d| std::iter::once(d.clone()).chain(t.descendants(d)))
            .collect();
        assert_eq!(
            snap.departments.keys().cloned().collect::<BTreeSet<_>>(),
            want
        );
        assert!(snap.users.contains_key(&user_open_id));
        assert!(snap.users.contains_key(&in_scope_user));
        assert_eq!(
            snap.groups.keys().cloned().collect::<Vec<_>>(),
            vec![picked_group.clone()]
        );
    });
}
