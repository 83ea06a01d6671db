//! Query parameters as Feishu reads them: repeated keys (`user_ids=a&user_ids=b`), id types
//! with their defaults, booleans.

use feishu::ids::{DepartmentIdType, IdTypes, UserIdType};

use super::errors::ApiError;

/// The decoded query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A non-empty value, or 99992402.
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::field(key, "", &format!("{key} is required")))
    }

    /// An enum-like parameter, `default` when absent or empty.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ApiError::field(key, raw, &format!("{key} has an unknown value"))),
        }
    }

    pub fn user_id_type(&self) -> Result<UserIdType, ApiError> {
        self.parsed("user_id_type", UserIdType::OpenId)
    }

    pub fn department_id_type(&self) -> Result<DepartmentIdType, ApiError> {
        self.parsed("department_id_type", DepartmentIdType::OpenDepartmentId)
    }

    pub fn id_types(&self) -> Result<IdTypes, ApiError> {
        Ok(IdTypes::new(
            self.user_id_type()?,
            self.department_id_type()?,
        ))
    }

    /// `true`/`false` (Feishu's Go binding also takes `1`/`0`).
    pub fn bool(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(false),
            Some("true" | "1" | "True" | "TRUE") => Ok(true),
            Some("false" | "0" | "False" | "FALSE") => Ok(false),
            Some(raw) => Err(ApiError::field(
                key,
                raw,
                &format!("{key} must be a boolean"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_encoded_values_and_defaults() {
        let p = Params::parse(Some(
            "user_ids=a&user_ids=b%2Bc&page_token=x%2By%3D&fetch_child=true",
        ));
        assert_eq!(p.all("user_ids"), vec!["a", "b+c"]);
        assert_eq!(p.get("page_token"), Some("x+y="));
        assert!(p.bool("fetch_child").unwrap());
        assert_eq!(p.id_types().unwrap(), IdTypes::OPEN);
        let bad = Params::parse(Some("user_id_type=openid"));
        assert_eq!(bad.user_id_type().unwrap_err().code, 99992402);
    }
}
