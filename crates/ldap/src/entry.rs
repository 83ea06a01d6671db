//! An entry as a search returns it: a DN and attributes with their values as text.

use crate::dn::Dn;
use crate::schema::{self, Syntax};

/// One entry. Attribute names are canonical (`schema::ATTRIBUTES`); an attribute with no
/// values is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: Dn,
    pub attrs: Vec<(&'static str, Vec<String>)>,
}

impl Entry {
    pub fn new(dn: Dn) -> Self {
        Self {
            dn,
            attrs: Vec::new(),
        }
    }

    /// Adds values (none: nothing is added).
    pub fn set<I, S>(&mut self, name: &'static str, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        if !values.is_empty() {
            self.attrs.push((name, values));
        }
        self
    }

    /// Adds one value when there is one.
    /// Adds a value to an attribute, which it creates when missing.
    pub fn add(&mut self, name: &'static str, value: &str) -> &mut Self {
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.to_owned()),
            None => self.attrs.push((name, vec![value.to_owned()])),
        }
        self
    }

    pub fn set_opt(&mut self, name: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.attrs.push((name, vec![v.to_owned()]));
        }
        self
    }

    /// The values of an attribute named in any case (`entryDN` is the entry's own DN).
    pub fn values(&self, name: &str) -> Option<Vec<&str>> {
        let canonical = schema::canonical(name)?;
        if canonical == "entryDN" {
            return None;
        }
        self.attrs
            .iter()
            .find(|(n, _)| *n == canonical)
            .map(|(_, v)| v.iter().map(String::as_str).collect())
    }

    /// The attributes a search asked for (RFC 4511 §4.5.1.8): none listed or `*`: every user
    /// attribute; `+`: every operational one; `1.1` alone: none; names: those.
    pub fn select(&self, requested: &[String]) -> Vec<(&'static str, &[String])> {
        let all_user = requested.is_empty() || requested.iter().any(|r| r == "*");
        let all_operational = requested.iter().any(|r| r == "+");
        let named = |name: &str| requested.iter().any(|r| schema::canonical(r) == Some(name));
        self.attrs
            .iter()
            .filter(|(name, _)| {
                let operational = schema::attribute(name).is_some_and(|a| a.operational);
                named(name)
                    || (if operational {
                        all_operational
                    } else {
                        all_user
                    })
            })
            .map(|(name, values)| (*name, values.as_slice()))
            .collect()
    }

    /// Whether the entry has `value` for `name`, by the attribute's matching rule.
    pub fn has_value(&self, name: &str, value: &str) -> bool {
        let Some(def) = schema::attribute(name) else {
            return false;
        };
        if def.name == "entryDN" {
            return crate::filter::equal(Syntax::Dn, &self.dn.to_string(), value);
        }
        self.values(def.name).is_some_and(|vs| {
            vs.iter()
                .any(|v| crate::filter::equal(def.syntax, v, value))
        })
    }
}

/// A time in GeneralizedTime (`YYYYMMDDHHMMSSZ`, UTC) from Unix milliseconds.
pub fn generalized_time(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Unix milliseconds from GeneralizedTime (`YYYYMMDDHH[MM[SS[.fff]]]` then `Z` or `±HHMM`).
pub fn parse_generalized_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d, h) = (digits(0, 4)?, digits(4, 6)?, digits(6, 8)?, digits(8, 10)?);
    let mut at = 10;
    let mut minute = 0;
    let mut second = 0;
    if let Some(m) = digits(10, 12) {
        minute = m;
        at = 12;
        if let Some(sec) = digits(12, 14) {
            second = sec;
            at = 14;
        }
    }
    let mut millis = 0;
    if matches!(s.as_bytes().get(at), Some(b'.' | b',')) {
        let frac: String = s[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if frac.is_empty() {
            return None;
        }
        at += 1 + frac.len();
        let padded = format!("{frac:0<3}");
        millis = padded[..3].parse::<i64>().ok()?;
    }
    let offset_minutes = match &s[at..] {
        "Z" => 0,
        zone if zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let hh: i64 = zone[1..3].parse().ok()?;
            let mm: i64 = zone[3..5].parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hh * 60 + mm)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1000 + millis)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Entry {
        let mut e = Entry::new(Dn::parse("uid=alice,ou=people,dc=example,dc=com").unwrap());
        e.set("objectClass", ["top", "person", "inetOrgPerson"])
            .set("uid", ["alice"])
            .set("mail", ["Alice@Example.com"])
            .set("memberOf", ["cn=g1,ou=groups,dc=example,dc=com"])
            .set("entryUUID", ["0f0e0d0c-0000-4000-8000-000000000001"])
            .set_opt("title", None);
        e
    }

    #[test]
    fn selection_follows_star_plus_and_names() {
        let e = sample();
        let names = |req: &[&str]| -> Vec<&str> {
            let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
            e.select(&req).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&[]), ["objectClass", "uid", "mail"]);
        assert_eq!(names(&["*"]), ["objectClass", "uid", "mail"]);
        assert_eq!(names(&["+"]), ["memberOf", "entryUUID"]);
        assert_eq!(names(&["*", "+"]).len(), 5);
        assert_eq!(names(&["1.1"]), Vec::<&str>::new());
        assert_eq!(names(&["MAIL", "memberof"]), ["mail", "memberOf"]);
        assert!(e.has_value("mail", "alice@example.COM"));
        assert!(e.has_value("memberOf", "CN=G1, OU=Groups,DC=example,DC=com"));
        assert!(e.has_value("entryDN", "UID=Alice,ou=people,dc=example,dc=com"));
        assert!(!e.has_value("title", "x"));
    }

    #[test]
    fn generalized_time_known_values() {
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(1_733_500_800_000), "20241206160000Z");
        assert_eq!(
            parse_generalized_time("20241206160000Z"),
            Some(1_733_500_800_000)
        );
        assert_eq!(
            parse_generalized_time("202412070000+0800"),
            Some(1_733_500_800_000)
        );
        assert_eq!(
            parse_generalized_time("20241206160000.5Z"),
            Some(1_733_500_800_500)
        );
        for bad in [
            "",
            "2024",
            "20241306000000Z",
            "20241206160000",
            "2024120616000xZ",
        ] {
            assert_eq!(parse_generalized_time(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn generalized_time_round_trips(secs in -2_000_000_000i64..8_000_000_000) {
            let ms = secs * 1000;
            prop_assert_eq!(parse_generalized_time(&generalized_time(ms)), Some(ms));
        }
    }
}
