//! Distinguished names (RFC 4514) as this server reads and writes them.
//!
//! Clients send DNs in many spellings (`UID=Alice, OU=People,…`, escaped or hex-escaped
//! values); some compare DNs as strings ("naive DN matching" in Atlassian products), so every
//! DN this server writes is in one canonical form, and every DN it reads is normalised to that
//! form before it is compared (docs/ldap.md, "Names").

use std::fmt;

/// Why a DN could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN {dn:?}: {why}")]
pub struct DnError {
    pub dn: String,
    pub why: &'static str,
}

/// One `type=value` pair. The type is lowercased; the value keeps its case (see
/// [`Dn::normalized`] for comparisons).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rdn {
    pub attr: String,
    pub value: String,
}

/// A parsed DN, most specific RDN first (as written). The empty DN is the Root DSE's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Dn(pub Vec<Rdn>);

impl Dn {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a string DN. White space around separators is ignored; values may be escaped
    /// with `\` followed by a special character or two hex digits. Multi-valued RDNs (`+`)
    /// are refused: no entry here has one.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        let err = |why| DnError {
            dn: s.to_owned(),
            why,
        };
        let mut rdns = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(rdns));
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        loop {
            // The attribute type.
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && bytes[i] != b'=' {
                if matches!(bytes[i], b',' | b';' | b'+' | b'\\' | b'"') {
                    return Err(err("an attribute type holds a special character"));
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(err("an RDN has no '='"));
            }
            let attr = s[start..i].trim().to_ascii_lowercase();
            if attr.is_empty() {
                return Err(err("an RDN has no attribute type"));
            }
            if !attr
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(err("an attribute type is not a name or an OID"));
            }
            i += 1;
            // The value, up to an unescaped separator.
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let mut value: Vec<u8> = Vec::new();
            // Trailing unescaped spaces are not part of the value.
            let mut kept = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b',' | b';' => break,
                    b'+' => return Err(err("multi-valued RDNs are not supported")),
                    b'\\' => {
                        let next = *bytes.get(i + 1).ok_or_else(|| err("a dangling '\\'"))?;
                        if next.is_ascii_hexdigit() {
                            let pair = s
                                .get(i + 1..i + 3)
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                                .ok_or_else(|| err("a '\\' is followed by one hex digit"))?;
                            value.push(pair);
                            i += 3;
                        } else {
                            value.push(next);
                            i += 2;
                        }
                        kept = value.len();
                    }
                    b => {
                        value.push(b);
                        if b != b' ' {
                            kept = value.len();
                        }
                        i += 1;
                    }
                }
            }
            value.truncate(kept);
            let value = String::from_utf8(value).map_err(|_| err("a value is not UTF-8"))?;
            if value.is_empty() {
                return Err(err("an RDN has an empty value"));
            }
            rdns.push(Rdn { attr, value });
            if i >= bytes.len() {
                break;
            }
            i += 1; // the separator
            if i >= bytes.len() {
                return Err(err("the DN ends with a separator"));
            }
        }
        Ok(Self(rdns))
    }

    /// The comparable form: types and values lowercased (every naming attribute here is
    /// case-insensitive), written canonically.
    pub fn normalized(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|r| Rdn {
                    attr: r.attr.clone(),
                    value: r.value.to_lowercase(),
                })
                .collect(),
        )
    }

    /// `self` below `base` (or equal to it, with `or_self`): compares normalised forms.
    pub fn is_under(&self, base: &Dn) -> bool {
        self.0.len() >= base.0.len() && self.0[self.0.len() - base.0.len()..] == base.0[..]
    }

    /// The RDNs of `self` above `base`, most specific first (`None` unless under it).
    pub fn relative_to(&self, base: &Dn) -> Option<&[Rdn]> {
        self.is_under(base)
            .then(|| &self.0[..self.0.len() - base.0.len()])
    }

    /// `rdn,self`.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        let mut rdns = Vec::with_capacity(self.0.len() + 1);
        rdns.push(Rdn {
            attr: attr.to_owned(),
            value: value.to_owned(),
        });
        rdns.extend(self.0.iter().cloned());
        Dn(rdns)
    }

    /// The parent (the root for a one-RDN DN, `None` for the root).
    pub fn parent(&self) -> Option<Dn> {
        (!self.is_root()).then(|| Dn(self.0[1..].to_vec()))
    }
}

/// Escapes a value for a string DN (RFC 4514 §2.4).
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (n, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if n == 0 => out.push_str("\\#"),
            ' ' if n == 0 || n == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (n, r) in self.0.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&r.attr);
            out.push('=');
            escape_value(&r.value, &mut out);
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_of_one_dn_normalise_alike() {
        let a = Dn::parse("uid=Alice,ou=people,dc=example,dc=com").unwrap();
        let b = Dn::parse("UID=alice , OU=People,  DC=Example,dc=COM").unwrap();
        let c = Dn::parse("uid=\\41lice,ou=people;dc=example,dc=com").unwrap();
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.normalized(), c.normalized());
        assert_eq!(b.to_string(), "uid=alice,ou=People,dc=Example,dc=COM");
    }

    #[test]
    fn escapes_survive_a_round_trip() {
        let dn = Dn::root()
            .child("dc", "com")
            .child("cn", "R&D, Beijing + \"ops\"");
        let text = dn.to_string();
        assert_eq!(text, "cn=R&D\\, Beijing \\+ \\\"ops\\\",dc=com");
        assert_eq!(Dn::parse(&text).unwrap(), dn);
        let spaced = Dn::root().child("cn", " padded ");
        assert_eq!(Dn::parse(&spaced.to_string()).unwrap(), spaced);
    }

    #[test]
    fn malformed_dns_are_refused_with_why() {
        for bad in [
            "uid",
            "=x",
            "uid=a,",
            "uid=a+cn=b",
            "uid=\\4",
            "uid=",
            "u d=x",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Dn::parse("").unwrap().is_root());
    }

    #[test]
    fn under_and_relative() {
        let base = Dn::parse("dc=example,dc=com").unwrap();
        let dn = Dn::parse("uid=a,ou=people,dc=example,dc=com").unwrap();
        assert!(dn.is_under(&base));
        assert!(base.is_under(&base));
        assert!(!base.is_under(&dn));
        let rel = dn.relative_to(&base).unwrap();
        assert_eq!(rel.len(), 2);
        assert_eq!(rel[1].value, "people");
        assert_eq!(dn.parent().unwrap().parent().unwrap(), base);
    }

    proptest! {
        #[test]
        fn any_value_round_trips(values in proptest::collection::vec("\\PC{1,12}", 1..4)) {
            let mut dn = Dn::root();
            for v in &values {
                dn = dn.child("cn", v);
            }
            // Values that are only spaces cannot be written (RFC 4514 keeps them, we trim).
            prop_assume!(values.iter().all(|v| !v.trim().is_empty()));
            let parsed = Dn::parse(&dn.to_string()).unwrap();
            prop_assert_eq!(parsed, dn);
        }
    }
}
