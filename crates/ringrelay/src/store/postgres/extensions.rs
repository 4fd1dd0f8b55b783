//! The `extensions` table on PostgreSQL: an account's extension list replaced in one
//! transaction, unchanged rows keeping their `updated_at`.

use chrono::{DateTime, Utc};

use super::rows::get;
use super::{PostgresStore, pg_err};
use crate::account::AccountId;
use crate::store::codec::{time, us};
use crate::store::{ExtensionRecord, StoreError, StoredExtension};

impl PostgresStore {
    /// See `Store::replace_extensions`.
    pub(super) async fn replace_extension_rows(
        &self,
        account: &AccountId,
        records: &[ExtensionRecord],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(pg_err)?;
        let keep: Vec<&str> = records.iter().map(|r| r.extension_id.as_str()).collect();
        t.execute(
            "DELETE FROM extensions WHERE account = $1 AND NOT (extension_id = ANY($2))",
            &[&account.as_str(), &keep],
        )
        .await
        .map_err(pg_err)?;
        let upsert = t
            .prepare(
                "INSERT INTO extensions (account, extension_id, number, name, kind, status,
                    covered, reason, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (account, extension_id) DO UPDATE SET
                    number = excluded.number, name = excluded.name, kind = excluded.kind,
                    status = excluded.status, covered = excluded.covered,
                    reason = excluded.reason,
                    updated_at = CASE
                        WHEN extensions.number IS NOT DISTINCT FROM excluded.number
                            AND extensions.name = excluded.name
                            AND extensions.kind = excluded.kind
                            AND extensions.status = excluded.status
                            AND extensions.covered = excluded.covered
                            AND extensions.reason IS NOT DISTINCT FROM excluded.reason
                        THEN extensions.updated_at ELSE excluded.updated_at END",
            )
            .await
            .map_err(pg_err)?;
        let at = us(now);
        for r in records {
            t.execute(
                &upsert,
                &[
                    &account.as_str(),
                    &r.extension_id,
                    &r.number,
                    &r.name,
                    &r.kind,
                    &r.status,
                    &r.covered,
                    &r.reason,
                    &at,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        t.commit().await.map_err(pg_err)
    }

    /// See `Store::extensions`.
    pub(super) async fn extension_rows(
        &self,
        account: &AccountId,
    ) -> Result<Vec<StoredExtension>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT extension_id, number, name, kind, status, covered, reason, updated_at
                 FROM extensions WHERE account = $1 ORDER BY extension_id",
                &[&account.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(StoredExtension {
                    record: ExtensionRecord {
                        extension_id: get(r, 0)?,
                        number: get(r, 1)?,
                        name: get(r, 2)?,
                        kind: get(r, 3)?,
                        status: get(r, 4)?,
                        covered: get(r, 5)?,
                        reason: get(r, 6)?,
                    },
                    updated_at: time(get(r, 7)?)?,
                })
            })
            .collect()
    }
}
