//! Namespaces and the versioned files in them.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    /// `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
}

/// A namespace: the answer to its creation, and an entry of [`NamespaceList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// The tenant it belongs to.
    pub owner: String,
    /// When it was created.
    pub created_at: String,
}

/// `GET /api/v1/namespaces`: the caller's namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamespaceList {
    /// Each of them.
    pub namespaces: Vec<Namespace>,
}

/// One file version an upload stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadedFile {
    /// Absolute in the namespace (`/app/Dockerfile`).
    pub path: String,
    /// The version this upload made (the first is 1).
    pub version: u64,
    /// Bytes.
    pub size: u64,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The octal permission bits (`"755"`).
    pub mode: String,
    /// When it was stored.
    pub created_at: String,
}

/// `POST /api/v1/namespaces/{ns}/files`: every file the upload stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// In the order of the upload.
    pub files: Vec<UploadedFile>,
}

/// The latest version of one path in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamespaceFile {
    /// Absolute in the namespace.
    pub path: String,
    /// The latest version.
    pub version: u64,
    /// How many versions the path has.
    pub versions: u64,
    /// Bytes.
    pub size: u64,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The octal permission bits (`"644"`).
    pub mode: String,
    /// When the latest version was stored.
    pub created_at: String,
}

/// `GET /api/v1/namespaces/{ns}/files`: sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileList {
    /// One entry per path.
    pub files: Vec<NamespaceFile>,
}

/// `DELETE /api/v1/namespaces/{ns}/files/{*path}`: the paths removed (every version of each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// Absolute in the namespace, sorted.
    pub paths: Vec<String>,
}

/// `POST /api/v1/namespaces/{ns}/move`: move a file, or a folder with everything under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoveFiles {
    /// The file or folder, absolute in the namespace.
    pub from: String,
    /// Its new path; nothing may exist there yet.
    pub to: String,
}

/// One path a move changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovedPath {
    /// The old path.
    pub from: String,
    /// The new path.
    pub to: String,
}

/// The answer to `POST /api/v1/namespaces/{ns}/move`: every path moved, with all its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Moved {
    /// Sorted by the old path.
    pub moved: Vec<MovedPath>,
}
