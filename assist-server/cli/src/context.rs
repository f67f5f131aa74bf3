//! What the commands share: the model store and the database, opened as
//! configured.

use anyhow::Context;
use assist_models::store::{ModelStore, ProgressMode, StoreOptions};
use assist_server::config::Config;
use assist_server::db::Db;

/// The model store as configured, with progress bars on a terminal.
pub fn model_store(config: &Config) -> anyhow::Result<ModelStore> {
    let registered = config.models.registered().map_err(anyhow::Error::msg)?;
    Ok(ModelStore::new(
        &config.models.model_dir,
        StoreOptions {
            python: config.models.python.clone(),
            progress: ProgressMode::Auto,
            registered,
        },
    )?)
}

pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.storage.effective_database_url();
    let db = Db::open(&url, 2).await.with_context(|| {
        format!(
            "cannot open database {}",
            assist_server::config::redact_url(&url)
        )
    })?;
    Ok(
        db.with_secret_key(assist_server::secrets::SecretKey::from_config(
            &config.storage,
        )?),
    )
}
