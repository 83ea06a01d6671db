//! A full import through the client of a tenant of a few thousand users, compared object by
//! object with the tenant model.

use std::collections::{BTreeMap, BTreeSet};

use emulator::Emulator;
use emulator::generate::{GenerateConfig, generate};
use feishu::ids::IdTypes;

use crate::support::{APP, DEEP, SECRET, Snapshot, build_tenant, client, full_app, import, start};

/// Every live department once, every listed user once with all of its departments, root
/// users, every group with its members: exactly what the model says the app sees.
pub fn assert_matches_model(emu: &Emulator, snap: &Snapshot) {
    emu.with_tenant(|t| {
        let app = &t.apps[APP];
        assert!(snap.full_scope);
        assert_eq!(
            snap.departments.keys().collect::<BTreeSet<_>>(),
            t.departments.keys().collect::<BTreeSet<_>>(),
        );
        assert!(
            snap.department_listings.values().all(|n| *n == 1),
            "each department once"
        );
        for (id, d) in &snap.departments {
            assert_eq!(
                Some(d),
                t.render_department(app, id, IdTypes::OPEN).as_ref(),
                "{id}"
            );
        }
        let expected: BTreeMap<String, BTreeSet<String>> = t
            .users
            .values()
            .filter(|u| !u.memberships.is_empty())
            .map(|u| {
                (
                    app.open_id(u.key),
                    u.department_ids().map(str::to_owned).collect(),
                )
            })
            .collect();
        assert_eq!(
            snap.users.keys().collect::<BTreeSet<_>>(),
            expected.keys().collect::<BTreeSet<_>>()
        );
        for (open_id, (user, listed_in)) in &snap.users {
            let key = t
                .resolve_user(app, open_id, feishu::ids::UserIdType::OpenId)
                .unwrap();
            let listed: BTreeSet<String> = listed_in.iter().cloned().collect();
            assert_eq!(listed.len(), listed_in.len(), "listed once per department");
            assert_eq!(listed, expected[open_id], "{open_id}");
            assert_eq!(
                Some(user),
                t.render_user(app, key, IdTypes::OPEN, false).as_ref()
            );
        }
        assert_eq!(snap.groups.len(), t.groups.len());
        for (id, (group, users, departments)) in &snap.groups {
            let g = &t.groups[id];
            assert_eq!(Some(group), t.render_group(id).as_ref());
            let want: Vec<String> = g.users.iter().map(|k| app.open_id(*k)).collect();
            assert_eq!(users, &want, "{id}");
            assert_eq!(departments, &g.departments, "{id}");
        }
    });
}

#[tokio::test]
async fn full_import_of_a_few_thousand_users_matches_the_model() {
    let config = GenerateConfig {
        seed: 7,
        users: 3000,
        departments: 300,
        max_depth: 10,
        groups: 12,
        ..GenerateConfig::default()
    };
    let emu = start(generate(&config, vec![full_app()]), |_| {}).await;
    let client = client(&emu, APP, SECRET);
    let snap = import(&client).await.unwrap();
    assert_matches_model(&emu, &snap);

    // The interesting cases were there and made it: the deepest department, root users,
    // users in several departments; leavers were not listed.
    emu.with_tenant(|t| {
        let app = &t.apps[APP];
        let deepest = t.departments.keys().max_by_key(|d| t.depth(d)).unwrap();
        assert_eq!(t.depth(deepest), 10);
        assert!(snap.departments.contains_key(deepest));
        assert!(!t.members("0").is_empty());
        for k in t.members("0") {
            assert!(snap.users[&app.open_id(*k)].1.contains(&"0".to_owned()));
        }
        assert!(snap.users.values().any(|(_, listed)| listed.len() >= 2));
        let leavers: Vec<_> = t.users.values().filter(|u| u.status.resigned).collect();
        assert!(!leavers.is_empty());
        assert!(
            leavers
                .iter()
                .all(|u| !snap.users.contains_key(&app.open_id(u.key)))
        );
        assert_eq!(snap.scopes.department_ids, t.children("0").to_vec());
        assert_eq!(snap.scopes.group_ids.len(), t.groups.len());
        assert!(snap.users.len() > 2800, "{}", snap.users.len());
    });
    // Paging really happened, and nothing failed on the way.
    let stats = emu.state().stats.snapshot();
    assert!(stats["contact/v3/users/find_by_department"].requests > 301);
    let total: u64 = stats.values().map(|s| s.requests).sum();
    let ok: u64 = stats.values().filter_map(|s| s.by_status.get(&200)).sum();
    assert_eq!(ok, total);
}

#[tokio::test]
async fn a_big_seed_department_falls_back_to_a_level_walk() {
    let (tenant, marks) = build_tenant(300, 60, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    // Every fetch_child=true is refused: the importer walks level by level.
    emu.state()
        .update_behaviour(|b| b.refuse_all_recursion = true);
    let snap = import(&client(&emu, APP, SECRET)).await.unwrap();
    assert_eq!(snap.recursion_refused, 1);
    assert_matches_model(&emu, &snap);
    assert!(snap.departments.contains_key(&marks.big));
    // The long chain came through the level walk intact.
    assert!(snap.departments.contains_key(&marks.deep));
    assert_eq!(emu.with_tenant(|t| t.depth(&marks.deep)), DEEP);
}
