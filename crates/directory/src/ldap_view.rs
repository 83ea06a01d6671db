//! A pool's LDAP settings (docs/ldap.md, "Pool settings"): where its tree hangs, how a
//! person's login (`uid`) is chosen, and how departments count their members. Pure.

use serde::{Deserialize, Serialize};

use crate::dn::Dn;
use crate::ids::{PoolId, is_id};

/// Where a person's login (`uid`, the RDN of its entry) comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginSource {
    /// Feishu's tenant `user_id` (granted with the employee-id permission).
    #[default]
    UserId,
    /// The local part of the enterprise e-mail address, else of the e-mail address.
    EmailLocalPart,
    /// The orgsync id: never changes, never collides, means nothing to a person.
    OrgsyncId,
}

impl LoginSource {
    pub const ALL: [LoginSource; 3] = [Self::UserId, Self::EmailLocalPart, Self::OrgsyncId];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::EmailLocalPart => "email_local_part",
            Self::OrgsyncId => "orgsync_id",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::UserId => "Feishu user_id (needs the employee-id permission)",
            Self::EmailLocalPart => "the part of the e-mail address before @",
            Self::OrgsyncId => "the orgsync id",
        }
    }
}

/// Which users a department's membership covers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepartmentScope {
    /// The department's own members and those of every department below it.
    #[default]
    Subtree,
    /// Only users with a membership in the department itself.
    Direct,
}

impl DepartmentScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subtree => "subtree",
            Self::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Subtree, Self::Direct]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The first POSIX number of a pool when none is configured: above the ids Linux
/// distributions give local accounts.
pub const POSIX_ID_BASE: u32 = 10_000;
/// The POSIX numbers a pool may use: from its base up to this (2^31 − 1, the largest
/// `uidNumber` every NSS client takes).
pub const POSIX_ID_MAX: u32 = 2_147_483_647;

fn posix_id_base() -> u32 {
    POSIX_ID_BASE
}

/// A pool's LDAP settings. A pool that never saved any has the defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// The DN the pool's tree hangs from, e.g. `dc=example,dc=com`; absent:
    /// `o=<pool id>,dc=orgsync`.
    #[serde(default)]
    pub base_dn: Option<String>,
    /// Where `uid` comes from: `user_id` (default), `email_local_part` or `orgsync_id`.
    #[serde(default)]
    pub login: LoginSource,
    /// `subtree` (default): a department's members include its sub-departments' users;
    /// `direct`: only its own.
    #[serde(default)]
    pub department_members: DepartmentScope,
    /// Whether people are `posixAccount`s and groups and departments `posixGroup`s, with
    /// `uidNumber`/`gidNumber` (for SSSD and other NSS clients).
    #[serde(default)]
    pub posix: bool,
    /// The number of the pool's "everyone" group; each person, group and department gets the
    /// base plus its own number, given once in creation order and never reused.
    #[serde(default = "posix_id_base")]
    pub posix_id_base: u32,
}

impl Default for LdapSettings {
    fn default() -> Self {
        Self {
            base_dn: None,
            login: LoginSource::default(),
            department_members: DepartmentScope::default(),
            posix: false,
            posix_id_base: POSIX_ID_BASE,
        }
    }
}

impl LdapSettings {
    /// The base DN in effect: the configured one, else the pool's default.
    pub fn base(&self, pool: &PoolId) -> Dn {
        self.base_dn
            .as_deref()
            .and_then(|b| Dn::parse(b).ok())
            .unwrap_or_else(|| default_base(pool))
    }

    /// Checks what an admin entered and writes the base DN in its one spelling; the error
    /// says what to fix.
    pub fn validated(mut self) -> Result<Self, String> {
        if !(1_000..=1_000_000_000).contains(&self.posix_id_base) {
            return Err(format!(
                "posix_id_base: {} is out of range; use 1000 to 1000000000 (the default is {POSIX_ID_BASE})",
                self.posix_id_base
            ));
        }
        if let Some(raw) = self.base_dn.take() {
            let raw = raw.trim();
            if !raw.is_empty() {
                let dn = Dn::parse(raw).map_err(|e| {
                    format!("base_dn: {raw:?} is not a DN ({e}); write it like dc=example,dc=com")
                })?;
                if dn.is_root() {
                    return Err("base_dn: the empty DN is the Root DSE; name a DN such as dc=example,dc=com".into());
                }
                if dn.0.len() > 8 {
                    return Err(format!(
                        "base_dn: {raw:?} has {} parts; use at most 8",
                        dn.0.len()
                    ));
                }
                self.base_dn = Some(dn.to_string());
            }
        }
        Ok(self)
    }
}

/// `o=<pool id>,dc=orgsync`: the base when none is configured.
pub fn default_base(pool: &PoolId) -> Dn {
    Dn::root().child("dc", "orgsync").child("o", pool.as_str())
}

/// The folded form of a login or an address, as logins are compared (case ignored).
pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The login a value would give, if it may be one: not empty, at most 64 characters, and
/// not shaped like an orgsync id (that would collide with the fallback logins).
pub fn login_key(value: &str) -> Option<String> {
    let key = fold(value);
    (!key.is_empty() && key.chars().count() <= 64 && !is_id(&key)).then_some(key)
}

/// The local part of the address a user's `email_local_part` login comes from: the
/// enterprise address, else the other one.
pub fn mail_local_part(enterprise_email: Option<&str>, email: Option<&str>) -> Option<String> {
    let address = [enterprise_email, email]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|a| !a.is_empty())?;
    let (local, domain) = address.rsplit_once('@')?;
    if domain.is_empty() {
        return None;
    }
    login_key(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_defaults_and_refuse_the_unknown() {
        let s: LdapSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, LdapSettings::default());
        assert_eq!(s.login, LoginSource::UserId);
        assert_eq!((s.posix, s.posix_id_base), (false, POSIX_ID_BASE));
        assert_eq!(s.department_members, DepartmentScope::Subtree);
        let s: LdapSettings = serde_json::from_str(
            r#"{"base_dn":"DC=Example, DC=com","login":"email_local_part","department_members":"direct"}"#,
        )
        .unwrap();
        let s = s.validated().unwrap();
        assert_eq!(s.base_dn.as_deref(), Some("dc=Example,dc=com"));
        assert!(serde_json::from_str::<LdapSettings>(r#"{"login":"name"}"#).is_err());
        assert!(serde_json::from_str::<LdapSettings>(r#"{"base":"x"}"#).is_err());
        for source in LoginSource::ALL {
            assert_eq!(LoginSource::parse(source.as_str()), Some(source));
        }
    }

    #[test]
    fn a_bad_base_dn_says_what_to_write() {
        let bad = |b: &str| {
            LdapSettings {
                base_dn: Some(b.into()),
                ..Default::default()
            }
            .validated()
            .unwrap_err()
        };
        assert!(bad("example.com").contains("dc=example,dc=com"));
        let low = LdapSettings {
            posix_id_base: 999,
            ..Default::default()
        };
        assert!(low.validated().unwrap_err().contains("1000 to"));
        assert!(bad("dc=a,dc=b,dc=c,dc=d,dc=e,dc=f,dc=g,dc=h,dc=i").contains("at most 8"));
        let blank = LdapSettings {
            base_dn: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(blank.validated().unwrap().base_dn, None);
        let pool = PoolId("0123456789abcdef01234567".into());
        assert_eq!(
            LdapSettings::default().base(&pool).to_string(),
            "o=0123456789abcdef01234567,dc=orgsync"
        );
    }

    #[test]
    fn logins_come_from_the_local_part_and_never_look_like_ids() {
        assert_eq!(
            mail_local_part(Some("Zhang.San@corp.example"), Some("z@x.com")).as_deref(),
            Some("zhang.san")
        );
        assert_eq!(
            mail_local_part(None, Some("li@x.com")).as_deref(),
            Some("li")
        );
        assert_eq!(
            mail_local_part(Some(" "), Some("li@x.com")).as_deref(),
            Some("li")
        );
        assert_eq!(mail_local_part(None, Some("nobody")), None);
        assert_eq!(mail_local_part(None, Some("@x.com")), None);
        assert_eq!(mail_local_part(None, Some("a@")), None);
        assert_eq!(login_key("0123456789ABCDEF01234567"), None);
        assert_eq!(login_key(&"x".repeat(65)), None);
        assert_eq!(login_key(" ZhangSan ").as_deref(), Some("zhangsan"));
    }
}
