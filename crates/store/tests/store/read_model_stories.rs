//! The read model (docs/read-model.md): the derived tables follow every write, tree levels and
//! member lists agree with the objects they derive from, and cursor walks list each item once
//! whatever is written between their pages.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use directory::ids::{DepartmentId, PoolId, UserId};
use directory::model::{Department, User};
use directory::store::{ChangeKind, KeyPage, MemberScope, UserQuery};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use crate::fixtures::*;

/// The tree and the users as the test holds them (what the store should derive from).
struct Model {
    pool: PoolId,
    departments: Vec<Department>,
    users: Vec<User>,
}

impl Model {
    fn live_department(&self, id: &DepartmentId) -> Option<&Department> {
        self.departments
            .iter()
            .find(|d| &d.id == id && d.deleted_at.is_none())
    }

    /// A live department and its live ancestors, up to the first tombstoned or missing parent.
    fn up_from(&self, id: &DepartmentId) -> Vec<DepartmentId> {
        let mut out = Vec::new();
        let mut cursor = self.live_department(id);
        while let Some(d) = cursor {
            if out.contains(&d.id) {
                break;
            }
            out.push(d.id.clone());
            cursor = d.parent_id.as_ref().and_then(|p| self.live_department(p));
        }
        out
    }

    /// (direct members, subtree members) of a department, by user id.
    fn members(&self, id: &DepartmentId) -> (Vec<String>, Vec<String>) {
        let (mut direct, mut subtree) = (BTreeSet::new(), BTreeSet::new());
        for u in self.users.iter().filter(|u| u.deleted_at.is_none()) {
            for m in &u.departments {
                let up = self.up_from(&m.department_id);
                if up.first() == Some(id) {
                    direct.insert(u.id.0.clone());
                }
                if up.contains(id) {
                    subtree.insert(u.id.0.clone());
                }
            }
        }
        (direct.into_iter().collect(), subtree.into_iter().collect())
    }

    /// The live departments directly below `parent` (roots: no live parent), in the lists'
    /// order: Feishu's order, unset last, then id.
    fn children(&self, parent: Option<&DepartmentId>) -> Vec<String> {
        let mut out: Vec<(i64, String)> = self
            .departments
            .iter()
            .filter(|d| d.deleted_at.is_none())
            .filter(|d| match parent {
                Some(p) => d.parent_id.as_ref() == Some(p),
                None => d.parent_id.as_ref().is_none_or(|p| {
                    self.departments
                        .iter()
                        .any(|x| &x.id == p && x.deleted_at.is_some())
                }),
            })
            .map(|d| (d.order.unwrap_or(i64::MAX), d.id.0.clone()))
            .collect();
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }
}

async fn walk_members(
    store: &Store,
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
    walk_users(store, pool, &query, limit).await
}

async fn walk_users(store: &Store, pool: &PoolId, query: &UserQuery, limit: u64) -> Vec<String> {
    let mut page = KeyPage::first(limit);
    let mut out = Vec::new();
    loop {
        let found = store.list_users(pool, query, &page).await.unwrap();
        assert!(found.items.len() as u64 <= limit);
        out.extend(found.items.into_iter().map(|u| u.id.0));
        match found.next {
            Some(next) => page.after = Some(next),
            None => return out,
        }
    }
}

async fn walk_children(
    store: &Store,
    pool: &PoolId,
    parent: Option<&DepartmentId>,
) -> Vec<(String, u64, u64, u64)> {
    let mut page = KeyPage::first(2);
    let mut out = Vec::new();
    loop {
        let found = store
            .department_children(pool, parent, &page)
            .await
            .unwrap();
        out.extend(found.items.into_iter().map(|n| {
            (
                n.department.id.0,
                n.member_count,
                n.total_member_count,
                n.child_count,
            )
        }));
        match found.next {
            Some(next) => page.after = Some(next),
            None => return out,
        }
    }
}

/// Everything the read model answers, against the model.
async fn check(store: &Store, m: &Model, round: usize) {
    let backend = store.backend();
    for parent in std::iter::once(None).chain(
        m.departments
            .iter()
            .filter(|d| d.deleted_at.is_none())
            .map(|d| Some(&d.id)),
    ) {
        let listed = walk_children(store, &m.pool, parent).await;
        let ids: Vec<String> = listed.iter().map(|(id, ..)| id.clone()).collect();
        assert_eq!(
            ids,
            m.children(parent),
            "{backend:?} round {round}: children of {parent:?}"
        );
        for (id, direct, total, children) in listed {
            let id = DepartmentId(id);
            let (want_direct, want_total) = m.members(&id);
            let got = walk_members(store, &m.pool, &id, MemberScope::Subtree, 3).await;
            assert_eq!(
                got, want_total,
                "{backend:?} round {round}: subtree of {id}"
            );
            assert_eq!(
                walk_members(store, &m.pool, &id, MemberScope::Direct, 2).await,
                want_direct,
                "{backend:?} round {round}: direct members of {id}"
            );
            assert_eq!(
                (direct, total, children),
                (
                    want_direct.len() as u64,
                    want_total.len() as u64,
                    m.children(Some(&id)).len() as u64
                ),
                "{backend:?} round {round}: counts of {id}"
            );
        }
    }
}

/// Random memberships, tombstones, revivals and moves: after each batch the counts, the tree
/// levels and the member lists are what the objects say.
pub async fn subtree_members_follow_every_write(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut departments: Vec<Department> = Vec::new();
    for i in 0..12 {
        let parent = (i > 1).then(|| departments[rng.random_range(0..i)].id.clone());
        let mut d = department(&pool, &format!("D{i}"), parent.as_ref());
        d.order = (i % 4 != 3).then_some(rng.random_range(0..5));
        departments.push(d);
    }
    let mut users: Vec<User> = (0..40).map(|n| user(&pool, n)).collect();
    for u in &mut users {
        let n = rng.random_range(0..3);
        u.departments = departments
            .choose_multiple(&mut rng, n)
            .enumerate()
            .map(|(i, d)| membership(&d.id, i == 0))
            .collect();
    }
    store
        .apply(batch(
            &pool,
            departments
                .iter()
                .map(|d| put_department(d, ChangeKind::DepartmentCreated))
                .chain(users.iter().map(|u| put_user(u, ChangeKind::UserCreated)))
                .collect(),
        ))
        .await
        .unwrap();
    let mut m = Model {
        pool: pool.clone(),
        departments,
        users,
    };
    check(&store, &m, 0).await;

    for round in 1..=12 {
        // Each object once per batch, in its final state (the writes are shuffled).
        let (mut touched_users, mut touched_departments) = (BTreeSet::new(), BTreeSet::new());
        for _ in 0..6 {
            let i = rng.random_range(0..m.users.len());
            let n = rng.random_range(0..4);
            let new_departments: Vec<_> = m
                .departments
                .choose_multiple(&mut rng, n)
                .enumerate()
                .map(|(k, d)| membership(&d.id, k == 0))
                .collect();
            let u = &mut m.users[i];
            match rng.random_range(0..5) {
                0 => u.deleted_at = Some(1),
                1 => u.deleted_at = None,
                _ => u.departments = new_departments,
            }
            touched_users.insert(i);
        }
        for _ in 0..2 {
            let i = rng.random_range(0..m.departments.len());
            let id = m.departments[i].id.clone();
            // A new parent outside its own subtree (no cycles), or none.
            let below: BTreeSet<DepartmentId> = m
                .departments
                .iter()
                .filter(|d| {
                    let mut cursor = Some(d.id.clone());
                    let mut hops = 0;
                    while let Some(c) = cursor {
                        if c == id {
                            return true;
                        }
                        hops += 1;
                        if hops > 20 {
                            return false;
                        }
                        cursor = m
                            .departments
                            .iter()
                            .find(|x| x.id == c)
                            .and_then(|x| x.parent_id.clone());
                    }
                    false
                })
                .map(|d| d.id.clone())
                .collect();
            let candidates: Vec<DepartmentId> = m
                .departments
                .iter()
                .map(|d| d.id.clone())
                .filter(|d| !below.contains(d))
                .collect();
            let choice = rng.random_range(0..4);
            let d = &mut m.departments[i];
            match choice {
                0 => d.deleted_at = Some(1),
                1 => d.deleted_at = None,
                2 => d.parent_id = None,
                _ => d.parent_id = candidates.choose(&mut rng).cloned(),
            }
            touched_departments.insert(i);
        }
        let mut writes: Vec<_> = touched_users
            .iter()
            .map(|i| put_user(&m.users[*i], ChangeKind::UserUpdated))
            .chain(
                touched_departments
                    .iter()
                    .map(|i| put_department(&m.departments[*i], ChangeKind::DepartmentUpdated)),
            )
            .collect();
        writes.shuffle(&mut rng);
        store.apply(batch(&pool, writes)).await.unwrap();
        check(&store, &m, round).await;
    }

    // A stored cycle (a bug elsewhere, or a hand edit) ends the walk instead of hanging it.
    let (a, b) = (m.departments[0].id.clone(), m.departments[1].id.clone());
    for (d, parent) in [(0, &b), (1, &a)] {
        m.departments[d].deleted_at = None;
        m.departments[d].parent_id = Some(parent.clone());
    }
    let mut u = m.users[0].clone();
    u.deleted_at = None;
    u.departments = vec![membership(&a, true)];
    store
        .apply(batch(
            &pool,
            vec![
                put_department(&m.departments[0], ChangeKind::DepartmentUpdated),
                put_department(&m.departments[1], ChangeKind::DepartmentUpdated),
                put_user(&u, ChangeKind::UserUpdated),
            ],
        ))
        .await
        .unwrap();
    let node = store.department_node(&pool, &b).await.unwrap().unwrap();
    assert!(node.total_member_count >= 1, "{:?}", store.backend());
    let path = store.department_path(&pool, &a).await.unwrap();
    assert!(path.len() <= 2, "{:?}: {path:?}", store.backend());
}

/// A walk by cursor (any page size) lists every user that exists throughout it exactly once,
/// while users are updated, moved, created and deleted between its pages: the creation-order
/// list, a subtree's members and a free-text search.
pub async fn a_cursor_walk_lists_each_user_once_while_writes_land(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let root = department(&pool, "Root", None);
    let teams: Vec<Department> = (0..3)
        .map(|i| department(&pool, &format!("Team {i}"), Some(&root.id)))
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    let mut users: Vec<User> = (0..80).map(|n| user(&pool, n)).collect();
    for u in &mut users {
        u.departments = vec![membership(&teams[rng.random_range(0..3)].id, true)];
    }
    store
        .apply(batch(
            &pool,
            std::iter::once(&root)
                .chain(&teams)
                .map(|d| put_department(d, ChangeKind::DepartmentCreated))
                .chain(users.iter().map(|u| put_user(u, ChangeKind::UserCreated)))
                .collect(),
        ))
        .await
        .unwrap();
    let queries = [
        ("creation order", UserQuery::default()),
        (
            "subtree",
            UserQuery {
                department_id: Some(root.id.clone()),
                scope: MemberScope::Subtree,
                ..UserQuery::default()
            },
        ),
        (
            "search",
            UserQuery {
                text: Some("example.com".into()),
                ..UserQuery::default()
            },
        ),
    ];
    let mut created = 1_000;
    for (name, query) in &queries {
        for limit in [1_u64, 7, 50] {
            // Users deleted during this walk may or may not be listed; the others must be,
            // once each.
            let mut deleted: BTreeSet<String> = BTreeSet::new();
            let before: BTreeSet<String> = users
                .iter()
                .filter(|u| u.deleted_at.is_none())
                .map(|u| u.id.0.clone())
                .collect();
            let mut page = KeyPage::first(limit);
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut pages = 0;
            loop {
                let found = store.list_users(&pool, query, &page).await.unwrap();
                for u in &found.items {
                    *seen.entry(u.id.0.clone()).or_default() += 1;
                }
                // Between pages: profile and team changes, a new user, a deletion.
                let mut writes = Vec::new();
                for _ in 0..3 {
                    let i = rng.random_range(0..users.len());
                    let u = &mut users[i];
                    if u.deleted_at.is_some() {
                        continue;
                    }
                    u.profile.job_title = Some(format!("title {}", rng.random_range(0..100)));
                    u.departments = vec![membership(&teams[rng.random_range(0..3)].id, true)];
                    writes.push(put_user(u, ChangeKind::UserUpdated));
                }
                // New users land ahead of the walk too: a few, or it would never end.
                if pages < 12 {
                    let mut fresh = user(&pool, created);
                    created += 1;
                    fresh.departments = vec![membership(&teams[0].id, true)];
                    writes.push(put_user(&fresh, ChangeKind::UserCreated));
                    users.push(fresh);
                }
                pages += 1;
                let i = rng.random_range(0..users.len());
                if users[i].deleted_at.is_none() {
                    users[i].deleted_at = Some(7);
                    deleted.insert(users[i].id.0.clone());
                    writes.push(put_user(&users[i], ChangeKind::UserDeleted));
                }
                store.apply(batch(&pool, writes)).await.unwrap();
                match found.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                twice.is_empty(),
                "{:?} {name}, pages of {limit}: listed twice: {twice:?}",
                store.backend()
            );
            let missing: Vec<_> = before
                .iter()
                .filter(|id| !deleted.contains(*id) && !seen.contains_key(*id))
                .collect();
            assert!(
                missing.is_empty(),
                "{:?} {name}, pages of {limit}: never listed: {missing:?}",
                store.backend()
            );
        }
    }
}

/// A free-text search finds substrings of three characters or more through the text index
/// and shorter ones by walking; both agree with a plain substring match, on every page.
pub async fn search_pages_agree_with_substring_matching(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let names = [
        "张伟",
        "张伟明",
        "王芳",
        "Anna Lee",
        "Annabel",
        "Hannah",
        "Joanna",
        "李娜",
        "Lee Kim",
    ];
    let mut users: Vec<User> = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let mut u = user(&pool, n);
        u.profile.name = Some((*name).into());
        u.profile.en_name = None;
        users.push(u);
    }
    store
        .apply(batch(
            &pool,
            users
                .iter()
                .map(|u| put_user(u, ChangeKind::UserCreated))
                .collect(),
        ))
        .await
        .unwrap();
    let by_id: BTreeMap<String, String> = users
        .iter()
        .map(|u| (u.id.0.clone(), u.profile.name.clone().unwrap()))
        .collect();
    for q in [
        "ann", "ANNA", "张伟", "张", "lee", "nna", "e", "zz", "user0", "@example",
    ] {
        let folded = q.to_lowercase();
        let mut want: Vec<String> = users
            .iter()
            .filter(|u| {
                [
                    &u.profile.name,
                    &u.profile.email,
                    &u.profile.mobile,
                    &u.profile.employee_no,
                ]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(&folded))
            })
            .map(|u| u.id.0.clone())
            .collect();
        want.sort();
        for limit in [1, 2, 100] {
            let query = UserQuery {
                text: Some(q.into()),
                ..UserQuery::default()
            };
            let mut got = walk_users(&store, &pool, &query, limit).await;
            got.sort();
            let named = |ids: &[String]| -> Vec<String> {
                ids.iter().map(|id| by_id[id].clone()).collect()
            };
            assert_eq!(
                named(&got),
                named(&want),
                "{:?}: {q:?} in pages of {limit}",
                store.backend()
            );
            assert_eq!(
                store.count_users(&pool, &query).await.unwrap(),
                want.len() as u64
            );
        }
    }
    // A renamed user is found by its new name only.
    let mut renamed = users[3].clone();
    renamed.profile.name = Some("Zed Quill".into());
    store
        .apply(batch(
            &pool,
            vec![put_user(&renamed, ChangeKind::UserUpdated)],
        ))
        .await
        .unwrap();
    let found = |q: &str| {
        let store = store.clone();
        let pool = pool.clone();
        let q = q.to_owned();
        async move {
            let query = UserQuery {
                text: Some(q),
                ..UserQuery::default()
            };
            walk_users(&store, &pool, &query, 10).await
        }
    };
    assert_eq!(found("quill").await, vec![renamed.id.0.clone()]);
    assert!(!found("anna lee").await.contains(&renamed.id.0));
    let _: &UserId = &renamed.id;
}

/// A walk of every live department by id, any page size, across levels; a tombstoned one and
/// another pool's are not listed (the LDAP view's `ou=departments`, docs/ldap.md).
pub async fn departments_page_walks_every_live_department_once(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other = new_pool(&store).await;
    let root = department(&pool, "Root", None);
    let mut all = vec![root.clone()];
    for i in 0..6 {
        let parent = all[i / 2].id.clone();
        all.push(department(&pool, &format!("D{i}"), Some(&parent)));
    }
    let mut gone = department(&pool, "Gone", Some(&root.id));
    let mut writes: Vec<_> = all
        .iter()
        .map(|d| put_department(d, ChangeKind::DepartmentCreated))
        .collect();
    writes.push(put_department(&gone, ChangeKind::DepartmentCreated));
    store.apply(batch(&pool, writes)).await.unwrap();
    store
        .apply(batch(
            &other,
            vec![put_department(
                &department(&other, "Elsewhere", None),
                ChangeKind::DepartmentCreated,
            )],
        ))
        .await
        .unwrap();
    gone.deleted_at = Some(5);
    store
        .apply(batch(
            &pool,
            vec![put_department(&gone, ChangeKind::DepartmentDeleted)],
        ))
        .await
        .unwrap();
    let mut expected: Vec<String> = all.iter().map(|d| d.id.0.clone()).collect();
    expected.sort();
    for size in [1, 2, 3, 7, 500] {
        let mut seen = Vec::new();
        let mut page = KeyPage::first(size);
        loop {
            let got = store.departments_page(&pool, &page).await.unwrap();
            assert!(got.items.len() as u64 <= size);
            seen.extend(got.items.iter().map(|d| d.id.0.clone()));
            match got.next {
                Some(n) => page.after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, expected, "page size {size}");
    }
    let first = store
        .departments_page(&pool, &KeyPage::first(500))
        .await
        .unwrap();
    let d = first.items.iter().find(|d| d.id == all[3].id).unwrap();
    assert_eq!(d.parent_id, all[3].parent_id);
    assert_eq!(d.name, all[3].name);
}

/// Which users a downstream view may name: active, not deleted, of this pool.
pub async fn active_user_ids_are_the_shown_users(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other = new_pool(&store).await;
    let active = user(&pool, 1);
    let mut frozen = user(&pool, 2);
    frozen.status = directory::model::UserStatus::Frozen;
    let mut deleted = user(&pool, 3);
    let elsewhere = user(&other, 4);
    store
        .apply(batch(
            &pool,
            [&active, &frozen, &deleted]
                .iter()
                .map(|u| put_user(u, ChangeKind::UserCreated))
                .collect(),
        ))
        .await
        .unwrap();
    store
        .apply(batch(
            &other,
            vec![put_user(&elsewhere, ChangeKind::UserCreated)],
        ))
        .await
        .unwrap();
    deleted.deleted_at = Some(9);
    store
        .apply(batch(
            &pool,
            vec![put_user(&deleted, ChangeKind::UserDeleted)],
        ))
        .await
        .unwrap();
    let asked = [
        active.id.clone(),
        frozen.id.clone(),
        deleted.id.clone(),
        elsewhere.id.clone(),
        UserId("missing".into()),
        active.id.clone(),
    ];
    let shown = store.active_user_ids(&pool, &asked).await.unwrap();
    assert_eq!(shown, [active.id.clone()].into());
    assert!(store.active_user_ids(&pool, &[]).await.unwrap().is_empty());
}
