-- The ground's first schema. Times are milliseconds since the Unix epoch (UTC); lists that are
-- only ever read whole (histories, errors, outputs, catalogues) are JSON text.

CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Bearer tokens, stored as the sha256 of the token.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

CREATE TABLE namespaces (
    name       TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL REFERENCES users(name),
    created_at INTEGER NOT NULL
);
CREATE INDEX namespaces_by_owner ON namespaces(owner, name);

-- Every version of every ground file; the content is the blob named by `digest`.
CREATE TABLE files (
    namespace  TEXT NOT NULL REFERENCES namespaces(name),
    path       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mode       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, path, version)
);

CREATE TABLE operations (
    namespace  TEXT NOT NULL REFERENCES namespaces(name),
    id         TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);

CREATE TABLE operation_revisions (
    namespace  TEXT NOT NULL,
    id         TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    yaml       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id, revision),
    FOREIGN KEY (namespace, id) REFERENCES operations(namespace, id)
);

CREATE TABLE executions (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant       TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    operation    TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    system       TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    scheduled_at INTEGER,
    started_at   INTEGER,
    finished_at  INTEGER,
    history      TEXT NOT NULL,
    errors       TEXT NOT NULL,
    FOREIGN KEY (namespace, operation) REFERENCES operations(namespace, id)
);
CREATE INDEX executions_by_operation ON executions(namespace, operation, created_at);
CREATE INDEX executions_by_tenant ON executions(tenant, created_at);

-- One row per task of an execution; `spec` keeps what later events need (a downlink's
-- destination folder).
CREATE TABLE tasks (
    execution   TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    history     TEXT NOT NULL,
    error       TEXT,
    outputs     TEXT,
    spec        TEXT NOT NULL,
    PRIMARY KEY (execution, idx)
);

-- What each flight agent last said about itself.
CREATE TABLE systems (
    name      TEXT PRIMARY KEY NOT NULL,
    agent     TEXT NOT NULL,
    platform  TEXT NOT NULL,
    catalogue TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);

-- The ground's mirror of the tenants' onboard volumes.
CREATE TABLE volume_files (
    system      TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    volume      TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    is_dir      INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (system, tenant, volume, path)
);
