//! Search filters evaluated against an entry (RFC 4511 §4.5.1.7), with each attribute's
//! matching rule: names and most strings without regard to case, DNs after normalisation,
//! numbers and times in their order.
//!
//! Evaluation is three-valued: a filter on an attribute this server does not know is
//! *Undefined*, which is not a match, and stays Undefined under `!` (so `(!(foo=x))` matches
//! nothing, as on other servers).

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};

use crate::dn::Dn;
use crate::entry::{Entry, parse_generalized_time};
use crate::schema::{self, Syntax};

/// Whether `entry` matches `filter`.
pub fn matches(filter: &LdapFilter, entry: &Entry) -> bool {
    eval(filter, entry) == Some(true)
}

/// `None`: Undefined.
fn eval(filter: &LdapFilter, entry: &Entry) -> Option<bool> {
    match filter {
        LdapFilter::And(parts) => {
            let mut result = Some(true);
            for part in parts {
                match eval(part, entry) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        LdapFilter::Or(parts) => {
            let mut result = Some(false);
            for part in parts {
                match eval(part, entry) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        LdapFilter::Not(inner) => eval(inner, entry).map(|b| !b),
        LdapFilter::Equality(attr, value) | LdapFilter::Approx(attr, value) => {
            schema::attribute(attr)?;
            Some(entry.has_value(attr, value))
        }
        LdapFilter::Present(attr) => {
            let def = schema::attribute(attr)?;
            Some(
                matches!(def.name, "objectClass" | "entryDN")
                    || entry.values(def.name).is_some_and(|v| !v.is_empty()),
            )
        }
        LdapFilter::Substring(attr, pattern) => {
            let def = schema::attribute(attr)?;
            let values = values_of(entry, def.name);
            Some(values.iter().any(|v| substring(def.syntax, v, pattern)))
        }
        LdapFilter::GreaterOrEqual(attr, bound) => ordered(entry, attr, bound, true),
        LdapFilter::LessOrEqual(attr, bound) => ordered(entry, attr, bound, false),
        // Extensible matching (AD's in-chain rule among others) is not supported.
        LdapFilter::Extensible(_) => None,
    }
}

fn values_of(entry: &Entry, name: &'static str) -> Vec<String> {
    if name == "entryDN" {
        return vec![entry.dn.to_string()];
    }
    entry
        .values(name)
        .map(|v| v.into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Folds a directory string for comparison: case folded, outer white space removed, inner
/// runs of white space as one space (RFC 4518's insignificant space handling, simplified).
fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Equality by a syntax's matching rule.
pub fn equal(syntax: Syntax, stored: &str, asserted: &str) -> bool {
    match syntax {
        Syntax::CaseIgnore => fold(stored) == fold(asserted),
        Syntax::CaseExact => stored.trim() == asserted.trim(),
        Syntax::Dn => match (Dn::parse(stored), Dn::parse(asserted)) {
            (Ok(a), Ok(b)) => a.normalized() == b.normalized(),
            _ => false,
        },
        Syntax::Integer => match (stored.trim().parse::<i64>(), asserted.trim().parse::<i64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        Syntax::Time => match (
            parse_generalized_time(stored),
            parse_generalized_time(asserted),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

fn substring(syntax: Syntax, value: &str, pattern: &LdapSubstringFilter) -> bool {
    let norm = |s: &str| match syntax {
        Syntax::CaseExact => s.to_owned(),
        _ => fold(s),
    };
    let value = norm(value);
    let mut rest = value.as_str();
    if let Some(initial) = &pattern.initial {
        let initial = norm(initial);
        match rest.strip_prefix(initial.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for any in &pattern.any {
        let any = norm(any);
        match rest.find(any.as_str()) {
            Some(at) => rest = &rest[at + any.len()..],
            None => return false,
        }
    }
    match &pattern.final_ {
        Some(last) => rest.ends_with(norm(last).as_str()),
        None => true,
    }
}

fn ordered(entry: &Entry, attr: &str, bound: &str, greater: bool) -> Option<bool> {
    let def = schema::attribute(attr)?;
    let cmp = |v: &str| -> Option<std::cmp::Ordering> {
        match def.syntax {
            Syntax::Integer => Some(
                v.trim()
                    .parse::<i64>()
                    .ok()?
                    .cmp(&bound.trim().parse().ok()?),
            ),
            Syntax::Time => Some(parse_generalized_time(v)?.cmp(&parse_generalized_time(bound)?)),
            Syntax::CaseIgnore | Syntax::Dn => Some(fold(v).cmp(&fold(bound))),
            Syntax::CaseExact => Some(v.cmp(bound)),
        }
    };
    Some(values_of(entry, def.name).iter().any(|v| match cmp(v) {
        Some(o) if greater => o.is_ge(),
        Some(o) => o.is_le(),
        None => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::parse_ldap_filter_str;
    use ldap3_proto::proto::LdapMatchingRuleAssertion;

    fn alice() -> Entry {
        let mut e = Entry::new(Dn::parse("uid=alice,ou=people,dc=example,dc=com").unwrap());
        e.set(
            "objectClass",
            ["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
        .set("uid", ["alice"])
        .set("cn", ["Alice  Zhang"])
        .set("mail", ["Alice@Example.com", "az@corp.example.com"])
        .set("employeeType", ["1"])
        .set(
            "memberOf",
            [
                "cn=od-1,ou=departments,dc=example,dc=com",
                "cn=g1,ou=groups,dc=example,dc=com",
            ],
        )
        .set("modifyTimestamp", ["20261206120000Z"])
        .set("createTimestamp", ["20250101000000Z"]);
        e
    }

    fn check(filter: &str) -> bool {
        let f = parse_ldap_filter_str(filter).unwrap_or_else(|e| panic!("{filter}: {e:?}"));
        matches(&f, &alice())
    }

    #[test]
    fn what_real_clients_send() {
        // Gitea / Forgejo
        assert!(check("(&(objectClass=person)(|(uid=ALICE)(mail=alice)))"));
        assert!(check(
            "(&(objectClass=person)(|(uid=nobody)(mail=alice@example.com)))"
        ));
        // GitLab / Nextcloud: a group DN in another spelling (ldap3_proto's string parser
        // takes no '=' in a value; clients send BER, built here by hand).
        let member_of = |dn: &str| {
            LdapFilter::And(vec![
                LdapFilter::Equality("objectclass".into(), "person".into()),
                LdapFilter::Equality("memberOf".into(), dn.into()),
            ])
        };
        assert!(matches(
            &member_of("CN=G1,OU=groups, dc=Example,dc=com"),
            &alice()
        ));
        assert!(!matches(
            &member_of("cn=g2,ou=groups,dc=example,dc=com"),
            &alice()
        ));
        assert!(!matches(&member_of("not a dn"), &alice()));
        // Keycloak's changed-users sync
        assert!(check(
            "(|(createTimestamp>=20261201000000Z)(modifyTimestamp>=20261201000000Z))"
        ));
        assert!(!check(
            "(|(createTimestamp>=20261207000000Z)(modifyTimestamp>=20261207000000Z))"
        ));
        // Nextcloud's search box
        assert!(check("(|(cn=*zhang*)(mail=*zhang*))"));
        // Inner runs of white space compare as one space.
        let spaced = LdapFilter::Substring(
            "cn".into(),
            LdapSubstringFilter {
                initial: Some("alice zh".into()),
                any: vec![],
                final_: None,
            },
        );
        assert!(matches(&spaced, &alice()));
        assert!(check("(mail=az@*.example.com)"));
        assert!(!check("(cn=*li*zh*ang*x)"));
        // Presence
        assert!(check("(objectClass=*)"));
        assert!(check("(entryDN=*)"));
        assert!(!check("(title=*)"));
        // Numbers compare as numbers
        assert!(check("(employeeType<=10)"));
        assert!(!check("(employeeType>=10)"));
    }

    #[test]
    fn unknown_attributes_are_undefined_even_negated() {
        assert!(!check("(fooBar=1)"));
        assert!(!check("(!(fooBar=1))"));
        assert!(check("(|(fooBar=1)(uid=alice))"));
        assert!(!check("(&(fooBar=1)(uid=alice))"));
        assert!(check("(!(uid=bob))"));
        assert!(!check("(!(uid=alice))"));
    }

    #[test]
    fn extensible_match_matches_nothing() {
        let in_chain = LdapFilter::Extensible(LdapMatchingRuleAssertion {
            matching_rule: Some("1.2.840.113556.1.4.1941".into()),
            type_: Some("memberOf".into()),
            match_value: "cn=g1,ou=groups,dc=example,dc=com".into(),
            dn_attributes: false,
        });
        assert!(!matches(&in_chain, &alice()));
    }
}
