//! One user pool as an LDAP tree (docs/ldap.md, "The tree"):
//!
//! ```text
//! <base>                                  organization
//! ├── ou=people       uid=<login>         users
//! ├── ou=groups       cn=<group id>       Feishu user groups
//! ├── ou=departments  cn=<department id>  departments
//! └── ou=services     cn=<credential>     service binds (never returned by searches)
//! ```
//!
//! Every RDN is an id: a rename or a move changes attributes, never a DN. Which users appear
//! at all is decided here too: only active ones.

use std::collections::HashMap;

use directory::ids::{PoolId, UserId};
pub use directory::ldap_view::{DepartmentScope, LdapSettings, LoginSource};
use directory::model::{Department, Group, GroupMember, User, UserStatus};

use crate::dn::{Dn, Rdn};
use crate::entry::{Entry, generalized_time};

/// The containers below a pool's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    People,
    Groups,
    Departments,
    Services,
}

impl Container {
    pub const ALL: [Container; 4] = [
        Self::People,
        Self::Groups,
        Self::Departments,
        Self::Services,
    ];

    pub fn ou(self) -> &'static str {
        match self {
            Self::People => "people",
            Self::Groups => "groups",
            Self::Departments => "departments",
            Self::Services => "services",
        }
    }

    /// The naming attribute of the entries below it.
    pub fn rdn_attr(self) -> &'static str {
        match self {
            Self::People => "uid",
            _ => "cn",
        }
    }
}

/// What a (normalised) DN names within a pool's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Base,
    Container(Container),
    /// An entry below a container, by its RDN value (as normalised: lowercase).
    Entry(Container, String),
}

/// A pool's tree: its base DN and the settings that shape its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTree {
    pub pool_id: PoolId,
    /// As configured (how DNs are written).
    pub base: Dn,
    /// Normalised (how DNs are compared).
    base_norm: Dn,
    pub department_scope: DepartmentScope,
    /// Where `uid` comes from.
    pub login: LoginSource,
    /// With POSIX attributes: the pool's base number (docs/ldap.md, "POSIX").
    pub posix: Option<u32>,
}

impl PoolTree {
    pub fn new(pool_id: PoolId, base: Dn, department_scope: DepartmentScope) -> Self {
        let base_norm = base.normalized();
        Self {
            pool_id,
            base,
            base_norm,
            department_scope,
            login: LoginSource::OrgsyncId,
            posix: None,
        }
    }

    /// The tree a pool's saved settings describe (docs/ldap.md, "Pool settings").
    pub fn from_settings(pool_id: PoolId, settings: &LdapSettings) -> Self {
        let base = settings.base(&pool_id);
        let mut tree = Self::new(pool_id, base, settings.department_members);
        tree.login = settings.login;
        tree.posix = settings.posix.then_some(settings.posix_id_base);
        tree
    }

    /// `o=<pool id>,dc=orgsync`: the base when none is configured.
    pub fn default_base(pool_id: &PoolId) -> Dn {
        directory::ldap_view::default_base(pool_id)
    }

    /// What `dn` names here; `None` when it is not in this pool's tree.
    pub fn locate(&self, dn: &Dn) -> Option<Target> {
        let rel = dn.normalized();
        let rel = rel.relative_to(&self.base_norm)?;
        match rel {
            [] => Some(Target::Base),
            [ou] => Some(Target::Container(container_of(ou)?)),
            [entry, ou] => {
                let c = container_of(ou)?;
                (entry.attr == c.rdn_attr()).then(|| Target::Entry(c, entry.value.clone()))
            }
            _ => None,
        }
    }

    /// Whether `dn` is at or below this pool's base.
    pub fn contains(&self, dn: &Dn) -> bool {
        dn.normalized().is_under(&self.base_norm)
    }

    pub fn container_dn(&self, c: Container) -> Dn {
        self.base.child("ou", c.ou())
    }

    /// A person's DN by its login (`uid`: the held login, else the orgsync id; docs/ldap.md, "Logins").
    pub fn person_dn(&self, login: &str) -> Dn {
        self.container_dn(Container::People).child("uid", login)
    }

    pub fn group_dn(&self, group_id: &str) -> Dn {
        self.container_dn(Container::Groups).child("cn", group_id)
    }

    pub fn department_dn(&self, department_id: &str) -> Dn {
        self.container_dn(Container::Departments)
            .child("cn", department_id)
    }

    pub fn service_dn(&self, name: &str) -> Dn {
        self.container_dn(Container::Services).child("cn", name)
    }

    /// The pool's base entry.
    pub fn base_entry(&self, pool_name: &str) -> Entry {
        let mut e = Entry::new(self.base.clone());
        e.set("objectClass", ["top", "organization", "extensibleObject"])
            .set("o", [pool_name.to_owned()])
            .set(
                "description",
                [format!("orgsync user pool {}", self.pool_id)],
            )
            .set("hasSubordinates", ["TRUE"]);
        e
    }

    pub fn container_entry(&self, c: Container) -> Entry {
        let mut e = Entry::new(self.container_dn(c));
        e.set("objectClass", ["top", "organizationalUnit"])
            .set("ou", [c.ou()])
            .set("hasSubordinates", ["TRUE"]);
        e
    }

    /// A user's entry, or `None` for a user LDAP must not show (anyone not active, or
    /// deleted). `login`: its `uid`; `member_of`: the DNs of its groups and departments, as
    /// the pool's settings count them; `manager`: its manager's login, when the manager is
    /// shown (else no `manager`).
    /// `membership_at`: when a group last added or removed the user (its entry's
    /// `modifyTimestamp` is the later of that and the user's own change).
    pub fn person(
        &self,
        user: &User,
        login: &str,
        member_of: Vec<Dn>,
        manager: Option<&str>,
        ou: Option<&str>,
        membership_at: Option<i64>,
    ) -> Option<Entry> {
        if user.status != UserStatus::Active || user.deleted_at.is_some() {
            return None;
        }
        let p = &user.profile;
        let name = p.name.clone().unwrap_or_else(|| login.to_owned());
        let mut e = Entry::new(self.person_dn(login));
        let mut mails: Vec<String> = Vec::new();
        for m in [&p.enterprise_email, &p.email].into_iter().flatten() {
            if !m.is_empty() && !mails.iter().any(|x| x.eq_ignore_ascii_case(m)) {
                mails.push(m.clone());
            }
        }
        e.set(
            "objectClass",
            ["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
        .set("uid", [login])
        .set("cn", [name.clone()])
        // `person` requires `sn`; Feishu has no family name (docs/ldap.md).
        .set("sn", [name.clone()])
        .set("displayName", [name])
        .set("mail", mails)
        .set_opt("title", p.job_title.as_deref())
        .set_opt("employeeNumber", p.employee_no.as_deref())
        .set("employeeType", p.employee_type.map(|t| t.to_string()))
        .set_opt("ou", ou)
        .set(
            "departmentNumber",
            user.departments.iter().map(|m| m.department_id.0.clone()),
        )
        .set("manager", manager.map(|m| self.person_dn(m).to_string()))
        .set_opt("labeledURI", p.avatar_url.as_deref())
        .set_opt("l", p.city.as_deref())
        .set_opt("c", p.country.as_deref())
        .set_opt("physicalDeliveryOfficeName", p.work_station.as_deref())
        .set("memberOf", member_of.iter().map(Dn::to_string));
        self.operational(
            &mut e,
            "user",
            user.id.as_str(),
            user.created_at,
            user.updated_at.max(membership_at.unwrap_or(0)),
        );
        Some(e)
    }

    /// A group's entry with its members: users as people (those in `shown`, by their
    /// logins, only: no one who left), departments as department entries (nested groups).
    /// `None` for a deleted group.
    pub fn group(&self, group: &Group, shown: &HashMap<UserId, String>) -> Option<Entry> {
        if group.deleted_at.is_some() {
            return None;
        }
        let members: Vec<String> = group
            .members
            .iter()
            .filter_map(|m| match m {
                GroupMember::User(u) => shown.get(u).map(|login| self.person_dn(login).to_string()),
                GroupMember::Department(d) => Some(self.department_dn(d.as_str()).to_string()),
            })
            .collect();
        let mut e = Entry::new(self.group_dn(group.id.as_str()));
        e.set("objectClass", ["top", "groupOfNames", "groupOfUniqueNames"])
            .set("cn", [group.id.0.clone()])
            .set_opt("displayName", group.name.as_deref())
            .set_opt("description", group.description.as_deref())
            .set("member", members.clone())
            .set("uniqueMember", members);
        self.operational(
            &mut e,
            "group",
            group.id.as_str(),
            group.created_at,
            group.updated_at,
        );
        Some(e)
    }

    /// A department's entry; `members`: the DNs of its users as the pool's scope counts
    /// them. `None` for a deleted department.
    pub fn department(
        &self,
        department: &Department,
        path: Option<&str>,
        members: Vec<Dn>,
    ) -> Option<Entry> {
        if department.deleted_at.is_some() {
            return None;
        }
        let mut e = Entry::new(self.department_dn(department.id.as_str()));
        let members: Vec<String> = members.iter().map(Dn::to_string).collect();
        e.set("objectClass", ["top", "groupOfNames", "groupOfUniqueNames"])
            .set("cn", [department.id.0.clone()])
            .set_opt("displayName", department.name.as_deref())
            .set_opt("ou", department.name.as_deref())
            .set_opt("description", path)
            .set(
                "memberOf",
                department
                    .parent_id
                    .as_ref()
                    .map(|p| self.department_dn(p.as_str()).to_string()),
            )
            .set("member", members.clone())
            .set("uniqueMember", members);
        self.operational(
            &mut e,
            "department",
            department.id.as_str(),
            department.created_at,
            department.updated_at,
        );
        Some(e)
    }

    /// Makes a person's entry a `posixAccount`: `n` its POSIX number, `group` its primary
    /// department's (none: the pool's everyone group, the base itself).
    pub fn posix_person(&self, e: &mut Entry, base: u32, n: i64, group: Option<i64>) {
        let first = |attr: &str| {
            e.values(attr)
                .and_then(|v| v.first().map(|s| (*s).to_owned()))
        };
        let login = first("uid").unwrap_or_default();
        let gecos = first("displayName").unwrap_or_else(|| login.clone());
        e.add("objectClass", "posixAccount");
        e.set("uidNumber", [posix_number(base, n)])
            .set("gidNumber", [posix_number(base, group.unwrap_or(0))])
            .set("homeDirectory", [format!("/home/{login}")])
            .set("loginShell", ["/bin/bash"])
            .set("gecos", [gecos]);
    }

    /// Makes a group's or a department's entry a `posixGroup`: `n` its POSIX number,
    /// `member_uids` the logins of the people it lists.
    pub fn posix_group(&self, e: &mut Entry, base: u32, n: i64, member_uids: Vec<String>) {
        e.add("objectClass", "posixGroup");
        e.set("gidNumber", [posix_number(base, n)])
            .set("memberUid", member_uids);
    }

    fn operational(&self, e: &mut Entry, kind: &str, id: &str, created: i64, updated: i64) {
        e.set("entryUUID", [entry_uuid(self.pool_id.as_str(), kind, id)])
            .set("createTimestamp", [generalized_time(created)])
            .set("modifyTimestamp", [generalized_time(updated)])
            .set("hasSubordinates", ["FALSE"]);
    }
}

/// `base + n` as written in an entry.
fn posix_number(base: u32, n: i64) -> String {
    (i64::from(base) + n).to_string()
}

fn container_of(rdn: &Rdn) -> Option<Container> {
    if rdn.attr != "ou" {
        return None;
    }
    Container::ALL.into_iter().find(|c| c.ou() == rdn.value)
}

/// A stable UUID for an object: version 5 (name-based) over the pool, kind and id, so that it
/// never changes and two pools never share one (docs/ldap.md, "The tree").
pub fn entry_uuid(pool: &str, kind: &str, id: &str) -> String {
    // The namespace: a v5 UUID of "orgsync.ldap" in the URL namespace, fixed forever.
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"orgsync.ldap");
    uuid::Uuid::new_v5(&namespace, format!("{pool}/{kind}/{id}").as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use directory::ids::{DepartmentId, GroupId, PoolId, UserId};
    use directory::model::{GroupKind, Membership, UserProfile};

    fn tree() -> PoolTree {
        PoolTree::new(
            PoolId("p1".into()),
            Dn::parse("dc=Example,dc=com").unwrap(),
            DepartmentScope::Subtree,
        )
    }

    fn user(id: &str, status: UserStatus) -> User {
        User {
            id: UserId(id.into()),
            pool_id: PoolId("p1".into()),
            profile: UserProfile {
                name: Some("张三".into()),
                email: Some("zhangsan@example.com".into()),
                enterprise_email: Some("ZhangSan@example.com".into()),
                job_title: Some("Engineer".into()),
                employee_type: Some(1),
                ..Default::default()
            }
            .into(),
            status,
            departments: vec![
                Membership {
                    department_id: DepartmentId("d1".into()),
                    user_order: None,
                    department_order: None,
                    primary: false,
                },
                Membership {
                    department_id: DepartmentId("d2".into()),
                    user_order: None,
                    department_order: None,
                    primary: true,
                },
            ],
            in_root: false,
            manager_id: Some(UserId("boss".into())),
            version: 3,
            created_at: 1_733_500_800_000,
            updated_at: 1_733_500_860_000,
            deleted_at: None,
        }
    }

    /// Every attribute an entry carries is one a search expects of its container
    /// (`search::can_match` skips containers by these lists).
    fn carried_only(e: &Entry, c: Container) {
        let (attrs, classes) = crate::search::carried(c);
        for (name, values) in &e.attrs {
            assert!(
                attrs.contains(&name.to_ascii_lowercase().as_str()),
                "{name} is not in the list of {c:?}"
            );
            if *name == "objectClass" {
                for v in values {
                    assert!(classes.contains(&v.to_ascii_lowercase().as_str()), "{v}");
                }
            }
        }
    }

    #[test]
    fn the_base_and_containers_carry_what_searches_expect() {
        let t = tree();
        for (e, (attrs, classes)) in [
            (t.base_entry("Acme"), crate::search::BASE_CARRIES),
            (
                t.container_entry(Container::People),
                crate::search::CONTAINER_CARRIES,
            ),
        ] {
            for (name, values) in &e.attrs {
                assert!(
                    attrs.contains(&name.to_ascii_lowercase().as_str()),
                    "{name}"
                );
                if *name == "objectClass" {
                    for v in values {
                        assert!(classes.contains(&v.to_ascii_lowercase().as_str()), "{v}");
                    }
                }
            }
        }
    }

    #[test]
    fn dns_are_located_in_any_spelling() {
        let t = tree();
        let loc = |s: &str| t.locate(&Dn::parse(s).unwrap());
        assert_eq!(loc("DC=example, DC=COM"), Some(Target::Base));
        assert_eq!(
            loc("ou=People,dc=example,dc=com"),
            Some(Target::Container(Container::People))
        );
        assert_eq!(
            loc("UID=AbC,ou=people,dc=example,dc=com"),
            Some(Target::Entry(Container::People, "abc".into()))
        );
        assert_eq!(
            loc("cn=g1,ou=groups,dc=example,dc=com"),
            Some(Target::Entry(Container::Groups, "g1".into()))
        );
        assert_eq!(loc("cn=x,ou=people,dc=example,dc=com"), None);
        assert_eq!(loc("ou=other,dc=example,dc=com"), None);
        assert_eq!(loc("dc=other,dc=com"), None);
        assert_eq!(loc("a=b,cn=g1,ou=groups,dc=example,dc=com"), None);
    }

    #[test]
    fn an_active_user_is_a_person_and_no_one_else_is() {
        let t = tree();
        let e = t
            .person(
                &user("u1", UserStatus::Active),
                "zhangsan",
                vec![t.group_dn("g1")],
                Some("boss"),
                Some("Ops"),
                None,
            )
            .unwrap();
        carried_only(&e, Container::People);
        assert_eq!(e.dn.to_string(), "uid=zhangsan,ou=people,dc=Example,dc=com");
        assert_eq!(e.values("uid").unwrap(), ["zhangsan"]);
        // The enterprise address first; the same address in another case once.
        assert_eq!(e.values("mail").unwrap(), ["ZhangSan@example.com"]);
        assert_eq!(e.values("sn").unwrap(), ["张三"]);
        // `ou`: the primary department's name, as the caller read it.
        assert_eq!(e.values("ou").unwrap(), ["Ops"]);
        assert_eq!(e.values("departmentNumber").unwrap(), ["d1", "d2"]);
        assert_eq!(
            e.values("manager").unwrap(),
            ["uid=boss,ou=people,dc=Example,dc=com"]
        );
        assert_eq!(e.values("modifyTimestamp").unwrap(), ["20241206160100Z"]);
        assert!(e.has_value("memberOf", "cn=G1,ou=groups,dc=example,dc=com"));
        for s in [
            UserStatus::Frozen,
            UserStatus::Resigned,
            UserStatus::Unjoined,
            UserStatus::Exited,
        ] {
            assert!(
                t.person(&user("u1", s), "u1", vec![], None, None, None)
                    .is_none(),
                "{s:?} shown"
            );
        }
        let mut deleted = user("u1", UserStatus::Active);
        deleted.deleted_at = Some(1);
        assert!(t.person(&deleted, "u1", vec![], None, None, None).is_none());
        // A manager who is not shown is not named.
        let e = t
            .person(
                &user("u1", UserStatus::Active),
                "u1",
                vec![],
                None,
                None,
                None,
            )
            .unwrap();
        assert!(e.values("manager").is_none());
        // A group's change later than the user's own moves its modifyTimestamp.
        let e = t
            .person(
                &user("u1", UserStatus::Active),
                "u1",
                vec![],
                None,
                None,
                Some(1_733_500_920_000),
            )
            .unwrap();
        assert_eq!(e.values("modifyTimestamp").unwrap(), ["20241206160200Z"]);
    }

    #[test]
    fn group_members_are_people_and_departments() {
        let t = tree();
        let g = Group {
            id: GroupId("g1".into()),
            pool_id: PoolId("p1".into()),
            name: Some("Ops".into()),
            description: None,
            kind: GroupKind::Normal,
            members: vec![
                GroupMember::Department(DepartmentId("d1".into())),
                GroupMember::User(UserId("u1".into())),
            ],
            version: 1,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        };
        let shown: HashMap<UserId, String> = [(UserId("u1".into()), "li".into())].into();
        let e = t.group(&g, &shown).unwrap();
        carried_only(&e, Container::Groups);
        let d = Department {
            id: DepartmentId("d2".into()),
            pool_id: PoolId("p1".into()),
            name: Some("Sales".into()),
            i18n_name: None,
            parent_id: Some(DepartmentId("d1".into())),
            order: None,
            leaders: Vec::new(),
            chat_id: None,
            version: 1,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        };
        let de = t
            .department(&d, Some("Acme / Ops"), vec![t.person_dn("u1")])
            .unwrap();
        carried_only(&de, Container::Departments);
        assert_eq!(de.values("description").unwrap(), ["Acme / Ops"]);
        assert!(e.has_value("member", "uid=li,ou=people,dc=example,dc=com"));
        // A member who left is not listed.
        let e = t.group(&g, &HashMap::new()).unwrap();
        assert!(!e.has_value("member", "uid=u1,ou=people,dc=example,dc=com"));
        assert!(e.has_value("member", "cn=d1,ou=departments,dc=example,dc=com"));
        assert!(e.has_value("uniqueMember", "cn=d1,ou=departments,dc=example,dc=com"));
        assert_eq!(e.values("displayName").unwrap(), ["Ops"]);
    }

    #[test]
    fn entry_uuids_are_stable_and_distinct() {
        let a = entry_uuid("p1", "user", "u1");
        assert_eq!(a, entry_uuid("p1", "user", "u1"));
        assert_ne!(a, entry_uuid("p2", "user", "u1"));
        assert_ne!(a, entry_uuid("p1", "group", "u1"));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }
}
