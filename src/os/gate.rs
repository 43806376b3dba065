//! Persist, then send: effects held until the log is durable up to the event that justifies
//! them (raft-rs `Ready::persisted_messages`).

use crate::events::Seq;
use std::collections::VecDeque;

/// Effects waiting for durability, in the order they were held. Holding is always at a seq
/// no lower than any held before (the log assigns seqs in order), so release is a prefix.
#[derive(Debug)]
pub struct Gate<T> {
    held: VecDeque<(Seq, T)>,
    durable: Seq,
}

impl<T> Default for Gate<T> {
    fn default() -> Self {
        Self { held: VecDeque::new(), durable: Seq::NONE }
    }
}

impl<T> Gate<T> {
    pub fn new(durable: Seq) -> Self {
        Self { held: VecDeque::new(), durable }
    }

    /// Holds `item` until `seq` is durable; the next [`Self::release`] returns it if it already
    /// is (after everything held before it: release keeps the order).
    pub fn hold(&mut self, seq: Seq, item: T) {
        debug_assert!(self.held.back().is_none_or(|(s, _)| *s <= seq), "held out of order");
        self.held.push_back((seq, item));
    }

    /// Records that everything up to `durable` is on flash and returns what that releases, in
    /// the order it was held.
    pub fn release(&mut self, durable: Seq) -> Vec<T> {
        self.durable = self.durable.max(durable);
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(s, _)| *s <= self.durable) {
            if let Some((_, item)) = self.held.pop_front() {
                out.push(item);
            }
        }
        out
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_before_its_seq_is_durable() {
        let mut gate = Gate::new(Seq(2));
        gate.hold(Seq(2), "already durable");
        assert_eq!(gate.release(Seq(0)), vec!["already durable"], "durable at creation");
        gate.hold(Seq(3), "a");
        gate.hold(Seq(5), "b");
        gate.hold(Seq(5), "c");
        assert_eq!(gate.release(Seq(4)), vec!["a"]);
        assert_eq!(gate.held(), 2);
        assert_eq!(gate.release(Seq(3)), Vec::<&str>::new(), "durability never goes back");
        assert_eq!(gate.release(Seq(9)), vec!["b", "c"]);
        gate.hold(Seq(7), "late");
        assert_eq!(gate.release(Seq(7)), vec!["late"]);
    }
}
