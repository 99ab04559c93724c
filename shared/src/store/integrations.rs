//! Integrations: each merchant's settings.

use super::{Cond, Item, Store, StoreError, from_doc, to_doc};
use crate::settings::{IntegrationSettings, InvalidSettings};
use async_trait::async_trait;

const PK: &str = "INTEGRATIONS";

/// Why saving settings failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveSettingsError {
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The integrations' settings.
#[async_trait]
pub trait Integrations: Send + Sync {
    /// Validates and saves an integration's settings.
    async fn put_integration(
        &self,
        settings: &IntegrationSettings,
    ) -> Result<(), SaveSettingsError>;

    /// One integration's settings.
    async fn get_integration(&self, id: &str) -> Result<Option<IntegrationSettings>, StoreError>;

    /// Every integration, by id.
    async fn list_integrations(&self) -> Result<Vec<IntegrationSettings>, StoreError>;

    /// Disables an integration; `false` when there is none with this id.
    async fn disable_integration(&self, id: &str) -> Result<bool, SaveSettingsError> {
        let Some(mut settings) = self.get_integration(id).await? else {
            return Ok(false);
        };
        settings.enabled = false;
        self.put_integration(&settings).await?;
        Ok(true)
    }
}

#[async_trait]
impl Integrations for Store {
    async fn put_integration(
        &self,
        settings: &IntegrationSettings,
    ) -> Result<(), SaveSettingsError> {
        settings.validate()?;
        let item = Item {
            pk: PK.into(),
            sk: settings.id.clone(),
            doc: to_doc(settings)?,
            state: Some(
                if settings.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
                .into(),
            ),
            ..Item::default()
        };
        self.table.put(item, Cond::Always, self.now_s()).await?;
        Ok(())
    }

    async fn get_integration(&self, id: &str) -> Result<Option<IntegrationSettings>, StoreError> {
        match self.table.get(PK, id, self.now_s()).await? {
            Some(item) => from_doc(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn list_integrations(&self) -> Result<Vec<IntegrationSettings>, StoreError> {
        self.table
            .query(PK, "", None, self.now_s())
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }
}
