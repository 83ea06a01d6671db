//! The admin operations (`directory::admin::Admin`) behind the REST API and the console:
//! validation, sealed secrets, credential tests, parked-deletion decisions and the directory
//! reads, on both stores.

use std::collections::{BTreeSet, HashMap};

use directory::admin::{Admin, AdminError, ConnectionPatch, Cursor, NewConnection, UserIdType};
use directory::ids::{DepartmentId, PoolId};
use directory::model::{
    ConnectionSettings, DeletionThreshold, GroupMember, ObjectKind, ParkedState, Verdict,
};
use directory::store::{
    ChangeKind, ChangeSource, DepartmentNode, MemberScope, PageRequest, ParkedFilter, UserQuery,
    Write,
};
use emulator::tenant::ContactScope;

use crate::support::{APP_ID, Backend, EVERYONE, Harness, tenant};

fn admin(h: &Harness) -> Admin {
    Admin::new(
        h.engine.clone(),
        None,
        "https://orgsync.example.com/".into(),
    )
}

fn new_connection(identifier: &str) -> NewConnection {
    NewConnection {
        identifier: identifier.into(),
        app_id: "cli_validation".into(),
        app_secret: "plain-app-secret-value".into(),
        encrypt_key: Some("plain-encrypt-key".into()),
        verification_token: Some("plain-verification-token".into()),
        ..NewConnection::default()
    }
}

#[tokio::test]
async fn connection_input_is_validated_and_secrets_stay_sealed() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(20, 3, 1, 41)).await;
        let admin = admin(&h);
        let pool = admin.create_pool("Validation").await.unwrap();
        assert!(matches!(
            admin.create_pool("   ").await,
            Err(AdminError::Invalid(m)) if m.contains("name is required")
        ));

        let invalid = |input: NewConnection, needle: &'static str| {
            let admin = &admin;
            let pool = pool.id.clone();
            async move {
                match admin.create_connection(&pool, input).await {
                    Err(AdminError::Invalid(m)) => {
                        assert!(m.contains(needle), "{backend:?}: {m:?} lacks {needle:?}")
                    }
                    other => panic!("{backend:?}: expected Invalid({needle}), got {other:?}"),
                }
            }
        };
        invalid(new_connection("Has Spaces"), "identifier").await;
        invalid(new_connection(&"x".repeat(65)), "1 to 64").await;
        invalid(
            NewConnection {
                app_secret: " ".into(),
                ..new_connection("ok")
            },
            "App Secret",
        )
        .await;
        invalid(
            NewConnection {
                app_id: String::new(),
                ..new_connection("ok")
            },
            "App ID",
        )
        .await;
        invalid(
            NewConnection {
                base_url: Some("ftp://nowhere".into()),
                ..new_connection("ok")
            },
            "base_url",
        )
        .await;
        invalid(
            NewConnection {
                settings: Some(ConnectionSettings {
                    deletion_threshold: DeletionThreshold {
                        max_fraction: 2.0,
                        max_count: 5,
                    },
                    ..ConnectionSettings::default()
                }),
                ..new_connection("ok")
            },
            "max_fraction",
        )
        .await;
        assert!(matches!(
            admin
                .create_connection(
                    &directory::ids::PoolId::generate(),
                    new_connection("nopool")
                )
                .await,
            Err(AdminError::NotFound(_))
        ));

        let view = admin
            .create_connection(&pool.id, new_connection("main"))
            .await
            .unwrap();
        assert!(view.app_secret.set && view.encrypt_key.set && view.verification_token.set);
        assert_eq!(view.display_name, "main");
        assert_eq!(
            view.callback_url,
            format!(
                "https://orgsync.example.com/connections/enterprise/main/{}/events",
                pool.id
            )
        );
        let shown = serde_json::to_string(&view).unwrap();
        for secret in [
            "plain-app-secret-value",
            "plain-encrypt-key",
            "plain-verification-token",
        ] {
            assert!(!shown.contains(secret), "{backend:?}: {shown}");
        }
        // Sealed at rest, and the plaintext is what was entered.
        let stored = h.store.get_connection(&view.id).await.unwrap().unwrap();
        assert!(!stored.app_secret.0.contains("plain-app-secret-value"));
        let key = h.engine.master_key();
        assert_eq!(
            key.open(&stored.app_secret).unwrap(),
            "plain-app-secret-value"
        );

        assert!(matches!(
            admin
                .create_connection(&pool.id, new_connection("main"))
                .await,
            Err(AdminError::Conflict(_))
        ));

        // A patch: absent fields stay, an empty secret clears the optional ones.
        let patched = admin
            .update_connection(
                &view.id,
                serde_json::from_value::<ConnectionPatch>(serde_json::json!({
                    "display_name": "Main app",
                    "encrypt_key": "",
                    "app_secret": "rotated-secret"
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(patched.display_name, "Main app");
        assert!(!patched.encrypt_key.set);
        assert!(patched.verification_token.set);
        let stored = h.store.get_connection(&view.id).await.unwrap().unwrap();
        assert_eq!(key.open(&stored.app_secret).unwrap(), "rotated-secret");
        assert!(stored.encrypt_key.is_none());
        assert!(
            serde_json::from_value::<ConnectionPatch>(serde_json::json!({"app_secret_x": 1}))
                .is_err(),
            "unknown fields are refused"
        );

        assert_eq!(
            admin.list_connections(Some(&pool.id)).await.unwrap().len(),
            1
        );
        admin.delete_connection(&view.id).await.unwrap();
        assert!(matches!(
            admin.connection(&view.id).await,
            Err(AdminError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn the_credential_test_names_what_to_fix() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(30, 4, 1, 42)).await;
        let admin = admin(&h);
        let check = admin.test_credentials(&h.connection.id).await.unwrap();
        assert!(check.ok, "{backend:?}: {check:?}");
        assert_eq!(check.steps.len(), 2);
        assert!(check.steps[1].message.contains("whole organization"));

        // An empty contact scope: the publish reminder.
        h.mutate(|t| {
            t.set_app_scope(
                APP_ID,
                ContactScope::Partial {
                    departments: Vec::new(),
                    users: Vec::new(),
                    groups: Vec::new(),
                },
            )
        });
        let check = admin.test_credentials(&h.connection.id).await.unwrap();
        assert!(!check.ok);
        let step = &check.steps[1];
        assert_eq!(step.step, "contact_scope");
        assert!(
            step.message
                .contains("failed to get Feishu organization departments")
        );
        assert!(
            step.fix.as_deref().unwrap_or("").contains("publish"),
            "{step:?}"
        );

        // A rotated App Secret: the first step fails with Feishu's code and the fix.
        h.emu.with_tenant_mut(|t| {
            t.apps.get_mut(APP_ID).unwrap().app_secret = "rotated-app-secret-00000000003".into();
        });
        let check = admin.test_credentials(&h.connection.id).await.unwrap();
        assert!(!check.ok);
        assert_eq!(check.steps.len(), 1, "{check:?}");
        assert_eq!(check.steps[0].step, "credentials");
        assert_eq!(check.steps[0].code, Some(10014));
        assert!(
            check.steps[0]
                .fix
                .as_deref()
                .unwrap_or("")
                .contains("App Secret")
        );
    }
}

#[tokio::test]
async fn parked_deletions_are_approved_or_rejected_by_an_admin() {
    for backend in Backend::all() {
        // Default thresholds: a scope that shrinks to one department parks the deletions.
        let h = Harness::new(backend, tenant(200, 20, 5, 43)).await;
        let admin = admin(&h);
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        let small = h.emu.with_tenant(|t| {
            t.departments
                .keys()
                .filter(|d| t.children(d).is_empty() && !t.members(d).is_empty())
                .min()
                .unwrap()
                .clone()
        });
        h.mutate(|t| {
            t.set_app_scope(
                APP_ID,
                ContactScope::Partial {
                    departments: vec![small],
                    users: Vec::new(),
                    groups: Vec::new(),
                },
            )
        });
        assert_eq!(h.reconcile().await.verdict, Some(Verdict::Complete));
        let parked = admin
            .list_parked(
                &ParkedFilter::pool(&h.pool).state(ParkedState::Pending),
                PageRequest::default(),
            )
            .await
            .unwrap()
            .items;
        let users: Vec<_> = parked
            .iter()
            .filter(|p| p.kind == ObjectKind::User)
            .collect();
        assert!(users.len() >= 3, "{backend:?}: {parked:?}");
        let departments: Vec<_> = parked
            .iter()
            .filter(|p| p.kind == ObjectKind::Department)
            .collect();
        assert!(!departments.is_empty());

        // Approve: tombstoned now, by an admin, in the change log.
        let approved = admin.approve_parked(users[0].id).await.unwrap();
        assert_eq!(approved.state, ParkedState::Approved);
        assert!(approved.resolved_at.is_some());
        let user = h
            .store
            .get_user(&h.pool, &users[0].object_id.clone().into())
            .await
            .unwrap()
            .unwrap();
        assert!(user.deleted_at.is_some(), "{backend:?}");
        let history = h
            .store
            .object_history(&h.pool, ObjectKind::User, &users[0].object_id, 1)
            .await
            .unwrap();
        assert_eq!(history[0].kind, ChangeKind::UserDeleted);
        assert_eq!(history[0].source, ChangeSource::Admin);
        assert!(matches!(
            admin.approve_parked(users[0].id).await,
            Err(AdminError::Conflict(m)) if m.contains("already approved")
        ));
        let department = admin.approve_parked(departments[0].id).await.unwrap();
        assert_eq!(department.state, ParkedState::Approved);
        assert!(
            h.store
                .get_department(&h.pool, &departments[0].object_id.clone().into())
                .await
                .unwrap()
                .unwrap()
                .deleted_at
                .is_some()
        );

        // Reject: the object stays.
        let rejected = admin.reject_parked(users[1].id).await.unwrap();
        assert_eq!(rejected.state, ParkedState::Rejected);
        let kept = h
            .store
            .get_user(&h.pool, &users[1].object_id.clone().into())
            .await
            .unwrap()
            .unwrap();
        assert!(kept.deleted_at.is_none());
        assert!(matches!(
            admin.approve_parked(users[1].id).await,
            Err(AdminError::Conflict(m)) if m.contains("already rejected")
        ));

        // Stale: the object changed after it was parked, so approving is refused.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut changed = h
            .store
            .get_user(&h.pool, &users[2].object_id.clone().into())
            .await
            .unwrap()
            .unwrap();
        changed.profile.job_title = Some("Seen again".into());
        h.store
            .apply(directory::store::ApplyBatch {
                pool_id: h.pool.clone(),
                source: ChangeSource::Admin,
                writes: vec![Write::PutUser {
                    user: changed,
                    change: ChangeKind::UserUpdated,
                    expected_version: None,
                }],
                watermarks: Vec::new(),
                later_sources: Vec::new(),
                inbox: Vec::new(),
                quiet: false,
                as_read: Default::default(),
            })
            .await
            .unwrap();
        assert!(matches!(
            admin.approve_parked(users[2].id).await,
            Err(AdminError::Conflict(m)) if m.contains("changed after")
        ));
        assert_eq!(
            admin.parked(users[2].id).await.unwrap().state,
            ParkedState::Pending
        );
        assert!(matches!(
            admin.approve_parked(999_999).await,
            Err(AdminError::NotFound(_))
        ));
    }
}

/// The whole tree, one level at a time as the console expands it (pages of 3, so that levels
/// are walked by cursor): (node, depth), parents before children.
async fn walk_tree(admin: &Admin, pool: &PoolId) -> Vec<(DepartmentNode, usize)> {
    let mut out = Vec::new();
    let mut levels: Vec<(Option<DepartmentId>, usize)> = vec![(None, 0)];
    while let Some((parent, depth)) = levels.pop() {
        let mut cursor = Cursor {
            after: None,
            limit: Some(3),
        };
        loop {
            let page = admin
                .department_children(pool, parent.as_ref(), &cursor)
                .await
                .unwrap();
            for n in page.items {
                if n.child_count > 0 {
                    levels.push((Some(n.department.id.clone()), depth + 1));
                }
                out.push((n, depth));
            }
            match page.next {
                Some(next) => cursor.after = Some(next),
                None => break,
            }
        }
    }
    out
}

/// Every user a members query lists, walked by cursor `limit` at a time.
async fn walk_members(
    admin: &Admin,
    pool: &PoolId,
    department: &DepartmentId,
    scope: MemberScope,
    limit: u64,
) -> Vec<String> {
    let query = UserQuery {
        department_id: Some(department.clone()),
        scope,
        ..UserQuery::default()
    };
    let mut cursor = Cursor {
        after: None,
        limit: Some(limit),
    };
    let mut out = Vec::new();
    loop {
        let page = admin
            .search_users(pool, &query, &cursor, false)
            .await
            .unwrap();
        out.extend(page.items.into_iter().map(|u| u.id.0));
        match page.next {
            Some(next) => cursor.after = Some(next),
            None => return out,
        }
    }
}

#[tokio::test]
async fn directory_reads_answer_from_the_imported_tenant() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(300, 30, 6, 44)).await;
        let admin = admin(&h);
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        let departments = h.store.list_departments(&h.pool).await.unwrap();
        let users = h
            .store
            .list_users(&h.pool, &UserQuery::default(), &EVERYONE)
            .await
            .unwrap()
            .items;

        // The tree holds every live department once, with direct member counts.
        let tree = walk_tree(&admin, &h.pool).await;
        let flat: Vec<(String, usize, u64)> = tree
            .iter()
            .map(|(n, depth)| (n.department.id.0.clone(), *depth, n.member_count))
            .collect();
        assert_eq!(flat.len(), departments.len(), "{backend:?}");
        let ids: BTreeSet<&String> = flat.iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids.len(), flat.len());
        let mut members: HashMap<String, u64> = HashMap::new();
        for u in &users {
            for m in &u.departments {
                *members.entry(m.department_id.0.clone()).or_default() += 1;
            }
        }
        for (id, _, count) in &flat {
            assert_eq!(members.get(id).copied().unwrap_or(0), *count, "{id}");
        }
        // Subtree totals count each user once, however many of its departments they are in.
        let parent: HashMap<String, String> = departments
            .iter()
            .filter_map(|d| d.parent_id.as_ref().map(|p| (d.id.0.clone(), p.0.clone())))
            .collect();
        let within = |dept: &str, root: &str| {
            let mut cursor = Some(dept.to_owned());
            while let Some(d) = cursor {
                if d == root {
                    return true;
                }
                cursor = parent.get(&d).cloned();
            }
            false
        };
        let mut some_overlap = false;
        let mut walked_big = false;
        for (n, _) in &tree {
            let root = &n.department.id.0;
            let mut expected: Vec<String> = users
                .iter()
                .filter(|u| {
                    u.departments
                        .iter()
                        .any(|m| within(&m.department_id.0, root))
                })
                .map(|u| u.id.0.clone())
                .collect();
            expected.sort();
            let distinct = expected.len() as u64;
            // The subtree's members, walked by cursor: each once, the same set.
            if distinct > 7 || !walked_big {
                let listed =
                    walk_members(&admin, &h.pool, &n.department.id, MemberScope::Subtree, 7).await;
                assert_eq!(listed, expected, "{backend:?} subtree of {root}");
                walked_big |= distinct > 7;
            }
            let children = tree
                .iter()
                .filter(|(c, _)| c.department.parent_id.as_ref() == Some(&n.department.id))
                .count() as u64;
            assert_eq!(n.child_count, children, "{backend:?} {root}");
            let summed: u64 = users
                .iter()
                .map(|u| {
                    u.departments
                        .iter()
                        .filter(|m| within(&m.department_id.0, root))
                        .count() as u64
                })
                .sum();
            some_overlap |= summed > distinct;
            assert_eq!(n.total_member_count, distinct, "{backend:?} {root}");
            // Direct members by cursor: those with a membership in it.
            let mut direct: Vec<String> = users
                .iter()
                .filter(|u| u.departments.iter().any(|m| &m.department_id.0 == root))
                .map(|u| u.id.0.clone())
                .collect();
            direct.sort();
            assert_eq!(
                walk_members(&admin, &h.pool, &n.department.id, MemberScope::Direct, 4).await,
                direct,
                "{backend:?} direct members of {root}"
            );
        }
        assert!(walked_big, "no department has more members than a page");
        assert!(
            some_overlap,
            "the tenant has no user in two departments of one subtree: the test proves nothing"
        );

        // A deep department: its path is its chain of parents, root first.
        let (deepest, depth, _) = flat.iter().max_by_key(|(_, d, _)| *d).unwrap().clone();
        assert!(depth >= 1);
        let view = admin
            .department(&h.pool, &deepest.clone().into())
            .await
            .unwrap();
        assert_eq!(view.path.len(), depth);
        assert_eq!(
            view.path.last().map(|d| &d.id),
            view.department.parent_id.as_ref()
        );

        // A user by each Feishu id, and its detail.
        let refs = h.state().await.refs;
        let r = refs
            .iter()
            .find(|r| r.kind == ObjectKind::User && r.union_id.is_some() && r.custom_id.is_some())
            .unwrap();
        for (id_type, value) in [
            (UserIdType::OpenId, &r.external_id),
            (UserIdType::UnionId, r.union_id.as_ref().unwrap()),
            (UserIdType::UserId, r.custom_id.as_ref().unwrap()),
        ] {
            let found = admin
                .user_by_feishu_id(&h.pool, id_type, value)
                .await
                .unwrap();
            assert_eq!(found.id.0, r.object_id, "{backend:?} {id_type:?}");
        }
        assert!(matches!(
            admin
                .user_by_feishu_id(&h.pool, UserIdType::UnionId, "on_nobody")
                .await,
            Err(AdminError::NotFound(m)) if m.contains("union_id")
        ));

        let mut member_of_a_group = None;
        for e in h.store.list_groups(&h.pool, &EVERYONE).await.unwrap().items {
            let g = h
                .store
                .get_group(&h.pool, &e.group.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(e.member_count, g.members.len() as u64, "{backend:?}");
            member_of_a_group = member_of_a_group.or_else(|| {
                g.members.iter().find_map(|m| match m {
                    GroupMember::User(u) => Some(u.clone()),
                    GroupMember::Department(_) => None,
                })
            });
        }
        let member_of_a_group = member_of_a_group.unwrap();
        let detail = admin
            .user_detail(&h.pool, &member_of_a_group)
            .await
            .unwrap();
        assert!(!detail.groups.is_empty(), "{backend:?}");
        // Summaries without member lists, of groups that do list the user.
        for g in &detail.groups {
            let full = h.store.get_group(&h.pool, &g.id).await.unwrap().unwrap();
            assert!(
                full.members
                    .contains(&GroupMember::User(member_of_a_group.clone())),
                "{backend:?}: {g:?}"
            );
        }
        assert_eq!(detail.departments.len(), detail.user.departments.len());
        assert_eq!(detail.external_ids.len(), 1);
        assert_eq!(detail.history.last().unwrap().kind, ChangeKind::UserCreated);

        // Groups resolve their members.
        let groups = admin
            .list_groups(
                &h.pool,
                &Cursor {
                    after: None,
                    limit: Some(500),
                },
            )
            .await
            .unwrap()
            .items;
        for e in &groups {
            let detail = admin.group(&h.pool, &e.group.id).await.unwrap();
            assert_eq!(
                (detail.users.len() + detail.departments.len() + detail.unresolved.len()) as u64,
                e.member_count
            );
        }

        // Search pages and counts: a walk by cursor lists every user once, in creation order.
        let mut cursor = Cursor {
            after: None,
            limit: Some(25),
        };
        let mut walked = Vec::new();
        loop {
            let page = admin
                .search_users(&h.pool, &UserQuery::default(), &cursor, true)
                .await
                .unwrap();
            assert_eq!(page.total, Some(users.len() as u64));
            assert!(page.items.len() == 25 || page.next.is_none());
            walked.extend(page.items.into_iter().map(|u| u.id));
            match page.next {
                Some(next) => cursor.after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            walked,
            users.iter().map(|u| u.id.clone()).collect::<Vec<_>>()
        );
        // A cursor of another list is refused with a clear error.
        let groups_cursor = admin
            .list_groups(
                &h.pool,
                &Cursor {
                    after: None,
                    limit: Some(1),
                },
            )
            .await
            .unwrap()
            .next
            .unwrap();
        let members = UserQuery {
            department_id: Some(tree[0].0.department.id.clone()),
            ..UserQuery::default()
        };
        assert!(matches!(
            admin
                .search_users(
                    &h.pool,
                    &members,
                    &Cursor {
                        after: Some(groups_cursor),
                        limit: None,
                    },
                    false,
                )
                .await,
            Err(AdminError::Invalid(m)) if m.contains("start again")
        ));
        assert!(matches!(
            admin
                .search_users(
                    &h.pool,
                    &members,
                    &Cursor {
                        after: Some("not a cursor!".into()),
                        limit: None,
                    },
                    false,
                )
                .await,
            Err(AdminError::Invalid(m)) if m.contains("next")
        ));
        assert_eq!(directory::admin::page(None, Some(100_000)).limit, 500);
        assert_eq!(directory::admin::page(None, Some(0)).limit, 1);
    }
}
