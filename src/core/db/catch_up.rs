//! Keeping up with storage: acknowledged pushes committed (`flush`), and what other tabs (or
//! other databases on the same storage) committed read back from the change log (`catch_up`).

use super::*;

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    /// Commits the acknowledged pushes that are still waiting (see `acks`). Resolves with whether
    /// there were any.
    pub fn flush(&self) -> impl Future<Output = Result<bool>> + '_ {
        self.flush_in(self.turn())
    }

    pub async fn flush_in(&self, turn: Turn) -> Result<bool> {
        let _turn = turn.await;
        self.flush_acks().await
    }

    /// [`Db::flush`] for a caller that holds a turn.
    pub(super) async fn flush_acks(&self) -> Result<bool> {
        if self.acks.borrow().is_empty() {
            return Ok(false);
        }
        self.check_open()?;
        for _ in 0..MAX_ATTEMPTS {
            let acks = std::mem::take(&mut *self.acks.borrow_mut());
            match self.storage.commit(&acks, self.seq.get()).await {
                Ok(Committed::Done(seq)) => {
                    self.seq.set(seq);
                    return Ok(true);
                }
                Ok(Committed::Stale) => {
                    self.restore_acks(acks);
                    self.catch_up_locked().await?;
                }
                Err(e) => {
                    self.restore_acks(acks);
                    return Err(e);
                }
            }
        }
        Err(too_busy())
    }

    /// Puts acks whose commit failed back in front of any acknowledged since.
    pub(super) fn restore_acks(&self, mut acks: Batch) {
        let later = std::mem::take(&mut *self.acks.borrow_mut());
        acks.merge(later);
        *self.acks.borrow_mut() = acks;
    }

    /// Reads what other tabs (or other databases on this storage) committed since this one last
    /// looked, and refreshes exactly those rows and outbox entries. Resolves with the models
    /// whose rows changed.
    pub fn catch_up(&self) -> impl Future<Output = Result<Vec<String>>> + '_ {
        self.catch_up_in(self.turn())
    }

    pub async fn catch_up_in(&self, turn: Turn) -> Result<Vec<String>> {
        let _turn = turn.await;
        self.check_open()?;
        self.catch_up_locked().await
    }

    /// [`Db::catch_up`] for a caller that holds a turn.
    pub(super) async fn catch_up_locked(&self) -> Result<Vec<String>> {
        // A load still reading may hold rows older than the changes: let it finish first.
        let _loading = self.loading.lock().await;
        let changes = self.storage.changes_since(self.seq.get()).await?;
        let mut changed: Vec<String> = Vec::new();
        if !changes.complete {
            // Too far behind (or storage replaced): read everything again.
            let (entries, seq) = self.storage.load_outbox().await?;
            let entries = self.keep_readable(entries);
            let mut replica = self.replica.borrow_mut();
            let models: Vec<String> = replica.schema.models.keys().cloned().collect();
            for m in &models {
                replica.note_changed_elsewhere(m, None);
            }
            replica.unload_all();
            replica.set_outbox(entries);
            changed.extend(replica.schema.models.keys().cloned());
            drop(replica);
            self.seq.set(seq);
        } else {
            for (store, keys) in &changes.stores {
                if store == OUTBOX_STORE {
                    match keys {
                        None => {
                            let (entries, _) = self.storage.load_outbox().await?;
                            let entries = self.keep_readable(entries);
                            self.replica.borrow_mut().set_outbox(entries);
                        }
                        Some(ids) => {
                            let ids: Vec<String> = ids
                                .iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect();
                            let entries = self.storage.load_outbox_entries(&ids).await?;
                            let entries = self.keep_readable(entries);
                            self.replica.borrow_mut().refresh_outbox(&ids, entries);
                        }
                    }
                    continue;
                }
                let Ok(def) = self.replica.borrow().schema.model(store).cloned() else {
                    continue; // a model this database does not know
                };
                changed.push(def.name.clone());
                // A pull out now must not undo these rows with an answer from before them.
                let noted = keys
                    .as_ref()
                    .map(|ks| ks.iter().filter_map(Key::from_value).collect());
                self.replica
                    .borrow_mut()
                    .note_changed_elsewhere(&def.name, noted);
                if !self.replica.borrow().is_loaded(store) {
                    continue; // the next read goes to storage anyway
                }
                match keys {
                    None => self.replica.borrow_mut().unload(store),
                    Some(keys) => {
                        let mut keys: Vec<Key> = keys.iter().filter_map(Key::from_value).collect();
                        keys.sort();
                        keys.dedup();
                        let rows = self
                            .storage
                            .load_matching(&def, &def.primary_key, &keys)
                            .await?;
                        let rows = self.keep_readable(rows);
                        self.replica.borrow_mut().refresh(store, &keys, rows)?;
                    }
                }
            }
            self.seq.set(changes.seq);
        }
        // This tab's own acknowledged pushes are not in storage's view yet: keep them applied.
        let acks = self.acks.borrow().clone();
        if !acks.is_empty() {
            self.replica.borrow_mut().apply(&acks);
        }
        self.notify_rows(&changed);
        Ok(changed)
    }
}
