//! The attributes this server publishes: their canonical names, how their values compare, and
//! whether they are operational (returned only when asked for by name or with `+`).

/// How values of an attribute are compared in filters and Compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Directory strings compared without regard to case (`caseIgnoreMatch`).
    CaseIgnore,
    /// Compared exactly (`caseExactMatch`; ids, URLs).
    CaseExact,
    /// Distinguished names, compared after normalisation.
    Dn,
    /// Integers, ordered numerically.
    Integer,
    /// GeneralizedTime (`YYYYMMDDHHMMSSZ`), ordered in time.
    Time,
}

#[derive(Debug)]
pub struct AttrDef {
    /// As written in entries.
    pub name: &'static str,
    pub syntax: Syntax,
    pub operational: bool,
    pub oid: &'static str,
}

macro_rules! attrs {
    ($($name:literal, $syntax:ident, $op:literal, $oid:literal;)*) => {
        /// Every attribute an entry here may carry.
        pub static ATTRIBUTES: &[AttrDef] = &[
            $(AttrDef { name: $name, syntax: Syntax::$syntax, operational: $op, oid: $oid },)*
        ];
    };
}

attrs! {
    "objectClass", CaseIgnore, false, "2.5.4.0";
    "uid", CaseIgnore, false, "0.9.2342.19200300.100.1.1";
    "cn", CaseIgnore, false, "2.5.4.3";
    "sn", CaseIgnore, false, "2.5.4.4";
    "givenName", CaseIgnore, false, "2.5.4.42";
    "displayName", CaseIgnore, false, "2.16.840.1.113730.3.1.241";
    "mail", CaseIgnore, false, "0.9.2342.19200300.100.1.3";
    "mobile", CaseIgnore, false, "0.9.2342.19200300.100.1.41";
    "title", CaseIgnore, false, "2.5.4.12";
    "employeeNumber", CaseIgnore, false, "2.16.840.1.113730.3.1.3";
    "employeeType", CaseIgnore, false, "2.16.840.1.113730.3.1.4";
    "ou", CaseIgnore, false, "2.5.4.11";
    "o", CaseIgnore, false, "2.5.4.10";
    "departmentNumber", CaseIgnore, false, "2.16.840.1.113730.3.1.2";
    "manager", Dn, false, "0.9.2342.19200300.100.1.10";
    "labeledURI", CaseExact, false, "1.3.6.1.4.1.250.1.57";
    "l", CaseIgnore, false, "2.5.4.7";
    "c", CaseIgnore, false, "2.5.4.6";
    "physicalDeliveryOfficeName", CaseIgnore, false, "2.5.4.19";
    "description", CaseIgnore, false, "2.5.4.13";
    "member", Dn, false, "2.5.4.31";
    "uniqueMember", Dn, false, "2.5.4.50";
    "dc", CaseIgnore, false, "0.9.2342.19200300.100.1.25";
    "uidNumber", Integer, false, "1.3.6.1.1.1.1.0";
    "gidNumber", Integer, false, "1.3.6.1.1.1.1.1";
    "gecos", CaseIgnore, false, "1.3.6.1.1.1.1.2";
    "homeDirectory", CaseExact, false, "1.3.6.1.1.1.1.3";
    "loginShell", CaseExact, false, "1.3.6.1.1.1.1.4";
    "memberUid", CaseIgnore, false, "1.3.6.1.1.1.1.12";
    "memberOf", Dn, true, "1.2.840.113556.1.2.102";
    "entryUUID", CaseIgnore, true, "1.3.6.1.1.16.4";
    "entryDN", Dn, true, "1.3.6.1.1.20";
    "createTimestamp", Time, true, "2.5.18.1";
    "modifyTimestamp", Time, true, "2.5.18.2";
    "hasSubordinates", CaseIgnore, true, "2.5.18.9";
    "subschemaSubentry", Dn, true, "2.5.18.10";
    "namingContexts", Dn, false, "1.3.6.1.4.1.1466.101.120.5";
    "supportedLDAPVersion", Integer, false, "1.3.6.1.4.1.1466.101.120.15";
    "supportedControl", CaseIgnore, false, "1.3.6.1.4.1.1466.101.120.13";
    "supportedExtension", CaseIgnore, false, "1.3.6.1.4.1.1466.101.120.7";
    "supportedFeatures", CaseIgnore, false, "1.3.6.1.4.1.4203.1.3.5";
    "vendorName", CaseIgnore, false, "1.3.6.1.1.4";
    "vendorVersion", CaseIgnore, false, "1.3.6.1.1.5";
    "attributeTypes", CaseIgnore, false, "2.5.21.5";
    "objectClasses", CaseIgnore, false, "2.5.21.6";
}

/// The definition of an attribute named in any case, or by its OID.
pub fn attribute(name: &str) -> Option<&'static AttrDef> {
    ATTRIBUTES
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name) || a.oid == name)
}

/// `name` in its canonical spelling when known (requests may use any case).
pub fn canonical(name: &str) -> Option<&'static str> {
    attribute(name).map(|a| a.name)
}

/// The controls and extended operations this server supports.
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
pub const WHOAMI_OID: &str = "1.3.6.1.4.1.4203.1.11.3";
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// RFC 3673: `+` requests every operational attribute.
pub const ALL_OPERATIONAL_FEATURE_OID: &str = "1.3.6.1.4.1.4203.1.5.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_any_case_and_by_oid() {
        assert_eq!(canonical("MEMBEROF"), Some("memberOf"));
        assert_eq!(canonical("2.5.4.3"), Some("cn"));
        assert_eq!(canonical("nonsense"), None);
        let mut names: Vec<String> = ATTRIBUTES.iter().map(|a| a.name.to_lowercase()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "an attribute is listed twice");
    }
}
