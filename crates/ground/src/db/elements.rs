//! The `system_elements` table: the element set last sent to each system on its own.

use sqlx::Row;

use super::Db;

/// The element set last sent to a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentElements {
    pub(crate) elements: wire::Elements,
    /// Its epoch, Unix ms.
    pub(crate) epoch_ms: i64,
    pub(crate) sent_ms: i64,
    pub(crate) sent_by: String,
    /// The signed message as sent.
    pub(crate) message: Vec<u8>,
}

/// Records `sent` as the element set last sent to `system`, unless the one recorded is as new
/// or newer (another request won a race): `false` then, and nothing is written. The check and
/// the write are one statement.
pub(crate) async fn set_sent_elements(
    db: &Db,
    system: &str,
    sent: &SentElements,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO system_elements (system, name, line1, line2, epoch_ms, sent_ms, sent_by, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT(system) DO UPDATE SET name = excluded.name, line1 = excluded.line1,
             line2 = excluded.line2, epoch_ms = excluded.epoch_ms, sent_ms = excluded.sent_ms,
             sent_by = excluded.sent_by, message = excluded.message
         WHERE system_elements.epoch_ms < excluded.epoch_ms",
    )
    .bind(system)
    .bind(sent.elements.name.as_deref())
    .bind(&sent.elements.line1)
    .bind(&sent.elements.line2)
    .bind(sent.epoch_ms)
    .bind(sent.sent_ms)
    .bind(&sent.sent_by)
    .bind(&sent.message)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The element set last sent to `system`, if any.
pub(crate) async fn sent_elements(
    db: &Db,
    system: &str,
) -> Result<Option<SentElements>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, line1, line2, epoch_ms, sent_ms, sent_by, message FROM system_elements
         WHERE system = $1",
    )
    .bind(system)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(SentElements {
            elements: wire::Elements {
                name: r.try_get("name")?,
                line1: r.try_get("line1")?,
                line2: r.try_get("line2")?,
            },
            epoch_ms: r.try_get("epoch_ms")?,
            sent_ms: r.try_get("sent_ms")?,
            sent_by: r.try_get("sent_by")?,
            message: r.try_get("message")?,
        })
    })
    .transpose()
}
