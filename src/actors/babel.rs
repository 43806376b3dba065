//! The routing node's shell: the Babel machine in a [`Driver`], and the executors of its
//! effects.
//!
//! ```text
//!   BabelSocket ──receive loop──Input(Received)────────► Driver<BabelMachine>
//!   LinkWatcher ──Input(InterfaceUp / InterfaceDown)──►      │ (stamp → handle → drain)
//!        │ (joins ff02::1:6 when a link comes up)             │
//!        ▼                                                    ├─ Send ──► send loop ──► BabelSocket
//!   BabelSocket                                               ├─ Route ─► RouteExecutor ──batch──► KernelRoutes
//!                                                             │   └─────► RouteSelected hook (CLI; billing later)
//!                                                             ├─ Probe ─► probe loop ──Input(Probed)──► Driver
//!                                                             └─ Limits ► LimitsReport hook (CLI)
//!   Responder (UDP 6697) echoes other nodes' probes
//! ```
//!
//! - The socket executor is two spawned futures: a send loop draining a channel in order (the
//!   driver's deliver closure only enqueues), and a receive loop turning datagrams into
//!   `Received` inputs, one handled before the next is read (a flood queues in the kernel's
//!   bounded socket buffer, not in the driver's mailbox). The socket drops and counts
//!   datagrams whose source is not link-local (RFC 8966 §4), before the machine sees them.
//! - [`RouteExecutor`] is the shell of the pure [`RouteSync`], which decides: it keeps the
//!   latest wanted change per destination and has what has accumulated applied as one batch
//!   over rtnetlink, one batch in flight at a time (changes arriving meanwhile form the next
//!   batch). Refusals are retried with the next batch, and on a back-off timer; nothing
//!   panics. Every few seconds it compares the kernel's routes of ours with what the machine
//!   wants and repairs the difference (the kernel drops routes through an interface that
//!   blinks down, faster than the link watcher may notice). At start it purges routes a
//!   previous run left behind; at [`BabelNode::shutdown`] it removes every route of ours. The
//!   executor spawns the netlink calls, arms the timer, feeds the answers back and logs, a
//!   refusal repeated at every retry once, then at most every 30 s with a count.
//! - [`LinkWatcher`] polls the named interfaces (index, up and running, link-local address)
//!   every second or so and turns changes into `InterfaceDown`/`InterfaceUp` inputs, joining
//!   the multicast group again when a link comes back.
//! - Every route change also goes out as a [`RouteSelected`] through a [`Deliver`] hook, and
//!   every report of what the machine's limits refused as a [`LimitsReport`] through another.
//! - End-to-end probes: a `Probe` effect for a host route goes to the probe loop, which runs
//!   [`prober::probe`] toward the destination's address in a spawned future and gives the
//!   result back to the machine as `Probed` (verifiable metrics). Every node answers probes
//!   with a [`Responder`] on [`prober::PROBE_PORT`]. Which destinations are probed is the machine's
//!   `InUse` set: until traffic counters feed it, the operator names them
//!   ([`BabelNodeConfig::in_use`]).
//!
//! Nothing here awaits another actor: effects are fire-and-forget messages or channel sends,
//! and the kernel's answers come back to the executor as the results of futures it spawned
//! into its own context. Only [`BabelNode::shutdown`], which runs outside every actor, waits.

use super::clock::Clock;
use super::driver::{Deliver, Driver, Input};
use super::log_writer::LogWriter;
use crate::events::kernel::{KernelRoute, RouteAction, RouteOp, RouteTimer};
use crate::events::routing::{
    InterfaceConfig, LimitsReport, ProbeReport, RouteChange, RoutingEffect, RoutingInput, SendTo, Via,
};
use crate::events::Stamp;
use crate::machines::babel::{BabelConfig, BabelMachine, TrustLedger};
use crate::machines::route_sync::RouteSync;
use crate::os::babel_socket::BabelSocket;
use crate::os::interfaces;
use crate::os::prober::{self, ProbePlan, Responder};
use crate::os::routes::{self, KernelRoutes, RouteError};
use crate::os::throttle::Throttle;
use crate::throttled_warn;
use crate::wire::Prefix;
use actix::prelude::*;
use std::net::Ipv6Addr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The selected route to a destination changed: the neighbour that now forwards our bytes to
/// it and the path price that neighbour advertised (what it charges us per byte; `None`:
/// unpriced), or `via: None` when the destination became unreachable.
///
/// This is what billing consumes: a usage link is (neighbour, destination), and this message
/// becomes its `UsageInput::PriceSelected`. Billing is not wired into a live routing node yet,
/// so the node hands these to a [`Deliver`] hook: `lastmile route` prints them and keeps its
/// status file with them; tests observe them there.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct RouteSelected {
    pub prefix: Prefix,
    pub via: Option<Via>,
    pub price_per_byte: Option<u64>,
}

impl From<&RouteChange> for RouteSelected {
    fn from(c: &RouteChange) -> Self {
        RouteSelected { prefix: c.prefix, via: c.via, price_per_byte: c.price_per_byte }
    }
}

/// The kernel operation a route change asks for: replace our route to the destination, or
/// delete it.
pub fn kernel_op(change: &RouteChange) -> RouteOp {
    let dst = change.prefix;
    match change.via {
        Some(v) => RouteOp::Replace(KernelRoute { dst, via: v.next_hop, ifindex: v.ifindex }),
        None => RouteOp::Delete(dst),
    }
}

/// Apply this route change to the kernel (fire and forget).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct ApplyRoute(pub RouteOp);

/// Apply what is pending, then remove every route of ours, and answer with how many the final
/// purge found. Changes arriving afterwards are ignored: the node is stopping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainRoutes(pub oneshot::Sender<Result<usize, RouteError>>);

/// Carries out the route sync's decisions (see the module docs and [`RouteSync`]): spawns
/// the netlink calls it asks for, arms its one timer, feeds the answers back, and logs.
pub struct RouteExecutor {
    kernel: Rc<KernelRoutes>,
    sync: RouteSync,
    clock: Clock,
    /// The drains to answer when the final purge is over.
    drains: Vec<oneshot::Sender<Result<usize, RouteError>>>,
    /// The route sync is polled at the next turn: the changes of one machine step (already in
    /// the mailbox) form one batch.
    scheduled: bool,
    armed: Option<(Stamp, RouteTimer, SpawnHandle)>,
    /// Refusals per destination: a change refused at every retry is reported once, then at
    /// most every 30 s with a count, until it is applied.
    refusals: Throttle<Prefix>,
    /// Other errors that repeat (listing the kernel's routes, every reconcile).
    errors: Throttle,
}

impl RouteExecutor {
    pub fn new(kernel: KernelRoutes, clock: Clock) -> Self {
        RouteExecutor {
            kernel: Rc::new(kernel),
            sync: RouteSync::new(clock.now()),
            clock,
            drains: Vec::new(),
            scheduled: false,
            armed: None,
            refusals: Throttle::default(),
            errors: Throttle::default(),
        }
    }

    /// After every input: re-arm the timer, and poll the route sync at the next turn.
    fn next(&mut self, ctx: &mut Context<Self>) {
        self.rearm(ctx);
        if self.scheduled {
            return;
        }
        self.scheduled = true;
        ctx.run_later(Duration::ZERO, |act, ctx| {
            act.scheduled = false;
            while let Some(action) = act.sync.poll_action() {
                act.carry_out(action, ctx);
            }
            act.rearm(ctx);
        });
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self.sync.poll_timeout();
        if let (Some((at, timer)), Some((armed_at, armed_timer, _))) = (next, &self.armed) {
            if at == *armed_at && timer == *armed_timer {
                return;
            }
        }
        if let Some((_, _, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
        if let Some((at, timer)) = next {
            let handle = ctx.run_later(self.clock.until(at), move |act, ctx| {
                act.armed = None;
                act.sync.handle_timeout(act.clock.now(), timer);
                act.next(ctx);
            });
            self.armed = Some((at, timer, handle));
        }
    }

    fn carry_out(&mut self, action: RouteAction, ctx: &mut Context<Self>) {
        let kernel = Rc::clone(&self.kernel);
        match action {
            RouteAction::Apply(ops) => {
                ctx.spawn(
                    async move { kernel.apply(&ops).await }
                        .into_actor(self)
                        .map(|results, act, ctx| act.applied(results, ctx)),
                );
            }
            RouteAction::List => {
                ctx.spawn(async move { kernel.list_ours().await }.into_actor(self).map(|listed, act, ctx| {
                    match listed {
                        Ok(routes) => {
                            if let Some(n) = act.errors.cleared("list routes") {
                                tracing::info!(unreported = n, "listing our kernel routes works again");
                            }
                            let repairs = act.sync.listed(&routes);
                            if repairs > 0 {
                                tracing::info!(n = repairs, "the kernel's routes differ from ours; repairing");
                            }
                        }
                        Err(e) => {
                            let now = act.clock.now();
                            throttled_warn!(act.errors, "list routes", now, %e, "cannot list our kernel routes");
                            act.sync.list_failed();
                        }
                    }
                    act.next(ctx);
                }));
            }
            RouteAction::PurgeStale => {
                ctx.spawn(async move { kernel.purge_stale().await }.into_actor(self).map(
                    |result, act, ctx| {
                        match result {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(n, "removed routes a previous run left behind"),
                            Err(e) => tracing::warn!(%e, "cannot purge stale routes"),
                        }
                        act.sync.purged();
                        act.next(ctx);
                    },
                ));
            }
            RouteAction::PurgeAll => {
                ctx.spawn(async move { kernel.purge_stale().await }.into_actor(self).map(
                    |result, act, ctx| {
                        for d in act.drains.drain(..) {
                            let _ = d.send(result.clone());
                        }
                        act.sync.purged();
                        act.next(ctx);
                    },
                ));
            }
        }
    }

    fn applied(&mut self, results: Vec<(RouteOp, Result<(), RouteError>)>, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        let answers = results.iter().map(|(op, result)| (*op, routes::answer(result))).collect();
        let outcome = self.sync.applied(now, answers);
        for (op, e) in &outcome.refused {
            throttled_warn!(
                self.refusals,
                op.dst(),
                now,
                %e,
                "route change refused; retried with the next change"
            );
        }
        for op in &outcome.applied {
            if let Some(n) = self.refusals.cleared(op.dst()) {
                tracing::info!(%op, unreported = n, "route change applied after being refused");
            }
        }
        tracing::debug!(stats = ?self.sync.stats(), refused = outcome.refused.len(), "route batch applied");
        self.next(ctx);
    }
}

impl Actor for RouteExecutor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The route sync starts with the purge of what a previous run left behind.
        self.next(ctx);
    }
}

impl Handler<ApplyRoute> for RouteExecutor {
    type Result = ();

    fn handle(&mut self, msg: ApplyRoute, ctx: &mut Context<Self>) {
        self.sync.change(msg.0);
        self.next(ctx);
    }
}

impl Handler<DrainRoutes> for RouteExecutor {
    type Result = ();

    fn handle(&mut self, msg: DrainRoutes, ctx: &mut Context<Self>) {
        self.drains.push(msg.0);
        self.sync.drain();
        self.next(ctx);
    }
}

/// What the send loop is given: a packet, or a marker answered once every packet before it
/// has been handed to the kernel.
enum Outgoing {
    Packet { ifindex: u32, to: SendTo, bytes: Vec<u8> },
    Flushed(oneshot::Sender<()>),
}

async fn send_loop(socket: Arc<BabelSocket>, clock: Clock, mut queue: mpsc::UnboundedReceiver<Outgoing>) {
    // Per interface: a link that stays broken is reported once, then as a count every 30 s,
    // not per Hello; and when it works again.
    let mut broken: Throttle<u32> = Throttle::default();
    while let Some(item) = queue.recv().await {
        let (ifindex, to, bytes) = match item {
            Outgoing::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
            Outgoing::Packet { ifindex, to, bytes } => (ifindex, to, bytes),
        };
        let sent = match to {
            SendTo::Multicast => socket.send_multicast(ifindex, &bytes).await,
            SendTo::Unicast(neighbour) => socket.send_unicast(ifindex, neighbour, &bytes).await,
        };
        match sent {
            Ok(()) => {
                if let Some(unreported) = broken.cleared(ifindex) {
                    tracing::info!(ifindex, unreported, "sending Babel packets works again");
                }
            }
            Err(e) => {
                throttled_warn!(broken, ifindex, clock.now(), ifindex, ?to, %e, "cannot send a Babel packet")
            }
        }
    }
}

/// Turns datagrams into `Received` inputs, one at a time: the next is read only once the
/// driver has handled the previous, so that under a flood the datagrams wait in the kernel's
/// socket buffer (bounded; the excess is dropped there) rather than in the driver's mailbox,
/// which has no bound.
async fn receive_loop(socket: Arc<BabelSocket>, clock: Clock, driver: Addr<Driver<BabelMachine>>) {
    let mut failing: Throttle = Throttle::default();
    loop {
        match socket.recv().await {
            Ok(d) => {
                if let Some(unreported) = failing.cleared("receive") {
                    tracing::info!(unreported, "receiving Babel packets works again");
                }
                let input =
                    Input(RoutingInput::Received { ifindex: d.ifindex, source: d.source, bytes: d.bytes });
                if driver.send(input).await.is_err() {
                    // The driver is gone: the node is stopping.
                    return;
                }
            }
            Err(e) => {
                throttled_warn!(failing, "receive", clock.now(), %e, "receiving Babel packets failed");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One interface the node speaks on, as the watcher last saw it.
struct Watched {
    name: String,
    config: InterfaceConfig,
    /// Up and running with this index and link-local address (as told to the machine).
    up: Option<(u32, Ipv6Addr)>,
}

/// Stop watching links (the node is stopping).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopWatching;

/// Polls the node's interfaces and tells the machine when one comes up or goes down.
pub struct LinkWatcher {
    interfaces: Vec<Watched>,
    socket: Arc<BabelSocket>,
    driver: Addr<Driver<BabelMachine>>,
    every: Duration,
    clock: Clock,
    /// Errors per (interface, what failed), checked every poll: reported once, then as a
    /// count.
    errors: Throttle<(usize, &'static str)>,
}

impl LinkWatcher {
    fn check(&mut self) {
        let at = self.clock.now();
        for (i, w) in self.interfaces.iter_mut().enumerate() {
            let now = match interfaces::link_state(&w.name) {
                Ok(Some(s)) if s.running => s.link_local.map(|ll| (s.ifindex, ll)),
                Ok(_) => None,
                Err(e) => {
                    throttled_warn!(self.errors, (i, "state"), at, interface = %w.name, %e, "cannot read the interface's state");
                    continue;
                }
            };
            if let Some(unreported) = self.errors.cleared((i, "state")) {
                tracing::info!(interface = %w.name, unreported, "the interface's state can be read again");
            }
            if now == w.up {
                continue;
            }
            if let Some((ifindex, _)) = w.up.take() {
                tracing::info!(interface = %w.name, ifindex, "link down");
                self.driver.do_send(Input(RoutingInput::InterfaceDown { ifindex }));
            }
            if let Some((ifindex, link_local)) = now {
                // Joining again is harmless; the kernel forgets memberships of interfaces that
                // went away. If it fails, the next check tries again.
                if let Err(e) = self.socket.join(ifindex) {
                    throttled_warn!(self.errors, (i, "join"), at, interface = %w.name, %e, "cannot join ff02::1:6");
                    continue;
                }
                self.errors.cleared((i, "join"));
                tracing::info!(interface = %w.name, ifindex, %link_local, "link up");
                self.driver.do_send(Input(RoutingInput::InterfaceUp {
                    ifindex,
                    link_local,
                    config: w.config,
                }));
                w.up = now;
            }
        }
    }
}

impl Actor for LinkWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.check();
        ctx.run_interval(self.every, |act, _| act.check());
    }
}

impl Handler<StopWatching> for LinkWatcher {
    type Result = ();

    fn handle(&mut self, _msg: StopWatching, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Runs each requested probe in its own future and gives the result to the machine. Only
/// host routes are probed: the probe goes to the destination's own address.
async fn probe_loop(
    plan: ProbePlan,
    mut requests: mpsc::UnboundedReceiver<Prefix>,
    driver: Addr<Driver<BabelMachine>>,
) {
    while let Some(prefix) = requests.recv().await {
        let host = if prefix.is_ipv4() { 32 } else { 128 };
        if prefix.len() != host {
            tracing::debug!(%prefix, "not a host route: not probed");
            continue;
        }
        let driver = driver.clone();
        actix_rt::spawn(async move {
            match prober::probe(prefix.addr(), plan).await {
                Ok(m) => driver.do_send(Input(RoutingInput::Probed(ProbeReport {
                    prefix,
                    sent: m.sent,
                    received: m.received,
                    rtt_us: m.rtt_us,
                }))),
                Err(e) => tracing::warn!(%prefix, %e, "cannot probe"),
            }
        });
    }
}

/// Answers other nodes' probes; a port already taken is logged, not fatal (routing works
/// without it, other nodes just see this one as lossy).
async fn respond(port: u16) {
    match Responder::bind(port).await {
        Ok(r) => {
            if let Err(e) = r.serve().await {
                tracing::warn!(%e, "probe responder stopped");
            }
        }
        Err(e) => tracing::warn!(%e, port, "cannot answer probes"),
    }
}

/// How a routing node runs.
#[derive(Clone, Debug)]
pub struct BabelNodeConfig {
    pub babel: BabelConfig,
    /// Interfaces by name, each with its configuration.
    pub interfaces: Vec<(String, InterfaceConfig)>,
    /// Prefixes this node announces.
    pub originate: Vec<Prefix>,
    /// UDP port (6696 for Babel).
    pub port: u16,
    /// How often the interfaces' state is read.
    pub link_poll: Duration,
    /// Destinations to probe end to end (the machine's `InUse` set).
    pub in_use: Vec<Prefix>,
    /// How probes are run; the port is also where this node's responder listens (`None`:
    /// neither probes nor a responder).
    pub probes: Option<ProbePlan>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open the Babel socket: {0}")]
    Socket(std::io::Error),
    #[error("{0}")]
    Routes(RouteError),
}

/// What [`BabelNode::shutdown`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The wildcard retraction left on every interface in time.
    pub retracted: bool,
    /// How many routes of ours the final purge removed (`None`: it failed or timed out).
    pub routes_purged: Option<usize>,
    /// Datagrams dropped because their source was not link-local.
    pub dropped_non_link_local: u64,
}

/// A running routing node: the driver and its executors (see the module docs).
pub struct BabelNode {
    driver: Addr<Driver<BabelMachine>>,
    routes: Addr<RouteExecutor>,
    watcher: Addr<LinkWatcher>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    socket: Arc<BabelSocket>,
    receiver: actix_rt::task::JoinHandle<()>,
    sender: actix_rt::task::JoinHandle<()>,
    /// The probe loop and the responder.
    probing: Vec<actix_rt::task::JoinHandle<()>>,
}

impl BabelNode {
    /// Starts the node's actors on the current actix system. Its sockets (UDP and netlink)
    /// belong to the network namespace of the calling thread. `selected` is told of every
    /// change of a selected route, `limits` of what the machine's limits refused (at most every
    /// few seconds, and once more at shutdown).
    pub fn start(
        config: BabelNodeConfig,
        trust: TrustLedger,
        clock: Clock,
        log: Addr<LogWriter>,
        selected: Deliver<RouteSelected>,
        limits: Deliver<LimitsReport>,
    ) -> Result<BabelNode, NodeError> {
        let socket = Arc::new(BabelSocket::bind(config.port).map_err(NodeError::Socket)?);
        let kernel = KernelRoutes::connect().map_err(NodeError::Routes)?;
        let routes = RouteExecutor::new(kernel, clock).start();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let sender = actix_rt::spawn(send_loop(Arc::clone(&socket), clock, queue));

        let to_socket = outgoing.clone();
        let to_kernel = routes.clone();
        let (to_prober, probe_requests) = mpsc::unbounded_channel();
        let deliver: Deliver<RoutingEffect> = Arc::new(move |effect| match effect {
            RoutingEffect::Send { ifindex, to, bytes } => {
                // Fails only once the send loop is gone, i.e. while stopping.
                let _ = to_socket.send(Outgoing::Packet { ifindex, to, bytes });
            }
            RoutingEffect::Route(change) => {
                to_kernel.do_send(ApplyRoute(kernel_op(&change)));
                selected(RouteSelected::from(&change));
            }
            RoutingEffect::Probe { prefix } => {
                // Fails only once the probe loop is gone (no probes configured, or stopping).
                let _ = to_prober.send(prefix);
            }
            RoutingEffect::Limits(report) => limits(report),
        });
        let machine = BabelMachine::new(config.babel, trust, clock.now());
        let driver = Driver::new(machine, clock, log, deliver).start();
        let receiver = actix_rt::spawn(receive_loop(Arc::clone(&socket), clock, driver.clone()));
        let mut probing = Vec::new();
        if let Some(plan) = config.probes {
            probing.push(actix_rt::spawn(probe_loop(plan, probe_requests, driver.clone())));
            probing.push(actix_rt::spawn(respond(plan.port)));
        }
        for prefix in &config.originate {
            driver.do_send(Input(RoutingInput::Originate(*prefix)));
        }
        if !config.in_use.is_empty() {
            driver.do_send(Input(RoutingInput::InUse(config.in_use.clone())));
        }
        let interfaces =
            config.interfaces.into_iter().map(|(name, config)| Watched { name, config, up: None }).collect();
        let watcher = LinkWatcher {
            interfaces,
            socket: Arc::clone(&socket),
            driver: driver.clone(),
            every: config.link_poll,
            clock,
            errors: Throttle::default(),
        }
        .start();
        Ok(BabelNode { driver, routes, watcher, outgoing, socket, receiver, sender, probing })
    }

    /// The driver, to give the machine further inputs (`Originate`, `Withdraw`, `InUse`).
    pub fn driver(&self) -> &Addr<Driver<BabelMachine>> {
        &self.driver
    }

    /// Stops the node: the wildcard retraction goes out on every interface, then every kernel
    /// route of ours is removed. Each of the two waits at most `within`.
    pub async fn shutdown(self, within: Duration) -> ShutdownReport {
        self.watcher.do_send(StopWatching);
        self.receiver.abort();
        for task in &self.probing {
            task.abort();
        }
        // Waiting here is outside every actor. Once the driver has handled Shutdown, its
        // packets are in the send queue and its route removals in the executor's mailbox, so
        // the markers sent next are behind them.
        let handled = tokio::time::timeout(within, self.driver.send(Input(RoutingInput::Shutdown))).await;
        if !matches!(handled, Ok(Ok(()))) {
            tracing::warn!("the routing machine did not take the shutdown in time");
        }
        let (sent, sent_rx) = oneshot::channel();
        let (drained, drained_rx) = oneshot::channel();
        let _ = self.outgoing.send(Outgoing::Flushed(sent));
        self.routes.do_send(DrainRoutes(drained));
        let retracted = matches!(tokio::time::timeout(within, sent_rx).await, Ok(Ok(())));
        let routes_purged = match tokio::time::timeout(within, drained_rx).await {
            Ok(Ok(Ok(n))) => Some(n),
            Ok(Ok(Err(e))) => {
                tracing::warn!(%e, "cannot remove our routes");
                None
            }
            _ => None,
        };
        self.sender.abort();
        ShutdownReport {
            retracted,
            routes_purged,
            dropped_non_link_local: self.socket.dropped_non_link_local(),
        }
    }
}
