//! The one way this crate locks a `std` mutex.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a thread panicked while holding it.
///
/// Every critical section here leaves its data whole between statements (a room, a
/// queue, a user's socket count), so a poisoned lock is still sound to use. Refusing
/// it would turn one panic into a panic of every later caller, and inside a `Drop`
/// that runs while unwinding (a socket's slot given back), into an abort of the
/// whole server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let shared = Arc::new(Mutex::new(1));
        let poisoner = Arc::clone(&shared);
        let panicked = std::thread::spawn(move || {
            let _held = poisoner.lock().unwrap();
            panic!("while holding the lock");
        })
        .join();
        assert!(panicked.is_err() && shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }
}
