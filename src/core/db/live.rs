//! Live queries of a database (see [`crate::core::live`]): opened and closed by the caller, brought
//! up to date with [`Db::live_refresh`] after changes.

use super::*;

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    /// Opens live query `id` on `model` (an invalid query is refused here). Its first answer
    /// comes with the next [`Db::live_refresh`].
    pub fn live_add(&self, id: u32, model: &str, query: Option<&Value>) -> Result<()> {
        if self.closing.get() {
            return Err(Error::Closed);
        }
        let sel = Select::parse(&self.replica.borrow().schema, model, query)?;
        self.live.borrow_mut().add(id, sel);
        Ok(())
    }

    pub fn live_remove(&self, id: u32) {
        self.live.borrow_mut().remove(id);
    }

    /// Whether a live query has something to deliver: a change since they last looked, or a
    /// query without a first answer.
    pub fn live_due(&self) -> bool {
        let live = self.live.borrow();
        !live.is_empty() && (live.has_new() || !self.replica.borrow().touched_is_empty())
    }

    /// Brings every live query up to date (loading the models they read first) and returns the
    /// answers that changed, as JSON text, or the error a query gave.
    pub async fn live_refresh(&self) -> Vec<(u32, Result<String>)> {
        let models = self.live.borrow().models();
        let loaded = async {
            self.ready().await?;
            self.ensure_loaded(&models).await
        };
        if let Err(e) = loaded.await {
            return self.live.borrow_mut().fail(e);
        }
        let touched = self.replica.borrow_mut().take_touched();
        let replica = self.replica.borrow();
        self.live.borrow_mut().refresh(&replica, &touched)
    }
}
