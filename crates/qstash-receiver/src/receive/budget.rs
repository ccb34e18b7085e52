//! The buffer budget: how many body bytes all requests together may have reserved at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default buffer budget, in body limits: 64 bodies of the limit at once (64 MiB with
/// the default 1 MiB limit).
pub const DEFAULT_BUDGET_BODIES: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Budget {
    in_use: AtomicUsize,
}

impl Budget {
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

pub(crate) trait Reserve {
    fn reserve(&self, bytes: usize, cap: usize) -> Option<Permit>;
}

impl Reserve for Arc<Budget> {
    /// Reserves `bytes` if that keeps the total within `cap`.
    fn reserve(&self, bytes: usize, cap: usize) -> Option<Permit> {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= cap)
            })
            .ok()?;
        Some(Permit {
            budget: Arc::clone(self),
            bytes,
        })
    }
}

/// A reservation, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_cap_and_gives_back() {
        let budget = Arc::new(Budget::default());
        let a = budget.reserve(60, 100).unwrap();
        assert!(budget.reserve(41, 100).is_none());
        let b = budget.reserve(40, 100).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        assert!(
            budget.reserve(usize::MAX, usize::MAX).is_none(),
            "no overflow"
        );
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}
