//! Full imports against the emulator.

use directory::model::{JobState, UserStatus, Verdict};
use directory::store::UserQuery;

use crate::support::{Backend, Harness, tenant};

#[tokio::test]
async fn import_of_a_generated_tenant_equals_the_tenant() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(1500, 80, 8, 11)).await;
        let job = h.import().await;
        assert_eq!(job.state, JobState::Finished, "{backend:?}: {job:?}");
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        let diff = h.compare().await;
        assert!(
            diff.is_empty(),
            "{backend:?}: {} differences, first: {:?}",
            diff.len(),
            diff.first()
        );

        // What the tenant holds, the store holds: active users, root users, resigned users.
        let (active, resigned, root) = h.emu.with_tenant(|t| {
            let active = t.users.values().filter(|u| !u.status.resigned).count();
            let resigned = t.users.values().filter(|u| u.status.resigned).count();
            let root = t.members("0").len();
            (active, resigned, root)
        });
        let stored = h
            .store
            .count_users(&h.pool, &UserQuery::default())
            .await
            .unwrap();
        // Resigned users are not listed by Feishu: a first import never sees them.
        assert_eq!(
            stored as usize, active,
            "{backend:?} (tenant has {resigned} resigned)"
        );
        let users = h
            .store
            .list_users(&h.pool, &UserQuery::default(), &crate::support::EVERYONE)
            .await
            .unwrap()
            .items;
        assert_eq!(
            users.iter().filter(|u| u.in_root).count(),
            root,
            "{backend:?}"
        );
        assert!(
            users.iter().any(|u| u.departments.len() > 1),
            "{backend:?}: multi-department users"
        );
        assert!(
            users.iter().any(|u| u.status == UserStatus::Frozen),
            "{backend:?}: frozen users"
        );

        // A second run changes nothing.
        let again = h.reconcile().await;
        assert_eq!(again.verdict, Some(Verdict::Complete), "{backend:?}");
        let changed: u64 = again
            .counts
            .iter()
            .filter(|(action, _)| action.as_str() != "Unchanged")
            .flat_map(|(_, by_result)| by_result.values())
            .sum();
        assert_eq!(changed, 0, "{backend:?}: {:?}", again.counts);
    }
}
