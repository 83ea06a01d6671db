//! What the LDAP view keeps and looks up (docs/ldap.md): pool settings, logins with their
//! collision rule, addresses, app passwords.

use directory::app_passwords::AppPassword;
use directory::ids::UserId;
use directory::ldap_view::{DepartmentScope, LdapSettings, LoginSource};
use directory::model::{ObjectKind, UserStatus};
use directory::store::{
    ChangeKind, DirectoryStore, PersonKey, StoreError, StoredAppPassword, Write,
};

use crate::fixtures::*;

pub async fn ldap_settings_round_trip(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other = new_pool(&store).await;
    assert_eq!(store.ldap_settings(&pool).await.unwrap(), None);
    let settings = LdapSettings {
        base_dn: Some("dc=example,dc=com".into()),
        login: LoginSource::EmailLocalPart,
        department_members: DepartmentScope::Direct,
        posix: true,
        posix_id_base: 20_000,
    };
    store.set_ldap_settings(&pool, &settings).await.unwrap();
    assert_eq!(
        store.ldap_settings(&pool).await.unwrap().as_ref(),
        Some(&settings)
    );
    let changed = LdapSettings::default();
    store.set_ldap_settings(&pool, &changed).await.unwrap();
    store.set_ldap_settings(&other, &settings).await.unwrap();
    let all = store.list_ldap_settings().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&(pool.clone(), changed)));
    assert!(all.contains(&(other.clone(), settings.clone())));
    let missing = directory::ids::PoolId("missing".into());
    assert!(matches!(
        store.set_ldap_settings(&missing, &settings).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Logins from Feishu's `user_id` (through the refs of the pool's connections) and from the
/// address's local part; a login shared by several users belongs to the live one created
/// first, and the others have none (their orgsync id stands in).
pub async fn logins_and_addresses_are_found_through_indexes(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other_pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let elsewhere = new_connection(&store, &other_pool, "other").await;
    let mut first = user(&pool, 1);
    let mut p = (*first.profile).clone();
    p.enterprise_email = Some("Zhang.San@Corp.example".into());
    p.email = Some("zs@gmail.example".into());
    first.profile = p.into();
    let mut second = user(&pool, 2);
    let mut p = (*second.profile).clone();
    p.email = Some("zhang.san@other.example".into());
    second.profile = p.into();
    let mut third = user(&pool, 3);
    let mut p = (*third.profile).clone();
    p.email = None;
    third.profile = p.into();
    let stranger = user(&other_pool, 4);
    // The store stamps creation times: one batch each, apart, makes their order.
    for u in [&first, &second, &third] {
        store
            .apply(batch(&pool, vec![put_user(u, ChangeKind::UserCreated)]))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    store
        .apply(batch(
            &pool,
            vec![
                Write::PutExternalRef(with_user_id(
                    external(&c.id, ObjectKind::User, "ou_1", first.id.as_str()),
                    "ZhangSan",
                )),
                Write::PutExternalRef(with_user_id(
                    external(&c.id, ObjectKind::User, "ou_2", second.id.as_str()),
                    "lisi",
                )),
                Write::PutExternalRef(with_user_id(
                    external(&c.id, ObjectKind::User, "ou_3", third.id.as_str()),
                    "LISI",
                )),
            ],
        ))
        .await
        .unwrap();
    store
        .apply(batch(
            &other_pool,
            vec![
                put_user(&stranger, ChangeKind::UserCreated),
                Write::PutExternalRef(with_user_id(
                    external(
                        &elsewhere.id,
                        ObjectKind::User,
                        "ou_4",
                        stranger.id.as_str(),
                    ),
                    "zhangsan",
                )),
            ],
        ))
        .await
        .unwrap();
    let ids = [first.id.clone(), second.id.clone(), third.id.clone()];

    // user_id: "lisi" and "LISI" fold to one login, held by the earlier user.
    let logins = store
        .user_logins(&pool, LoginSource::UserId, &ids)
        .await
        .unwrap();
    assert_eq!(logins.get(&first.id).map(String::as_str), Some("zhangsan"));
    assert_eq!(logins.get(&second.id).map(String::as_str), Some("lisi"));
    assert!(!logins.contains_key(&third.id), "{logins:?}");
    let mut both = vec![second.id.clone(), third.id.clone()];
    both.sort();
    assert_eq!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Login("LiSi".into())
        )
        .await,
        both
    );
    // Another pool's user with the same user_id is not a candidate here.
    assert_eq!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Login("zhangsan".into())
        )
        .await,
        vec![first.id.clone()]
    );

    // A changed user_id moves the login: "lisi" passes to the next user that has it.
    store
        .apply(batch(
            &pool,
            vec![Write::PutExternalRef(with_user_id(
                external(&c.id, ObjectKind::User, "ou_2", second.id.as_str()),
                "WangWu",
            ))],
        ))
        .await
        .unwrap();
    let logins = store
        .user_logins(&pool, LoginSource::UserId, &ids)
        .await
        .unwrap();
    assert_eq!(logins.get(&second.id).map(String::as_str), Some("wangwu"));
    assert_eq!(logins.get(&third.id).map(String::as_str), Some("lisi"));
    store
        .apply(batch(
            &pool,
            vec![Write::PutExternalRef(with_user_id(
                external(&c.id, ObjectKind::User, "ou_2", second.id.as_str()),
                "lisi",
            ))],
        ))
        .await
        .unwrap();

    // The local part: the enterprise address first; "zhang.san" twice, the first holds it.
    let logins = store
        .user_logins(&pool, LoginSource::EmailLocalPart, &ids)
        .await
        .unwrap();
    assert_eq!(logins.get(&first.id).map(String::as_str), Some("zhang.san"));
    assert!(!logins.contains_key(&second.id));
    assert!(!logins.contains_key(&third.id), "no address: no login");
    assert_eq!(
        named(
            &*store,
            &pool,
            LoginSource::EmailLocalPart,
            PersonKey::Login("Zhang.San".into())
        )
        .await
        .len(),
        2
    );
    assert!(
        store
            .user_logins(&pool, LoginSource::OrgsyncId, &ids)
            .await
            .unwrap()
            .is_empty()
    );

    // When the holder is deleted, the login passes to the next user created.
    let mut gone = first.clone();
    gone.deleted_at = Some(500);
    gone.status = UserStatus::Resigned;
    gone.version = 1;
    store
        .apply(batch(&pool, vec![put_user(&gone, ChangeKind::UserDeleted)]))
        .await
        .unwrap();
    let logins = store
        .user_logins(&pool, LoginSource::EmailLocalPart, &ids)
        .await
        .unwrap();
    assert_eq!(
        logins.get(&second.id).map(String::as_str),
        Some("zhang.san")
    );

    // Addresses, case ignored, either address; deleted users are not found.
    assert_eq!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail("ZHANG.SAN@other.example".into())
        )
        .await,
        vec![second.id.clone()]
    );
    assert!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail("zhang.san@corp.example".into())
        )
        .await
        .is_empty()
    );
    assert!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail(" ".into())
        )
        .await
        .is_empty()
    );
    let mut revived = gone.clone();
    revived.deleted_at = None;
    revived.status = UserStatus::Active;
    store
        .apply(batch(
            &pool,
            vec![put_user(&revived, ChangeKind::UserUpdated)],
        ))
        .await
        .unwrap();
    assert_eq!(
        named(
            &*store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail("zhang.san@corp.example".into())
        )
        .await,
        vec![first.id.clone()]
    );

    // Several keys in one statement: their users once each, in id order, after a cursor;
    // an orgsync id names its user whatever the login source.
    let keys = [
        PersonKey::Login("lisi".into()),
        PersonKey::Mail("zhang.san@corp.example".into()),
        PersonKey::Login(third.id.0.clone()),
    ];
    let mut all = vec![first.id.clone(), second.id.clone(), third.id.clone()];
    all.sort();
    let found: Vec<UserId> = store
        .users_by_keys(&pool, LoginSource::UserId, &keys, None, 10)
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(found, all);
    // The same statement names them: each with the login it holds (the third's "LISI" is
    // held by the second), as `shown_user_logins` does.
    let named_with = store
        .users_by_keys(&pool, LoginSource::UserId, &keys, None, 10)
        .await
        .unwrap()
        .logins;
    assert_eq!(
        named_with,
        store
            .shown_user_logins(&pool, LoginSource::UserId, &all)
            .await
            .unwrap()
    );
    assert_eq!(named_with.get(&second.id), Some(&Some("lisi".to_owned())));
    assert_eq!(named_with.get(&third.id), Some(&None));
    let rest: Vec<UserId> = store
        .users_by_keys(&pool, LoginSource::UserId, &keys, Some(&all[0]), 1)
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(rest, vec![all[1].clone()]);
    // Orgsync-id logins: "lisi" names no one, the address still does.
    assert_eq!(
        named(&*store, &pool, LoginSource::OrgsyncId, keys[0].clone()).await,
        Vec::<UserId>::new()
    );
    assert_eq!(
        named(&*store, &pool, LoginSource::OrgsyncId, keys[1].clone()).await,
        vec![first.id.clone()]
    );
}

/// The ids of the users `key` names, as `users_by_keys` finds them.
pub async fn named(
    store: &dyn DirectoryStore,
    pool: &directory::ids::PoolId,
    source: LoginSource,
    key: PersonKey,
) -> Vec<UserId> {
    store
        .users_by_keys(pool, source, &[key], None, 10)
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect()
}

fn with_user_id(
    mut r: directory::model::ExternalRef,
    user_id: &str,
) -> directory::model::ExternalRef {
    r.custom_id = Some(user_id.into());
    r
}

fn app_password(pool: &directory::ids::PoolId, user: &UserId, n: usize) -> StoredAppPassword {
    StoredAppPassword {
        password: AppPassword {
            id: format!("{n:024x}"),
            pool_id: pool.clone(),
            user_id: user.clone(),
            label: format!("app {n}"),
            created_at: 1_000 + n as i64,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
        hash: format!("$argon2id$fake{n}"),
    }
}

/// App passwords round-trip, and a user who stops being active loses them in the write that
/// says so.
pub async fn app_passwords_are_revoked_when_the_user_leaves(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let mut alice = user(&pool, 1);
    let bob = user(&pool, 2);
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&alice, ChangeKind::UserCreated),
                put_user(&bob, ChangeKind::UserCreated),
            ],
        ))
        .await
        .unwrap();
    for (n, u) in [(1, &alice.id), (2, &alice.id), (3, &bob.id)] {
        store
            .create_app_password(&app_password(&pool, u, n))
            .await
            .unwrap();
    }
    let got = store
        .get_app_password(&format!("{:024x}", 1))
        .await
        .unwrap();
    assert_eq!(got, Some(app_password(&pool, &alice.id, 1)));
    let listed = store.list_app_passwords(&pool, &alice.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].password.label, "app 1");
    store
        .touch_app_password(&listed[0].password.id, 7_000)
        .await
        .unwrap();
    assert!(
        store
            .revoke_app_password(&listed[1].password.id, 8_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_app_password(&listed[1].password.id, 9_000)
            .await
            .unwrap()
    );
    let listed = store.list_app_passwords(&pool, &alice.id).await.unwrap();
    assert_eq!(listed[0].password.last_used_at, Some(7_000));
    assert_eq!(listed[1].password.revoked_at, Some(8_000));

    alice.status = UserStatus::Frozen;
    store
        .apply(batch(
            &pool,
            vec![put_user(&alice, ChangeKind::UserUpdated)],
        ))
        .await
        .unwrap();
    let listed = store.list_app_passwords(&pool, &alice.id).await.unwrap();
    assert!(listed.iter().all(|p| p.password.revoked_at.is_some()));
    assert_eq!(
        listed[1].password.revoked_at,
        Some(8_000),
        "kept its first revocation"
    );
    let bobs = store.list_app_passwords(&pool, &bob.id).await.unwrap();
    assert_eq!(bobs[0].password.revoked_at, None, "another user keeps his");
    let missing = directory::ids::PoolId("missing".into());
    assert!(matches!(
        store
            .create_app_password(&app_password(&missing, &bob.id, 9))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// A group that adds or removes a user moves the user's membership time, and only theirs.
pub async fn group_membership_changes_are_timed_per_user(store: Store, _raw: Raw) {
    use directory::model::GroupMember;
    let pool = new_pool(&store).await;
    let (alice, bob, carol) = (user(&pool, 1), user(&pool, 2), user(&pool, 3));
    let mut g = group(
        &pool,
        "ops",
        vec![
            GroupMember::User(alice.id.clone()),
            GroupMember::User(bob.id.clone()),
        ],
    );
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&alice, ChangeKind::UserCreated),
                put_user(&bob, ChangeKind::UserCreated),
                put_user(&carol, ChangeKind::UserCreated),
                put_group(&g, ChangeKind::GroupCreated),
            ],
        ))
        .await
        .unwrap();
    let ids = [alice.id.clone(), bob.id.clone(), carol.id.clone()];
    let first = store.membership_times(&pool, &ids).await.unwrap();
    assert!(first.contains_key(&alice.id) && first.contains_key(&bob.id));
    assert!(!first.contains_key(&carol.id), "in no group: no time");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Bob leaves, Carol joins; Alice stays.
    g.members = vec![
        GroupMember::User(alice.id.clone()),
        GroupMember::User(carol.id.clone()),
    ];
    store
        .apply(batch(&pool, vec![put_group(&g, ChangeKind::GroupUpdated)]))
        .await
        .unwrap();
    let second = store.membership_times(&pool, &ids).await.unwrap();
    assert_eq!(second[&alice.id], first[&alice.id], "unchanged for Alice");
    assert!(
        second[&bob.id] > first[&bob.id],
        "removed: Bob's time moves"
    );
    assert!(second.contains_key(&carol.id), "added: Carol has one");
    assert!(store.membership_times(&pool, &[]).await.unwrap().is_empty());
}

/// Every new user, department and group gets the pool's next POSIX number, once: a later
/// write keeps it, a deletion does not free it, another pool counts on its own.
pub async fn posix_numbers_are_given_once_in_creation_order(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other = new_pool(&store).await;
    let (a, b) = (user(&pool, 1), user(&pool, 2));
    let d = department(&pool, "Ops", None);
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&a, ChangeKind::UserCreated),
                put_user(&b, ChangeKind::UserCreated),
                put_department(&d, ChangeKind::DepartmentCreated),
            ],
        ))
        .await
        .unwrap();
    let ids =
        |us: &[&directory::model::User]| us.iter().map(|u| u.id.0.clone()).collect::<Vec<_>>();
    let users = store
        .posix_ids(&pool, ObjectKind::User, &ids(&[&a, &b]))
        .await
        .unwrap();
    let dept = store
        .posix_ids(&pool, ObjectKind::Department, std::slice::from_ref(&d.id.0))
        .await
        .unwrap();
    let mut numbers: Vec<i64> = users.values().chain(dept.values()).copied().collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3]);
    // Updated, then deleted: the number stays and is not given again.
    let mut gone = a.clone();
    gone.deleted_at = Some(9);
    gone.status = UserStatus::Resigned;
    store
        .apply(batch(&pool, vec![put_user(&gone, ChangeKind::UserDeleted)]))
        .await
        .unwrap();
    let c = user(&pool, 3);
    store
        .apply(batch(&pool, vec![put_user(&c, ChangeKind::UserCreated)]))
        .await
        .unwrap();
    let after = store
        .posix_ids(&pool, ObjectKind::User, &ids(&[&a, &b, &c]))
        .await
        .unwrap();
    assert_eq!(after[a.id.as_str()], users[a.id.as_str()]);
    assert_eq!(after[c.id.as_str()], 4);
    let elsewhere = user(&other, 4);
    store
        .apply(batch(
            &other,
            vec![put_user(&elsewhere, ChangeKind::UserCreated)],
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .posix_ids(&other, ObjectKind::User, &ids(&[&elsewhere]))
            .await
            .unwrap()[elsewhere.id.as_str()],
        1
    );
}
