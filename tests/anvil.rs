//! Payments on a real chain: three nodes A → B → C, each a real `BillingMachine` whose events
//! go to its own data directory through `os::journal::Journal`, and whose chain commands are
//! carried out by `os::chain::alloy::AlloyChain` against anvil on 127.0.0.1.
//!
//! Traffic flows A → B → C towards C's prefix. C charges 2 per byte and advertises 2 to B; B
//! charges 3 and advertises 5 to A. So A pays B 5 per byte it sends, B pays C 2 per byte it
//! forwards; 1% of A's bytes are lost before B counts them, which B keeps as A's credit.
//!
//! Each node is driven by a small loop here instead of the actor system, so time is virtual and
//! the crash point exact: the loop plays the driver and the log writer (stamp → `handle` →
//! events to the journal, `WhenDurable` chain commands held by the journal until flushed, the
//! rest executed at once, every answer fed back as an input). One anvil block is mined per
//! second of virtual time; payments need 2 confirmations.
//!
//! Asserted, per run: every node's ledger (paid, received) equals its balance change on chain
//! to the base unit (native: gas counted from the receipts); each node sent exactly as many
//! transactions as payments it confirmed; the ledger recovered from the data directory equals
//! the live one. A crash after `PaymentSigned` is durable and before the `Send` is executed is
//! recovered from the log, and the payment lands exactly once. A payer that quotes less than
//! its neighbour advertised leaves a debt in the payee's log; those logs are kept for
//! `replay dispute` at the path the test prints.
//!
//! Needs anvil and the test token's bytecode in `.tools/` (`scripts/setup.sh`); without them the
//! test fails, naming the script.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::eips::BlockNumberOrTag;
use alloy::network::{Ethereum, TxSignerSync};
use alloy::primitives::{hex, keccak256, Bytes, TxKind, B256, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use lastmile::events::billing::{BillingEffect, BillingEvent, BillingInput, OperatorCommand, Thresholds};
use lastmile::events::chain::{Address, Amount, Asset, ChainCommand, ChainObservation, PaymentId, TxHash};
use lastmile::events::usage::{CounterSample, Link, NeighbourId};
use lastmile::events::{Event, Machine, Release, Stamp};
use lastmile::machines::billing::{BillingConfig, BillingMachine};
use lastmile::machines::usage::UsageConfig;
use lastmile::os::chain::alloy::{AlloyChain, AlloyConfig};
use lastmile::os::flash::{self, FlashConfig};
use lastmile::os::journal::{Journal, JournalConfig, Source, SourceId};
use lastmile::sim::drive;

/// The billing machine is the one source of events in this harness.
const BILLING: Source = Source { id: SourceId(1), epoch: 0 };
use lastmile::os::keyfile::{self, PaymentKey};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

alloy::sol! {
    interface Token {
        function balanceOf(address who) external view returns (uint256);
    }
}

/// anvil's first dev account (well known, test only): funds the nodes and deploys the token.
const FUNDER_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// C's prefix, as each node interns it.
const DEST: u32 = 7;
const BYTES_PER_ROUND: u64 = 10_000;
/// B counts 99% of what A sent.
const RX_PER_ROUND: u64 = 9_900;
const ROUNDS: u64 = 3;
const CONFIRMATIONS: u64 = 2;

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools")
}

fn need(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh (it installs anvil and builds the test token)",
        path.display()
    );
    path.to_path_buf()
}

/// anvil on a free loopback port, killed by pid when dropped (also when the test fails). It
/// runs under `timeout`, so it dies within 10 minutes even if this process is killed.
struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    fn start() -> Anvil {
        let anvil = need(&tools().join("node_modules/.bin/anvil"));
        for _ in 0..5 {
            let port =
                TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let mut child = Command::new("timeout")
                .args(["-k", "5", "600"])
                .arg(&anvil)
                .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--no-mining", "--quiet"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("timeout(1) and anvil start");
            let url = format!("http://127.0.0.1:{port}");
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Anvil { child, url };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken in the meantime: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("anvil did not start listening on 127.0.0.1");
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // TERM to `timeout`, which passes it on to anvil and exits when anvil has.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test asks of the chain beyond the adapter: mining, balances, receipts.
struct Chain {
    provider: RootProvider<Ethereum>,
    chain_id: u64,
    asset: Asset,
}

impl Chain {
    async fn mine(&self) {
        let _: serde_json::Value = self.provider.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
    }

    async fn head(&self) -> u64 {
        self.provider.get_block_number().await.expect("head")
    }

    /// The balance of the settlement asset.
    async fn balance(&self, who: Address) -> i128 {
        let who = alloy::primitives::Address::from(who.0);
        let value = match self.asset {
            Asset::Native => self.provider.get_balance(who).await.expect("balance"),
            Asset::Erc20(token) => {
                let call = Token::balanceOfCall { who }.abi_encode();
                let req = alloy::rpc::types::TransactionRequest::default()
                    .to(alloy::primitives::Address::from(token.0))
                    .input(Bytes::from(call).into());
                let out = self.provider.call(req).await.expect("balanceOf");
                U256::from_be_slice(&out)
            }
        };
        i128::try_from(value).expect("test balances fit in i128")
    }

    /// Gas used and wei spent on it by one transaction.
    async fn gas(&self, tx: TxHash) -> (u64, u128) {
        let r = self.provider.get_transaction_receipt(B256::from(tx.0)).await.expect("rpc").expect("mined");
        (r.gas_used, u128::from(r.gas_used) * r.effective_gas_price)
    }

    /// Transactions sent from `who` in blocks `from..=to`.
    async fn sent_by(&self, who: Address, from: u64, to: u64) -> u64 {
        let who = alloy::primitives::Address::from(who.0);
        let mut n = 0;
        for b in from..=to {
            let block = self
                .provider
                .get_block_by_number(BlockNumberOrTag::Number(b))
                .full()
                .await
                .expect("rpc")
                .expect("block");
            let txs = block.transactions.as_transactions().expect("full");
            n += txs.iter().filter(|t| t.inner.signer() == who).count() as u64;
        }
        n
    }

    /// Signs and sends a transaction from `signer`; returns its hash.
    async fn submit(
        &self,
        signer: &PrivateKeySigner,
        nonce: u64,
        to: TxKind,
        value: U256,
        input: Vec<u8>,
    ) -> B256 {
        let base = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .expect("rpc")
            .expect("latest")
            .header
            .base_fee_per_gas
            .expect("anvil has EIP-1559");
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: 3_000_000,
            max_fee_per_gas: u128::from(base) * 2 + 1_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        let sig = signer.sign_transaction_sync(&mut tx).expect("sign");
        let env = TxEnvelope::Eip1559(tx.into_signed(sig));
        let hash = *env.tx_hash();
        let _pending = self.provider.send_raw_transaction(&env.encoded_2718()).await.expect("accepted");
        hash
    }
}

/// One node's static description: its name, neighbours and prices.
struct Spec {
    name: &'static str,
    /// Inputs given at every start (configuration; idempotent for the machine).
    setup: Vec<BillingInput>,
}

/// A running node: the machine, its journal, and the chain adapter.
struct Live {
    machine: BillingMachine,
    journal: Journal<ChainCommand>,
    boot: u32,
    tick_ms: u64,
}

struct Node {
    spec: Spec,
    dir: PathBuf,
    chain: AlloyChain,
    config: BillingConfig,
    live: Option<Live>,
    /// Cumulative counters per link, as the kernel would report them.
    counters: BTreeMap<Link, (u64, u64)>,
    /// Drop the first `Send` released after this is set, and stop: a crash after the signed
    /// payment is durable and before it leaves.
    crash_before_send: bool,
    crashed: bool,
    crashes: u32,
    /// Every event of every boot, in order.
    events: Vec<Event>,
    head: u64,
    intent_head: BTreeMap<PaymentId, u64>,
    blocks_to_confirm: Vec<u64>,
}

impl Node {
    fn open(spec: Spec, dir: PathBuf, chain: AlloyChain) -> Node {
        let config = BillingConfig {
            usage: UsageConfig { poll_ms: 1_000, window_ms: 5_000 },
            our_address: chain.address(),
            confirmations: CONFIRMATIONS,
            chain_poll_ms: 1_000,
            max_scan_blocks: 100,
            replace_after_polls: 0,
        };
        let mut node = Node {
            spec,
            dir,
            chain,
            config,
            live: None,
            counters: BTreeMap::new(),
            crash_before_send: false,
            crashed: false,
            crashes: 0,
            events: Vec::new(),
            head: 0,
            intent_head: BTreeMap::new(),
            blocks_to_confirm: Vec::new(),
        };
        node.start();
        node
    }

    /// Starts (or restarts) from what the data directory holds.
    fn start(&mut self) {
        let opened = flash::open(&self.dir, FlashConfig::default()).expect("data directory opens");
        let boot = flash::next_boot(&self.dir).expect("boot counter");
        let machine = BillingMachine::new(
            self.config,
            opened.state.usage.clone(),
            opened.state.billing.clone(),
            Stamp::new(boot, 0),
        );
        let journal = Journal::new(opened.store, opened.state, JournalConfig::default(), Stamp::new(boot, 0));
        self.live = Some(Live { machine, journal, boot, tick_ms: 0 });
        self.crashed = false;
        for input in self.spec.setup.clone() {
            self.input_sync(input);
        }
    }

    fn live(&mut self) -> &mut Live {
        self.live.as_mut().expect("the node is running")
    }

    fn input_sync(&mut self, input: BillingInput) {
        let live = self.live();
        let now = Stamp::new(live.boot, live.tick_ms);
        live.machine.handle(now, input);
    }

    /// Moves virtual time to `+ms`, firing due timers, and carries out everything decided.
    async fn advance(&mut self, ms: u64, head: u64) {
        self.head = head;
        self.pump().await; // what configuration decided
        let target = self.live().tick_ms + ms;
        loop {
            if self.crashed {
                return;
            }
            let live = self.live();
            let Some((at, timer)) = drive::due(&live.machine, Stamp::new(live.boot, target)) else { break };
            live.tick_ms = live.tick_ms.max(at.tick_ms);
            let now = Stamp::new(live.boot, live.tick_ms);
            live.machine.handle_timeout(now, timer);
            self.pump().await;
        }
        if let Some(live) = self.live.as_mut() {
            live.tick_ms = target;
        }
    }

    /// The drive loop: events to the journal, held commands released once durable, every
    /// answer back in as an input, until nothing is left to do.
    async fn pump(&mut self) {
        loop {
            let samples: Vec<CounterSample> = self
                .counters
                .iter()
                .map(|(link, (tx, rx))| CounterSample { link: *link, tx_bytes: *tx, rx_bytes: *rx })
                .collect();
            let head = self.head;
            let live = self.live.as_mut().expect("running");
            let now = Stamp::new(live.boot, live.tick_ms);
            // The log writer takes a whole batch: every event, then every effect.
            let drive::Drained { events, effects } = drive::drain(&mut live.machine);
            let events: Vec<Event> = events.into_iter().map(Event::from).collect();
            let (mut now_cmds, mut held, mut inputs) = (Vec::new(), Vec::new(), Vec::new());
            for effect in effects {
                match (effect.action, effect.release) {
                    (BillingEffect::Chain(c), Release::WhenDurable) => held.push(c),
                    (BillingEffect::Chain(c), Release::Immediately) => now_cmds.push(c),
                    (BillingEffect::ReadCounters, _) => inputs.push(BillingInput::Counters(samples.clone())),
                    (BillingEffect::Enforce { .. } | BillingEffect::Refused { .. }, _) => {}
                }
            }
            for e in &events {
                match e {
                    Event::Billing(BillingEvent::PaymentIntended { id, .. }) => {
                        self.intent_head.insert(*id, head);
                    }
                    Event::Billing(BillingEvent::PaymentConfirmed { id, .. }) => {
                        let from = self.intent_head.get(id).copied().unwrap_or(head);
                        self.blocks_to_confirm.push(head - from);
                    }
                    _ => {}
                }
            }
            self.events.extend(events.iter().cloned());
            // The log writer: append, then flush (its deadline, in virtual time, is now).
            let appended = live.journal.append(now, BILLING, events, held);
            let flushed = live.journal.flush(now);
            assert!(appended.refusals.is_empty() && flushed.refusals.is_empty(), "the log refused records");
            now_cmds.extend(appended.released.into_iter().chain(flushed.released));
            if now_cmds.is_empty() && inputs.is_empty() {
                return;
            }
            for command in now_cmds {
                if self.crash_before_send && matches!(command, ChainCommand::Send { .. }) {
                    // The process dies here: the machine and the journal are gone.
                    self.crash_before_send = false;
                    self.crashed = true;
                    self.crashes += 1;
                    self.live = None;
                    return;
                }
                let answer = self.chain.execute(command).await;
                inputs.push(BillingInput::Chain(answer));
            }
            let live = self.live.as_mut().expect("running");
            for input in inputs {
                live.machine.handle(now, input);
            }
        }
    }

    fn ledger_totals(&self) -> (u128, u128, u64) {
        let ledger = self.live.as_ref().expect("running").machine.ledger();
        let paid = ledger.accounts.values().map(|a| a.paid.0).sum();
        let received = ledger.accounts.values().map(|a| a.received.0).sum();
        (paid, received, ledger.payments_confirmed)
    }

    fn settled(&self) -> bool {
        let Some(live) = self.live.as_ref() else { return false };
        let l = live.machine.ledger();
        // Nothing open, nothing owed beyond the pay threshold.
        l.open.is_empty() && l.accounts.values().all(|a| a.our_debt() <= 10_000)
    }

    /// Hashes of the payments this node confirmed.
    fn confirmed_hashes(&self) -> Vec<TxHash> {
        let mut signed: BTreeMap<PaymentId, TxHash> = BTreeMap::new();
        let mut out = Vec::new();
        for e in &self.events {
            match e {
                Event::Billing(BillingEvent::PaymentSigned { id, tx_hash, .. }) => {
                    signed.insert(*id, *tx_hash);
                }
                Event::Billing(BillingEvent::PaymentConfirmed { id, .. }) => out.push(signed[id]),
                _ => {}
            }
        }
        out
    }
}

fn link(neighbour: u32) -> Link {
    Link::new(neighbour, DEST)
}

fn thresholds() -> BillingInput {
    BillingInput::Operator(OperatorCommand::SetThresholds(Thresholds {
        pay: Amount(10_000),
        enforce: Amount(1_000_000_000),
    }))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Native,
    Erc20,
}

struct Scenario {
    kind: Kind,
    /// Which node (0 = A, 1 = B) crashes before its second round's payment is sent.
    crash: Option<usize>,
    /// The price A's machine is told B quoted (B advertised 5).
    a_quote: u64,
    /// Keep the data directories here instead of a temporary directory.
    keep: Option<PathBuf>,
}

struct Outcome {
    mismatch: u128,
    payments: u64,
    gas_per_payment: f64,
    blocks_to_confirm: f64,
    /// B's view of A: (expected, received).
    b_of_a: (u128, u128),
}

async fn run(scenario: Scenario) -> Outcome {
    let anvil = Anvil::start();
    let token_bin = need(&tools().join("Token.bin"));
    let provider = RootProvider::<Ethereum>::new_http(anvil.url.parse().expect("url"));
    let chain_id = provider.get_chain_id().await.expect("chain id");
    let funder =
        PrivateKeySigner::from_bytes(&B256::from_slice(&hex::decode(FUNDER_KEY).expect("hex"))).expect("key");
    let mut chain = Chain { provider, chain_id, asset: Asset::Native };
    let mut funder_nonce = 0;

    let asset = match scenario.kind {
        Kind::Native => Asset::Native,
        Kind::Erc20 => {
            let code = hex::decode(std::fs::read_to_string(&token_bin).expect("read").trim()).expect("hex");
            let mut input = code;
            input.extend_from_slice(&U256::from(10u128.pow(27)).to_be_bytes::<32>());
            let hash = chain.submit(&funder, funder_nonce, TxKind::Create, U256::ZERO, input).await;
            funder_nonce += 1;
            chain.mine().await;
            let receipt = chain.provider.get_transaction_receipt(hash).await.expect("rpc").expect("mined");
            assert!(receipt.status(), "the token deploys");
            Asset::Erc20(Address(receipt.contract_address.expect("a contract").into_array()))
        }
    };
    chain.asset = asset;

    let (_tmp, root) = match &scenario.keep {
        Some(path) => {
            let _ = std::fs::remove_dir_all(path);
            std::fs::create_dir_all(path).expect("log directory");
            (None, path.clone())
        }
        None => {
            let tmp = tempfile::tempdir().expect("tempdir");
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    };

    // Each node's payment key is created in its data directory, then funded.
    let names = ["a", "b", "c"];
    let mut adapters = Vec::new();
    for name in names {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("node directory");
        let loaded = keyfile::load_or_create(&dir.join("payment.key")).expect("payment key");
        assert!(loaded.created && loaded.loose_mode.is_none());
        let key: PaymentKey = loaded.key;
        let mut config = AlloyConfig::new(anvil.url.clone(), asset);
        config.chain_id = Some(chain_id);
        adapters.push((dir, AlloyChain::connect(&config, &key).await.expect("adapter connects")));
    }
    let addr: Vec<Address> = adapters.iter().map(|(_, c)| c.address()).collect();
    let funder_chain = {
        let key = PaymentKey::from_hex(FUNDER_KEY).expect("key");
        let mut config = AlloyConfig::new(anvil.url.clone(), asset);
        config.chain_id = Some(chain_id);
        AlloyChain::connect(&config, &key).await.expect("funder connects")
    };
    for (i, who) in addr.iter().enumerate() {
        let eth = U256::from(10u128.pow(18));
        chain
            .submit(&funder, funder_nonce, TxKind::Call(alloy::primitives::Address::from(who.0)), eth, vec![])
            .await;
        funder_nonce += 1;
        if asset != Asset::Native && i < 2 {
            // Payers get tokens through the adapter itself.
            let signed = funder_chain
                .execute(ChainCommand::Sign {
                    id: PaymentId(0),
                    to: *who,
                    amount: Amount(10u128.pow(21)),
                    nonce: funder_nonce,
                })
                .await;
            let ChainObservation::Signed { raw, .. } = signed else { panic!("funder signs: {signed:?}") };
            let sent = funder_chain.execute(ChainCommand::Send { id: PaymentId(0), raw }).await;
            assert_eq!(sent, ChainObservation::Sent { id: PaymentId(0) });
            funder_nonce += 1;
        }
    }
    chain.mine().await;
    let start_head = chain.head().await;
    let mut start_balance = Vec::new();
    for who in &addr {
        start_balance.push(chain.balance(*who).await);
    }

    // A knows B as n1; B knows A as n1 and C as n2; C knows B as n1.
    let bind = |n: u32, a: Address| BillingInput::BindNeighbour { neighbour: NeighbourId(n), address: a };
    let specs = vec![
        Spec {
            name: "A",
            setup: vec![
                thresholds(),
                bind(1, addr[1]),
                BillingInput::PriceQuoted { link: link(1), price_per_byte: Some(scenario.a_quote) },
            ],
        },
        Spec {
            name: "B",
            setup: vec![
                thresholds(),
                BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte: 3 }),
                bind(1, addr[0]),
                bind(2, addr[2]),
                BillingInput::PriceAdvertised { link: link(1), price_per_byte: 5 },
                BillingInput::PriceQuoted { link: link(2), price_per_byte: Some(2) },
            ],
        },
        Spec {
            name: "C",
            setup: vec![
                thresholds(),
                BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte: 2 }),
                bind(1, addr[1]),
                BillingInput::PriceAdvertised { link: link(1), price_per_byte: 2 },
            ],
        },
    ];
    let mut nodes: Vec<Node> = specs
        .into_iter()
        .zip(adapters)
        .map(|(spec, (dir, adapter))| Node::open(spec, dir, adapter))
        .collect();

    for round in 1..=ROUNDS {
        nodes[0].counters.insert(link(1), (BYTES_PER_ROUND * round, 0));
        nodes[1].counters.insert(link(1), (0, RX_PER_ROUND * round));
        nodes[1].counters.insert(link(2), (RX_PER_ROUND * round, 0));
        nodes[2].counters.insert(link(1), (0, RX_PER_ROUND * round));
        if round == 2 {
            if let Some(i) = scenario.crash {
                nodes[i].crash_before_send = true;
            }
        }
        let mut ticks = 0;
        loop {
            ticks += 1;
            let head = chain.head().await;
            for node in nodes.iter_mut() {
                node.advance(1_000, head).await;
                if node.crashed {
                    // Recovered from its data directory: the payment is signed, durable, not sent.
                    let opened = flash::open(&node.dir, FlashConfig::default()).expect("reopens");
                    let open: Vec<_> = opened.state.billing.open.values().cloned().collect();
                    assert_eq!(open.len(), 1, "{}: one payment open at the crash", node.spec.name);
                    // Signed before the crash: the next nonce after every payment it confirmed, and
                    // the durable bytes are the very transaction whose hash was recorded.
                    let confirmed = opened.state.billing.payments_confirmed;
                    assert_eq!(
                        open[0].nonce,
                        Some(confirmed),
                        "{}: the nonce after {confirmed} payments",
                        node.spec.name
                    );
                    assert_eq!(open[0].hashes.last().map(|h| B256::from(h.0)), Some(keccak256(&open[0].raw)));
                    let hash = B256::from(open[0].hashes[0].0);
                    let mined = chain.provider.get_transaction_receipt(hash).await.expect("rpc");
                    assert!(mined.is_none(), "nothing was sent before the crash");
                    drop(opened);
                    println!(
                        "{}: crashed after PaymentSigned, before Send; restarting from its log",
                        node.spec.name
                    );
                    node.start();
                    node.advance(0, head).await;
                }
            }
            chain.mine().await;
            let windows_closed = ticks > 6;
            if windows_closed && nodes.iter().all(Node::settled) && received_matches_paid(&nodes) {
                break;
            }
            assert!(ticks < 60, "round {round} did not settle: {}", status(&nodes));
        }
    }
    // A few more blocks with nothing owed: nothing more moves.
    for _ in 0..4 {
        let head = chain.head().await;
        for node in nodes.iter_mut() {
            node.advance(1_000, head).await;
        }
        chain.mine().await;
    }

    // Ledgers against the chain, to the base unit.
    let end_head = chain.head().await;
    let mut mismatch = 0u128;
    let (mut payments, mut gas_total) = (0u64, 0u64);
    for (i, node) in nodes.iter().enumerate() {
        let (paid, received, confirmed) = node.ledger_totals();
        let mut fees = 0u128;
        for h in node.confirmed_hashes() {
            let (gas, wei) = chain.gas(h).await;
            gas_total += gas;
            fees += wei;
        }
        let spent = if asset == Asset::Native { fees } else { 0 };
        let expected = i128::try_from(received).expect("fits") - i128::try_from(paid + spent).expect("fits");
        let actual = chain.balance(addr[i]).await - start_balance[i];
        mismatch += (expected - actual).unsigned_abs();
        let sent = chain.sent_by(addr[i], start_head + 1, end_head).await;
        assert_eq!(sent, confirmed, "{}: each payment is one transaction, none twice", node.spec.name);
        payments += confirmed;
        println!(
            "{}: paid {paid}, received {received}, {confirmed} payments, chain change {actual}, ledger says {expected}",
            node.spec.name
        );
    }
    let b_of_a = {
        let a = nodes[1].live.as_ref().expect("running").machine.ledger().account(NeighbourId(1));
        (a.expected.0, a.received.0)
    };
    let crashes: u32 = nodes.iter().map(|n| n.crashes).sum();
    assert_eq!(crashes, u32::from(scenario.crash.is_some()), "the scripted crash happened");
    let blocks: Vec<u64> = nodes.iter().flat_map(|n| n.blocks_to_confirm.iter().copied()).collect();
    // Recovery from disk equals the live state.
    for node in nodes.iter_mut() {
        let live = node.live.take().expect("running");
        let ledger = live.machine.ledger().clone();
        drop(live);
        let opened = flash::open(&node.dir, FlashConfig::default()).expect("reopens");
        assert_eq!(opened.state.billing, ledger, "{}: the log replays to the live ledger", node.spec.name);
    }
    if let Some(path) = &scenario.keep {
        println!("node data directories kept for `replay dispute`: {}/{{a,b,c}}", path.display());
    }
    Outcome {
        mismatch,
        payments,
        gas_per_payment: gas_total as f64 / payments.max(1) as f64,
        blocks_to_confirm: blocks.iter().sum::<u64>() as f64 / blocks.len().max(1) as f64,
        b_of_a,
    }
}

/// Every payee credited exactly what its payer confirmed.
fn received_matches_paid(nodes: &[Node]) -> bool {
    let ledger = |i: usize| nodes[i].live.as_ref().map(|l| l.machine.ledger().clone());
    let (Some(a), Some(b), Some(c)) = (ledger(0), ledger(1), ledger(2)) else { return false };
    a.account(NeighbourId(1)).paid == b.account(NeighbourId(1)).received
        && b.account(NeighbourId(2)).paid == c.account(NeighbourId(1)).received
}

fn status(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| match &n.live {
            Some(l) => format!("{}: {:?}", n.spec.name, l.machine.ledger().accounts),
            None => format!("{}: down", n.spec.name),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn figures(o: &Outcome) {
    println!("figure: chain_ledger_mismatch_base_units {} units", o.mismatch);
    println!("figure: payments_made {} count", o.payments);
    println!("figure: gas_per_payment {:.0} gas", o.gas_per_payment);
    println!("figure: blocks_intent_to_confirmation {:.2} blocks", o.blocks_to_confirm);
}

#[tokio::test]
async fn native_payments_match_the_chain_and_survive_a_crash_before_send() {
    let o = run(Scenario { kind: Kind::Native, crash: Some(0), a_quote: 5, keep: None }).await;
    println!("asset: native");
    figures(&o);
    assert_eq!(o.mismatch, 0);
    assert_eq!(o.payments, 2 * ROUNDS, "A and B pay once per round");
    assert!(o.b_of_a.1 > o.b_of_a.0, "loss makes A's payments exceed what B expected: credit");
}

#[tokio::test]
async fn erc20_payments_match_the_chain_and_survive_a_crash_before_send() {
    let o = run(Scenario { kind: Kind::Erc20, crash: Some(1), a_quote: 5, keep: None }).await;
    println!("asset: erc20");
    figures(&o);
    assert_eq!(o.mismatch, 0);
    assert_eq!(o.payments, 2 * ROUNDS);
}

#[tokio::test]
async fn a_payer_quoting_less_than_advertised_leaves_a_debt_in_the_payees_log() {
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("anvil-logs").join("dishonest-payer");
    let o = run(Scenario { kind: Kind::Native, crash: None, a_quote: 4, keep: Some(keep) }).await;
    let (expected, received) = o.b_of_a;
    assert_eq!(expected, 5 * u128::from(RX_PER_ROUND * ROUNDS));
    assert_eq!(received, 4 * u128::from(BYTES_PER_ROUND * ROUNDS), "A paid at the price it believed");
    assert!(expected > received, "B's log shows A owes more than it paid");
    assert_eq!(o.mismatch, 0, "what was paid still matches the chain");

    // The dispute over these two real logs, as `replay dispute A B` settles it.
    let open = |name: &str| {
        let dir = replay::data_dir::DataDir::open(keep_dir(name)).expect("a kept data directory");
        replay::dispute::load(&dir).expect("a readable log")
    };
    let report = replay::dispute::dispute(&open("a"), &open("b"), &replay::dispute::Options::default())
        .expect("A and B are neighbours");
    let mut text = Vec::new();
    replay::dispute::render(&mut text, &report).expect("renders");
    println!("{}", String::from_utf8_lossy(&text));
    assert_eq!(report.verdict.kind, replay::dispute::VerdictKind::Underpaid);
    assert_eq!(
        report.verdict.amount.0,
        expected - received,
        "underpaid by exactly what B expected and A did not account for"
    );
    assert!(
        matches!(report.error(), Some(replay::error::ReplayError::Underpaid { amount, tolerance: 0 }) if amount == expected - received),
        "the command exits nonzero: {:?}",
        report.error()
    );
}

fn keep_dir(node: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("anvil-logs").join("dishonest-payer").join(node)
}

/// The adapter answers each command the way the twin does, against a real node: a re-sent
/// pending transaction is `Sent` (the node already holds it), a re-sent mined one is refused
/// (nonce too low), an unknown hash has no receipt, and a native scan sees exactly our transfer.
#[tokio::test]
async fn the_adapter_answers_like_the_twin() {
    let anvil = Anvil::start();
    let provider = RootProvider::<Ethereum>::new_http(anvil.url.parse().expect("url"));
    let chain = Chain { provider, chain_id: 0, asset: Asset::Native };
    let config = AlloyConfig::new(anvil.url.clone(), Asset::Native);
    let payer = AlloyChain::connect(&config, &PaymentKey::from_hex(FUNDER_KEY).expect("key"))
        .await
        .expect("connects");
    let dir = tempfile::tempdir().expect("tempdir");
    let payee_key = keyfile::load_or_create(&dir.path().join("payment.key")).expect("key").key;
    let payee = AlloyChain::connect(&config, &payee_key).await.expect("connects");

    let id = PaymentId(9);
    assert_eq!(payer.execute(ChainCommand::QueryNonce).await, ChainObservation::Nonce { next: 0 });
    let head = match payer.execute(ChainCommand::QueryHead).await {
        ChainObservation::Head { block } => block,
        other => panic!("{other:?}"),
    };
    let sign = ChainCommand::Sign { id, to: payee.address(), amount: Amount(12_345), nonce: 0 };
    let ChainObservation::Signed { tx_hash: first, raw: first_raw, .. } = payer.execute(sign.clone()).await
    else {
        panic!("signs")
    };
    // Signing the same nonce again is a replacement: higher fees, another hash; the node
    // takes it in place of the first, and only one of them can ever be mined.
    let ChainObservation::Signed { tx_hash, raw, .. } = payer.execute(sign).await else { panic!("signs") };
    assert_ne!(tx_hash, first, "a replacement pays more fees, so it is another transaction");
    assert_eq!(payer.execute(ChainCommand::Send { id, raw: first_raw }).await, ChainObservation::Sent { id });
    let send = ChainCommand::Send { id, raw };
    assert_eq!(
        payer.execute(send.clone()).await,
        ChainObservation::Sent { id },
        "the replacement is accepted"
    );
    assert_eq!(payer.execute(send.clone()).await, ChainObservation::Sent { id }, "already known is sent");
    let old = ChainCommand::QueryReceipt { id, tx_hash: first };
    let receipt = ChainCommand::QueryReceipt { id, tx_hash };
    assert_eq!(
        payer.execute(receipt.clone()).await,
        ChainObservation::Receipt { id, tx_hash, included: None }
    );
    chain.mine().await;
    assert_eq!(
        payer.execute(receipt).await,
        ChainObservation::Receipt {
            id,
            tx_hash,
            included: Some(lastmile::events::chain::Inclusion { block: head + 1, success: true })
        }
    );
    assert_eq!(
        payer.execute(old).await,
        ChainObservation::Receipt { id, tx_hash: first, included: None },
        "the replaced transaction is never mined"
    );
    assert!(matches!(payer.execute(send).await, ChainObservation::SendRejected { id: i, .. } if i == id));
    assert_eq!(payer.execute(ChainCommand::QueryNonce).await, ChainObservation::Nonce { next: 1 });
    let unknown = ChainCommand::QueryReceipt { id, tx_hash: TxHash([0x42; 32]) };
    assert_eq!(
        payer.execute(unknown).await,
        ChainObservation::Receipt { id, tx_hash: TxHash([0x42; 32]), included: None }
    );
    let scan = ChainCommand::ScanIncoming { from_block: head + 1, to_block: head + 1 };
    match payee.execute(scan).await {
        ChainObservation::Incoming { transfers, .. } => {
            assert_eq!(transfers.len(), 1);
            assert_eq!(
                (transfers[0].tx_hash, transfers[0].amount, transfers[0].from),
                (tx_hash, Amount(12_345), payer.address())
            );
        }
        other => panic!("{other:?}"),
    }
    let beyond = ChainCommand::ScanIncoming { from_block: head + 5, to_block: head + 6 };
    assert!(
        matches!(payee.execute(beyond).await, ChainObservation::RpcFailed { .. }),
        "blocks not yet mined"
    );
}
