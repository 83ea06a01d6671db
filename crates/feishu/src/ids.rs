//! Id types of the Contact v3 API (protocol §2.2).
//!
//! Feishu answers every id field in the type the request asked for, and defaults differ
//! between endpoints, so orgsync always sends the id types explicitly (design.md §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The root department's id under both department id types.
pub const ROOT_DEPARTMENT_ID: &str = "0";

/// Which id a user-id field carries (`user_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    /// `ou_…`, per user per app. orgsync's primary key for users.
    #[default]
    OpenId,
    /// `on_…`, per user per app developer.
    UnionId,
    /// Tenant-defined; needs `contact:user.employee_id:readonly`.
    UserId,
}

impl UserIdType {
    pub const ALL: [UserIdType; 3] = [Self::OpenId, Self::UnionId, Self::UserId];

    /// The query-parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenId => "open_id",
            Self::UnionId => "union_id",
            Self::UserId => "user_id",
        }
    }
}

/// Which id a department-id field carries (`department_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepartmentIdType {
    /// `od-…`, system generated and never reused. orgsync's primary key for departments.
    #[default]
    OpenDepartmentId,
    /// Custom id; may be reused after the department is deleted.
    DepartmentId,
}

impl DepartmentIdType {
    pub const ALL: [DepartmentIdType; 2] = [Self::OpenDepartmentId, Self::DepartmentId];

    /// The query-parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenDepartmentId => "open_department_id",
            Self::DepartmentId => "department_id",
        }
    }
}

/// Which id a group member's `member_id` carries (`member_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberIdType {
    /// For users the `ou_` id; for departments the `od-` id.
    #[default]
    OpenId,
    UnionId,
    UserId,
    /// For department members: the custom department id.
    DepartmentId,
}

impl MemberIdType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenId => "open_id",
            Self::UnionId => "union_id",
            Self::UserId => "user_id",
            Self::DepartmentId => "department_id",
        }
    }
}

/// The pair of id types sent with every contact request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct IdTypes {
    pub user: UserIdType,
    pub department: DepartmentIdType,
}

impl IdTypes {
    /// `open_id` + `open_department_id`: the immutable ids orgsync keys objects by.
    pub const OPEN: IdTypes = IdTypes {
        user: UserIdType::OpenId,
        department: DepartmentIdType::OpenDepartmentId,
    };

    pub fn new(user: UserIdType, department: DepartmentIdType) -> Self {
        Self { user, department }
    }
}

/// The kind of a user group (`type` of `group/simplelist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupType {
    /// 普通用户组, members managed by hand (`type=1`).
    #[default]
    Normal,
    /// 动态用户组, members computed by rules (`type=2`).
    Dynamic,
}

impl GroupType {
    pub const ALL: [GroupType; 2] = [Self::Normal, Self::Dynamic];

    /// The integer Feishu uses on the wire.
    pub fn code(self) -> i64 {
        match self {
            Self::Normal => 1,
            Self::Dynamic => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::Normal),
            2 => Some(Self::Dynamic),
            _ => None,
        }
    }
}

/// Whether a group member is a user or a department (`member_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberType {
    #[default]
    User,
    Department,
}

impl MemberType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Department => "department",
        }
    }
}

/// An id-type name that Feishu does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown id type {0:?}")]
pub struct UnknownIdType(pub String);

macro_rules! str_enum {
    ($ty:ty, [$($variant:expr),+]) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = UnknownIdType;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                [$($variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownIdType(s.to_owned()))
            }
        }
    };
}

str_enum!(
    UserIdType,
    [UserIdType::OpenId, UserIdType::UnionId, UserIdType::UserId]
);
str_enum!(
    DepartmentIdType,
    [
        DepartmentIdType::OpenDepartmentId,
        DepartmentIdType::DepartmentId
    ]
);
str_enum!(
    MemberIdType,
    [
        MemberIdType::OpenId,
        MemberIdType::UnionId,
        MemberIdType::UserId,
        MemberIdType::DepartmentId
    ]
);
str_enum!(MemberType, [MemberType::User, MemberType::Department]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_types_round_trip_through_their_wire_names() {
        for t in UserIdType::ALL {
            assert_eq!(t.as_str().parse::<UserIdType>().unwrap(), t);
        }
        for t in DepartmentIdType::ALL {
            assert_eq!(t.as_str().parse::<DepartmentIdType>().unwrap(), t);
        }
        assert_eq!(
            "department".parse::<MemberType>().unwrap(),
            MemberType::Department
        );
        assert!("openid".parse::<UserIdType>().is_err());
        assert_eq!(GroupType::from_code(2), Some(GroupType::Dynamic));
        assert_eq!(GroupType::from_code(3), None);
    }
}
