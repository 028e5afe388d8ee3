//! Users and their quotas, as operators manage them: `/users` and `/quotas`.

use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and acts on its own namespaces, operations and executions only.
    Tenant,
    /// A tenant that also sees every tenant's executions and uplink queue, approves or rejects
    /// executions on flight systems, and manages users and quotas.
    Operator,
}

impl Role {
    /// The role as the JSON and the users file write it (`tenant`, `operator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Operator => "operator",
        }
    }

    /// Reads [`Role::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "tenant" => Some(Role::Tenant),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One user: `GET /api/v1/users` lists them, `POST /api/v1/users` and the `disable` and
/// `enable` routes answer with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// The name, which is also the tenant.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub created_at: String,
    /// When an operator disabled it; `null` while it may log in.
    pub disabled_at: Option<String>,
}

/// `GET /api/v1/users`: every user, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserList {
    /// The users.
    pub users: Vec<User>,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    pub name: String,
    /// 1 to 1024 bytes.
    pub password: String,
    /// `tenant` when absent.
    #[serde(default = "tenant")]
    pub role: Role,
}

fn tenant() -> Role {
    Role::Tenant
}

/// A tenant's quotas: each a limit, `null` for none. The ground stores and shows them; the
/// flight agent enforces them onboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes of its volumes onboard.
    #[serde(default)]
    pub volume_bytes: Option<u64>,
    /// Bytes of its images onboard.
    #[serde(default)]
    pub image_bytes: Option<u64>,
    /// Seconds of pod run time a day (UTC), over every system.
    #[serde(default)]
    pub compute_seconds_per_day: Option<u64>,
    /// Bytes downlinked a day (UTC).
    #[serde(default)]
    pub downlink_bytes_per_day: Option<u64>,
}

/// `GET /api/v1/quotas/{tenant}` and the answer to `PUT`: a tenant's quotas and who set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quota {
    /// The tenant.
    pub tenant: String,
    /// Its limits (`PUT` takes this object alone, as the whole new quota).
    pub limits: Limits,
    /// When they were last set; `null` when never (no limit at all).
    pub updated_at: Option<String>,
    /// The operator who last set them; `null` when never.
    pub updated_by: Option<String>,
}

/// `GET /api/v1/quotas`: every user's quotas, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaList {
    /// One per user.
    pub quotas: Vec<Quota>,
}
