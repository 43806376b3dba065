//! The route sync's vocabulary ([`crate::machines::route_sync::RouteSync`], which keeps the
//! kernel's main table in line with the routes the routing machine selected): our routes
//! ([`KernelRoute`]), changes to them ([`RouteOp`]), what the kernel answered to a change
//! ([`KernelAnswer`]), what the route sync asks the kernel adapter (`os::routes`) to do
//! ([`RouteAction`]) and its deadlines ([`RouteTimer`]).

use crate::wire::Prefix;
use core::net::IpAddr;
use std::fmt;

/// A route of ours: packets to `dst` go to `via` on interface `ifindex`. `via` is usually the
/// neighbour's link-local address; an IPv4 `dst` may have an IPv6 `via`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelRoute {
    pub dst: Prefix,
    pub via: IpAddr,
    pub ifindex: u32,
}

impl fmt::Display for KernelRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {} dev #{}", self.dst, self.via, self.ifindex)
    }
}

/// One change to the kernel's main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOp {
    /// Create the route to its destination, or replace ours to it.
    Replace(KernelRoute),
    /// Remove our route to this destination.
    Delete(Prefix),
}

impl RouteOp {
    /// The destination this change is about.
    pub fn dst(&self) -> Prefix {
        match self {
            RouteOp::Replace(r) => r.dst,
            RouteOp::Delete(d) => *d,
        }
    }
}

impl fmt::Display for RouteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteOp::Replace(r) => write!(f, "replace {r}"),
            RouteOp::Delete(d) => write!(f, "delete {d}"),
        }
    }
}

/// What the kernel answered to one [`RouteOp`], as the adapter reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelAnswer {
    /// Done as asked.
    Done,
    /// The kernel has no such route of ours (`ESRCH`).
    NotFound,
    /// Refused (or never carried out), in the adapter's words: what, why, and the errno.
    Refused(String),
}

/// What the route sync asks of the kernel adapter. Each is answered through the route sync's
/// matching method, one at a time: nothing else is asked until the answer is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Carry out these changes in order, each whatever became of the ones before it, and
    /// answer with every change and its [`KernelAnswer`] (`RouteSync::applied`).
    Apply(Vec<RouteOp>),
    /// List our routes in the main table (`RouteSync::listed`, or `RouteSync::list_failed`).
    List,
    /// At start: remove every route of ours, which a previous run left behind
    /// (`RouteSync::purged`).
    PurgeStale,
    /// At shutdown, once the changes asked for were applied: remove every route of ours, then
    /// answer whoever asked for the drain (`RouteSync::purged`).
    PurgeAll,
}

/// The route sync's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteTimer {
    /// Refused changes go again (back-off).
    Retry,
    /// Compare the kernel's routes of ours with the wanted ones.
    Reconcile,
}
