//! Cancelling a run between sampler steps. A caller (the studio's worker) runs the
//! generation inside [`cancellable`] with a flag it may set from another thread; every
//! denoising loop on that thread checks it before each step and stops with
//! [`DiffusionError::Cancelled`]. A thread-scoped flag, so that the models and the
//! pipeline between the worker and the loop need no cancellation argument of their own.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{DiffusionError, Result};

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with `flag` as its cancellation flag (the previous one,
/// if any, is restored afterwards, also when `work` panics).
pub fn cancellable<R>(flag: Arc<AtomicBool>, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            FLAG.with(|f| *f.borrow_mut() = previous);
        }
    }
    let _restore = Restore(FLAG.with(|f| f.borrow_mut().replace(flag)));
    work()
}

/// Err([`DiffusionError::Cancelled`]) when this thread's run has been asked to stop.
pub fn check() -> Result<()> {
    let stop = FLAG.with(|f| f.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)));
    if stop {
        Err(DiffusionError::Cancelled)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_seen_inside_its_scope_only() {
        let flag = Arc::new(AtomicBool::new(false));
        assert!(check().is_ok());
        cancellable(flag.clone(), || {
            assert!(check().is_ok());
            flag.store(true, Ordering::Relaxed);
            assert!(matches!(check(), Err(DiffusionError::Cancelled)));
        });
        assert!(check().is_ok(), "the flag is gone after the scope");
        let other = std::thread::spawn(move || cancellable(flag, || check().is_err()));
        assert!(other.join().unwrap());
    }
}
