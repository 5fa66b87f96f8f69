//! A value replaced while the server runs (a configuration reloaded on `SIGHUP`): readers take
//! the current one and keep it for the rest of their request.

use std::sync::{Arc, RwLock};

/// The value in force. A poisoned lock still holds a whole `Arc` (it is only ever swapped),
/// so it is used as is.
#[derive(Debug, Default)]
pub(crate) struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    /// `value` in force.
    pub(crate) fn new(value: T) -> Self {
        Swap(RwLock::new(Arc::new(value)))
    }

    /// The value in force.
    pub(crate) fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `value` in force.
    pub(crate) fn set(&self, value: Arc<T>) {
        match self.0.write() {
            Ok(mut slot) => *slot = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}
