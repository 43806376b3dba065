//! The route sync, step by step: every action it asks for, every answer fed back.

use super::*;
use crate::events::kernel::KernelAnswer::{Done, NotFound, Refused};
use core::net::IpAddr;

fn at(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("ADDR/LEN");
    Prefix::new(a.parse().expect("address"), l.parse().expect("length")).expect("prefix")
}

fn route(dst: &str, via: &str) -> KernelRoute {
    let via: IpAddr = via.parse().expect("address");
    KernelRoute { dst: p(dst), via, ifindex: 7 }
}

fn replace(dst: &str, via: &str) -> RouteOp {
    RouteOp::Replace(route(dst, via))
}

fn delete(dst: &str) -> RouteOp {
    RouteOp::Delete(p(dst))
}

/// Destinations in prefix order (a batch's order).
const A: &str = "2001:db8:a::/48";
const B: &str = "2001:db8:b::/48";
const C: &str = "2001:db8:c::/48";
const D: &str = "2001:db8:d::/48";

/// A route sync at time 0 whose start purge is done.
fn started() -> RouteSync {
    let mut s = RouteSync::new(at(0));
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeStale));
    assert_eq!(s.poll_action(), None);
    s.purged();
    assert_eq!(s.poll_action(), None, "nothing to do yet");
    s
}

/// The batch the route sync asks for now.
fn batch(s: &mut RouteSync) -> Vec<RouteOp> {
    match s.poll_action() {
        Some(RouteAction::Apply(ops)) => ops,
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn answered(ops: &[RouteOp], answer: KernelAnswer) -> Vec<(RouteOp, KernelAnswer)> {
    ops.iter().map(|op| (*op, answer.clone())).collect()
}

/// Answers reconciles with an empty kernel (no repairs for what is refused: it is left alone)
/// until the earliest deadline is the retry's, and returns that.
fn next_retry(s: &mut RouteSync) -> Stamp {
    loop {
        match s.poll_timeout() {
            Some((t, RouteTimer::Retry)) => return t,
            Some((t, RouteTimer::Reconcile)) => {
                s.handle_timeout(t, RouteTimer::Reconcile);
                assert_eq!(s.poll_action(), Some(RouteAction::List));
                assert_eq!(s.listed(&[]), 0, "a refused change is not repaired");
                assert_eq!(s.poll_action(), None);
            }
            None => panic!("no retry armed"),
        }
    }
}

#[test]
fn nothing_happens_before_the_start_purge_completes() {
    let mut s = RouteSync::new(at(0));
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeStale));
    s.change(replace(A, "fe80::1"));
    assert_eq!(s.poll_action(), None, "changes wait for the purge");
    assert_eq!(s.poll_timeout(), Some((at(5_000), RouteTimer::Reconcile)));
    s.handle_timeout(at(5_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), None, "no reconcile during the purge");
    s.change(replace(B, "fe80::1"));
    s.purged();
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    assert_eq!(s.poll_action(), None);
}

#[test]
fn changes_during_a_batch_form_the_next_batch_and_the_latest_per_destination_wins() {
    let mut s = started();
    s.change(replace(B, "fe80::1"));
    s.change(replace(A, "fe80::1"));
    s.change(replace(A, "fe80::2"));
    let first = batch(&mut s);
    assert_eq!(first, vec![replace(A, "fe80::2"), replace(B, "fe80::1")]);
    // In flight: what arrives now waits, and forms the next batch.
    s.change(replace(C, "fe80::1"));
    s.change(delete(B));
    s.change(replace(C, "fe80::3"));
    assert_eq!(s.poll_action(), None, "one batch in flight at a time");
    let outcome = s.applied(at(10), answered(&first, Done));
    assert_eq!(outcome, BatchOutcome { applied: first, refused: vec![] });
    assert_eq!(batch(&mut s), vec![delete(B), replace(C, "fe80::3")]);
    assert_eq!(s.poll_action(), None);
    assert_eq!(s.stats(), RouteStats { batches: 2, applied: 2, failed: 0 });
    assert_eq!(s.wanted(&p(A)), Some(&route(A, "fe80::2")));
    assert_eq!(s.wanted(&p(B)), None, "deleted");
}

#[test]
fn a_delete_of_a_route_already_gone_counts_as_applied() {
    let mut s = started();
    s.change(delete(A));
    s.change(replace(B, "fe80::1"));
    let ops = batch(&mut s);
    let outcome = s.applied(at(10), answered(&ops, NotFound));
    // The delete is what was wanted; a replace the kernel knows nothing of is refused.
    assert_eq!(outcome.applied, vec![delete(A)]);
    assert_eq!(outcome.refused, vec![(replace(B, "fe80::1"), "the kernel has no such route".to_string())]);
    assert_eq!(s.stats(), RouteStats { batches: 1, applied: 1, failed: 1 });
    s.change(replace(C, "fe80::1"));
    assert_eq!(
        batch(&mut s),
        vec![replace(B, "fe80::1"), replace(C, "fe80::1")],
        "only the replace goes again"
    );
}

#[test]
fn refused_changes_go_again_with_the_next_batch() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    let outcome = s.applied(at(10), answered(&ops, Refused("interface down".into())));
    assert_eq!(outcome.refused, vec![(replace(A, "fe80::1"), "interface down".to_string())]);
    assert_eq!(s.poll_action(), None, "not before the next change or the retry");
    s.change(replace(B, "fe80::1"));
    let again = batch(&mut s);
    assert_eq!(again, vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    s.applied(at(20), answered(&again, Done));
    s.change(replace(C, "fe80::1"));
    assert_eq!(batch(&mut s), vec![replace(C, "fe80::1")], "applied at last: not again");
    assert_eq!(s.stats(), RouteStats { batches: 3, applied: 2, failed: 1 });
}

#[test]
fn refused_changes_are_retried_on_a_back_off_that_doubles_to_30_s_and_resets() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let mut ops = batch(&mut s);
    let mut now = at(100);
    let mut waits = Vec::new();
    for _ in 0..7 {
        s.applied(now, answered(&ops, Refused("no".into())));
        assert_eq!(s.poll_action(), None);
        let due = next_retry(&mut s);
        waits.push(due.ms_since(now));
        now = due;
        s.handle_timeout(now, RouteTimer::Retry);
        ops = batch(&mut s);
        assert_eq!(ops, vec![replace(A, "fe80::1")]);
    }
    assert_eq!(waits, vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    // Applied at last: no retry armed, and the next refusal waits the first wait again.
    s.applied(now, answered(&ops, Done));
    assert_eq!(s.poll_timeout().map(|(_, t)| t), Some(RouteTimer::Reconcile));
    s.change(replace(B, "fe80::1"));
    let ops = batch(&mut s);
    let later = now.plus_ms(50);
    s.applied(later, answered(&ops, Refused("no".into())));
    assert_eq!(next_retry(&mut s), later.plus_ms(1_000));
}

#[test]
fn a_retry_that_fires_during_a_batch_goes_out_after_it() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.applied(at(0), answered(&ops, Refused("no".into())));
    s.change(replace(B, "fe80::1"));
    // The retry goes with B's batch, and its timer fires while that batch is in flight.
    let with_b = batch(&mut s);
    assert_eq!(with_b, vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    s.handle_timeout(at(1_000), RouteTimer::Retry);
    assert_eq!(s.poll_action(), None);
    s.applied(at(1_010), vec![(replace(A, "fe80::1"), Refused("no".into())), (replace(B, "fe80::1"), Done)]);
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::1")], "the retry was due: it goes at once");
}

#[test]
fn a_change_refused_while_a_newer_one_waits_is_dropped_for_it() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.change(replace(A, "fe80::2"));
    s.applied(at(10), answered(&ops, Refused("no".into())));
    assert_eq!(s.poll_timeout(), Some((at(5_000), RouteTimer::Reconcile)), "nothing to retry: no timer");
    let newer = batch(&mut s);
    assert_eq!(newer, vec![replace(A, "fe80::2")]);
    s.applied(at(20), answered(&newer, Done));
    assert_eq!(s.poll_action(), None);
    assert_eq!(s.poll_timeout(), Some((at(5_000), RouteTimer::Reconcile)));
}

#[test]
fn a_newer_change_replaces_a_refused_one() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.applied(at(10), answered(&ops, Refused("no".into())));
    s.change(replace(A, "fe80::2"));
    let newer = batch(&mut s);
    assert_eq!(newer, vec![replace(A, "fe80::2")], "the refused change is not sent as well");
    // A change refused while a newer one to its destination waits is dropped for it.
    s.change(replace(A, "fe80::3"));
    s.applied(at(20), answered(&newer, Refused("no".into())));
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::3")]);
    s.applied(at(30), vec![(replace(A, "fe80::3"), Done)]);
    assert_eq!(s.poll_action(), None);
    assert_eq!(s.poll_timeout().map(|(_, t)| t), Some(RouteTimer::Retry), "armed by the first refusal");
    s.handle_timeout(at(1_010), RouteTimer::Retry);
    assert_eq!(s.poll_action(), None, "nothing refused is left to retry");
}

#[test]
fn reconcile_repairs_missing_different_and_extra_routes() {
    let mut s = started();
    for op in [replace(A, "fe80::1"), replace(B, "fe80::1"), replace(C, "fe80::1")] {
        s.change(op);
    }
    let ops = batch(&mut s);
    s.applied(at(10), answered(&ops, Done));
    assert_eq!(s.poll_timeout(), Some((at(5_000), RouteTimer::Reconcile)));
    s.handle_timeout(at(5_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), Some(RouteAction::List));
    assert_eq!(s.poll_timeout(), Some((at(10_000), RouteTimer::Reconcile)), "every 5 s");
    // A is as wanted, B has another next hop, C is missing, D is nobody's.
    let kernel = [route(A, "fe80::1"), route(B, "fe80::9"), route(D, "fe80::1")];
    assert_eq!(s.listed(&kernel), 3);
    assert_eq!(batch(&mut s), vec![replace(B, "fe80::1"), replace(C, "fe80::1"), delete(D)]);
}

#[test]
fn reconcile_leaves_destinations_with_a_change_waiting_or_refused_alone() {
    let mut s = started();
    for op in [replace(A, "fe80::1"), replace(B, "fe80::1")] {
        s.change(op);
    }
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    s.applied(at(10), vec![(replace(A, "fe80::1"), Done), (replace(B, "fe80::1"), Refused("no".into()))]);
    // B's refused change awaits its retry: the reconcile does not send it early.
    s.handle_timeout(at(5_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), Some(RouteAction::List));
    assert_eq!(s.listed(&[route(A, "fe80::1")]), 0);
    assert_eq!(s.poll_action(), None);
    // A change to C arrives while the kernel is being listed; the kernel still has C's old
    // route and lacks A: only A is repaired, C's change goes as it was asked for.
    s.handle_timeout(at(10_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), Some(RouteAction::List));
    s.change(delete(C));
    assert_eq!(s.listed(&[route(C, "fe80::1")]), 1);
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::1"), replace(B, "fe80::1"), delete(C)]);
}

#[test]
fn reconcile_is_skipped_while_anything_is_in_flight_or_changes_wait() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    // Waiting for the next poll.
    s.handle_timeout(at(5_000), RouteTimer::Reconcile);
    let ops = batch(&mut s);
    assert_eq!(s.poll_action(), None, "no list while changes waited");
    // A batch in flight.
    s.handle_timeout(at(10_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), None, "no list while a batch is in flight");
    s.applied(at(10_010), answered(&ops, Refused("no".into())));
    // A retry due.
    s.handle_timeout(at(11_000), RouteTimer::Retry);
    s.handle_timeout(at(15_000), RouteTimer::Reconcile);
    let retry = batch(&mut s);
    assert_eq!(retry, vec![replace(A, "fe80::1")]);
    assert_eq!(s.poll_action(), None, "no list while a retry was due");
    s.applied(at(15_010), answered(&retry, Done));
    // A list in flight.
    s.handle_timeout(at(20_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), Some(RouteAction::List));
    s.handle_timeout(at(25_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), None, "one list at a time");
    s.list_failed();
    s.handle_timeout(at(30_000), RouteTimer::Reconcile);
    assert_eq!(s.poll_action(), Some(RouteAction::List), "and again once it is answered");
}

#[test]
fn drain_applies_pending_changes_without_waiting_for_refused_ones_then_purges() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.applied(at(10), answered(&ops, Refused("no".into())));
    s.change(replace(B, "fe80::1"));
    s.drain();
    // What waits goes first (the refused change with it, as with any batch).
    let last = batch(&mut s);
    assert_eq!(last, vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    assert_eq!(s.poll_action(), None, "the purge waits for the batch");
    assert!(!s.stopped());
    s.applied(at(20), vec![(replace(A, "fe80::1"), Refused("no".into())), (replace(B, "fe80::1"), Done)]);
    // Refused again: not waited for.
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeAll));
    assert!(s.stopped());
    assert_eq!(s.poll_timeout(), None, "no retry, no reconcile");
    s.change(replace(C, "fe80::1"));
    s.purged();
    assert_eq!(s.poll_action(), None, "changes after the drain are ignored");
    assert_eq!(s.wanted(&p(C)), None);
}

#[test]
fn drain_with_only_refused_changes_purges_at_once() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.applied(at(10), answered(&ops, Refused("no".into())));
    s.drain();
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeAll));
    // A drain asked for during the purge is answered by it; one asked for afterwards purges
    // again.
    s.drain();
    s.purged();
    assert_eq!(s.poll_action(), None);
    s.drain();
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeAll));
    s.purged();
    assert_eq!(s.poll_action(), None);
}

#[test]
fn drain_during_a_batch_does_not_wait_for_a_retry_due_meanwhile() {
    let mut s = started();
    s.change(replace(A, "fe80::1"));
    let ops = batch(&mut s);
    s.applied(at(10), answered(&ops, Refused("no".into())));
    s.change(replace(B, "fe80::1"));
    assert_eq!(batch(&mut s), vec![replace(A, "fe80::1"), replace(B, "fe80::1")]);
    // In flight: the retry timer fires, then the drain is asked for.
    s.handle_timeout(at(1_010), RouteTimer::Retry);
    s.drain();
    s.applied(at(1_020), vec![(replace(A, "fe80::1"), Refused("no".into())), (replace(B, "fe80::1"), Done)]);
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeAll), "the refused change is not retried first");
}

#[test]
fn drain_during_the_start_purge_waits_for_it() {
    let mut s = RouteSync::new(at(0));
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeStale));
    s.drain();
    assert_eq!(s.poll_action(), None);
    s.purged();
    assert_eq!(s.poll_action(), Some(RouteAction::PurgeAll));
}
