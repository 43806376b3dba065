//! The chain adapter for a real node: answers the payments machine's [`ChainCommand`]s over
//! JSON-RPC with alloy, the way the twin ([`crate::sim::chain::ChainTwin`]) answers them in memory.
//!
//! - `Sign` builds a transfer of the configured [`Asset`] (a native value transfer, or an
//!   ERC-20 `transfer(to, amount)` call) with exactly the given nonce and signs it locally.
//!   The only RPC it makes is the fee lookup (the latest block's base fee; `eth_gasPrice` on a
//!   chain without one, which then gets a legacy transaction). The answer carries the EIP-2718
//!   encoding, so a restart can broadcast the very same bytes.
//! - `Send` is `eth_sendRawTransaction`. An error the node answered (nonce too low, not enough
//!   funds, underpriced...) is `SendRejected`; a transport failure or timeout is `RpcFailed`.
//!   "Already known" means the node holds this very transaction: that is `Sent`, as in the twin.
//! - `QueryReceipt`, `QueryHead`, `QueryNonce` (transactions of ours included at `latest`) and
//!   `ScanIncoming` (native: full blocks, value transfers to us; ERC-20: `Transfer(_, us, _)`
//!   logs of the token contract). A native scan sees only top-level transactions to us, which
//!   to a key's address (no code) cannot revert; value sent by a contract's internal call is
//!   not seen, so a neighbour pays from its bound key, as the machine requires anyway.
//!
//! Every call is bounded by [`AlloyConfig::call_timeout_ms`]. Every failure becomes an
//! observation, never a panic; an answer that does not match the question (a receipt for
//! another hash, a block or log outside the range asked, a log from another contract) is not
//! trusted and is answered as `RpcFailed`, so the machine asks again rather than records it.
//!
//! Plain HTTP only: the node is expected to run its chain endpoint on loopback or its LAN (anvil
//! in tests). No TLS stack is linked; an `https` URL is refused when the adapter is built.

use crate::events::chain::{
    Address, Amount, Asset, ChainCommand, ChainObservation, ChainRequestKind, Inclusion, PaymentId, Transfer,
    TxHash,
};
use crate::os::keyfile::PaymentKey;
use alloy::consensus::{SignableTransaction, Transaction as _, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::eips::BlockNumberOrTag;
use alloy::network::{Ethereum, TxSignerSync};
use alloy::primitives::{self, Bytes, TxKind, B256, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{Filter, Log};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use alloy::transports::http::{reqwest, Http};
use alloy::transports::{RpcError, TransportErrorKind};
use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

alloy::sol! {
    /// The two pieces of ERC-20 the adapter uses.
    interface IERC20 {
        function transfer(address to, uint256 value) external returns (bool);
        event Transfer(address indexed from, address indexed to, uint256 value);
    }
}

/// What a plain value transfer costs (an EOA recipient).
pub const NATIVE_TRANSFER_GAS: u64 = 21_000;

/// Gas allowed for an ERC-20 `transfer`: a standard token uses 30,000–65,000.
pub const ERC20_TRANSFER_GAS: u64 = 100_000;

/// How the adapter prices its transactions, in wei per gas. No floats: base fee and tip are
/// integers from the chain and the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// The tip offered to the block producer (EIP-1559).
    pub priority_fee_per_gas: u128,
    /// Never offer more than this per gas, whatever the chain says.
    pub max_fee_per_gas_cap: u128,
}

impl Default for Fees {
    fn default() -> Self {
        Self { priority_fee_per_gas: 1_000_000_000, max_fee_per_gas_cap: 500_000_000_000 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlloyConfig {
    /// The node's JSON-RPC endpoint, `http://host:port`.
    pub url: String,
    pub asset: Asset,
    /// The chain we settle on. `None`: take what the node says at [`AlloyChain::connect`].
    pub chain_id: Option<u64>,
    /// The longest any one RPC call may take.
    pub call_timeout_ms: u64,
    pub fees: Fees,
    /// Gas limit of a payment; `None`: [`NATIVE_TRANSFER_GAS`] or [`ERC20_TRANSFER_GAS`].
    pub gas_limit: Option<u64>,
}

impl AlloyConfig {
    pub fn new(url: impl Into<String>, asset: Asset) -> Self {
        Self {
            url: url.into(),
            asset,
            chain_id: None,
            call_timeout_ms: 5_000,
            fees: Fees::default(),
            gas_limit: None,
        }
    }
}

/// Why the adapter could not be built.
#[derive(Debug)]
pub enum ChainSetupError {
    Url {
        url: String,
        reason: String,
    },
    Key(String),
    /// The node could not be asked for its chain id.
    Unreachable {
        url: String,
        reason: String,
    },
    WrongChain {
        configured: u64,
        node: u64,
    },
}

impl fmt::Display for ChainSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, reason } => write!(f, "chain endpoint {url:?}: {reason}"),
            Self::Key(reason) => write!(f, "payment key: {reason}"),
            Self::Unreachable { url, reason } => write!(f, "chain endpoint {url}: {reason}"),
            Self::WrongChain { configured, node } => {
                write!(f, "the chain endpoint serves chain id {node}, configured is {configured}")
            }
        }
    }
}

impl std::error::Error for ChainSetupError {}

/// See the module docs.
pub struct AlloyChain {
    provider: RootProvider<Ethereum>,
    signer: PrivateKeySigner,
    address: Address,
    asset: Asset,
    chain_id: u64,
    timeout: Duration,
    fees: Fees,
    gas_limit: u64,
    /// The fees last signed per nonce (max fee or gas price, tip). Signing a nonce again is a
    /// replacement: nodes accept one only if it raises both by at least 10%, so both go up by
    /// at least 12.5% over what was signed before, within the cap.
    signed_fees: std::sync::Mutex<std::collections::BTreeMap<u64, (u128, u128)>>,
}

/// How many recent nonces' fees are remembered for replacements.
const REMEMBERED_NONCES: usize = 16;

/// `x` raised by at least 12.5% (and at least 1).
fn bumped(x: u128) -> u128 {
    x.saturating_add(x / 8).saturating_add(1)
}

impl fmt::Debug for AlloyChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signer holds the payment key: never printed.
        f.debug_struct("AlloyChain")
            .field("address", &self.address)
            .field("asset", &self.asset)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// Why one call failed, worded for the operator.
fn describe<E: fmt::Display>(e: E) -> String {
    let text = e.to_string();
    // Node error messages are untrusted and unbounded: keep what fits on a log line.
    text.chars().take(200).collect()
}

fn to_alloy(a: Address) -> primitives::Address {
    primitives::Address::from(a.0)
}

fn from_alloy(a: primitives::Address) -> Address {
    Address(a.into_array())
}

impl AlloyChain {
    /// Builds the adapter without touching the network: `chain_id` must be known.
    pub fn new(config: &AlloyConfig, key: &PaymentKey, chain_id: u64) -> Result<Self, ChainSetupError> {
        let url: reqwest::Url = config
            .url
            .parse()
            .map_err(|e| ChainSetupError::Url { url: config.url.clone(), reason: describe(e) })?;
        if url.scheme() != "http" {
            return Err(ChainSetupError::Url {
                url: config.url.clone(),
                reason: "only plain http endpoints are supported (no TLS is linked)".into(),
            });
        }
        let timeout = Duration::from_millis(config.call_timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| ChainSetupError::Url { url: config.url.clone(), reason: describe(e) })?;
        let http = Http::with_client(client, url);
        let is_local = http.guess_local();
        let provider = RootProvider::new(RpcClient::new(http, is_local));
        let signer = PrivateKeySigner::from_bytes(&B256::from(*key.secret()))
            .map_err(|e| ChainSetupError::Key(describe(e)))?;
        let address = from_alloy(signer.address());
        let gas_limit = config.gas_limit.unwrap_or(match config.asset {
            Asset::Native => NATIVE_TRANSFER_GAS,
            Asset::Erc20(_) => ERC20_TRANSFER_GAS,
        });
        Ok(Self {
            provider,
            signer,
            address,
            asset: config.asset,
            chain_id,
            timeout,
            fees: config.fees,
            gas_limit,
            signed_fees: Default::default(),
        })
    }

    /// Builds the adapter, asking the node for its chain id (and checking it against the
    /// configured one, if any).
    pub async fn connect(config: &AlloyConfig, key: &PaymentKey) -> Result<Self, ChainSetupError> {
        let mut chain = Self::new(config, key, config.chain_id.unwrap_or(0))?;
        let unreachable = |reason| ChainSetupError::Unreachable { url: config.url.clone(), reason };
        let node = chain.bounded(chain.provider.get_chain_id()).await.map_err(unreachable)?;
        match config.chain_id {
            Some(configured) if configured != node => {
                return Err(ChainSetupError::WrongChain { configured, node })
            }
            _ => chain.chain_id = node,
        }
        Ok(chain)
    }

    /// Our payment address (derived from the key).
    pub fn address(&self) -> Address {
        self.address
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn asset(&self) -> Asset {
        self.asset
    }

    /// The HTTP provider, for callers that need more of the chain (tests, tools).
    pub fn provider(&self) -> &RootProvider<Ethereum> {
        &self.provider
    }

    /// Answers one command. Never panics; every failure is an observation.
    pub async fn execute(&self, command: ChainCommand) -> ChainObservation {
        let kind = command.request_kind();
        let answer = match command {
            ChainCommand::Sign { id, to, amount, nonce } => self.sign(id, to, amount, nonce).await,
            ChainCommand::Send { id, raw } => return self.send(id, &raw).await,
            ChainCommand::QueryReceipt { id, tx_hash } => self.receipt(id, tx_hash).await,
            ChainCommand::QueryHead => self
                .bounded(self.provider.get_block_number())
                .await
                .map(|block| ChainObservation::Head { block }),
            ChainCommand::QueryNonce => self
                .bounded(self.provider.get_transaction_count(to_alloy(self.address)).latest())
                .await
                .map(|next| ChainObservation::Nonce { next }),
            ChainCommand::ScanIncoming { from_block, to_block } => self.scan(from_block, to_block).await,
        };
        answer.unwrap_or_else(|reason| ChainObservation::RpcFailed { request: kind, reason })
    }

    /// Runs one RPC call within the timeout.
    async fn bounded<T>(
        &self,
        call: impl IntoFuture<Output = Result<T, RpcError<TransportErrorKind>>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(describe(e)),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn sign(
        &self,
        id: PaymentId,
        to: Address,
        amount: Amount,
        nonce: u64,
    ) -> Result<ChainObservation, String> {
        let (target, value, input) = match self.asset {
            Asset::Native => (to_alloy(to), U256::from(amount.0), Bytes::new()),
            Asset::Erc20(token) => {
                let call = IERC20::transferCall { to: to_alloy(to), value: U256::from(amount.0) };
                (to_alloy(token), U256::ZERO, Bytes::from(call.abi_encode()))
            }
        };
        let latest = self
            .bounded(self.provider.get_block_by_number(BlockNumberOrTag::Latest))
            .await?
            .ok_or("the node has no latest block")?;
        let envelope = match latest.header.base_fee_per_gas {
            Some(base_fee) => {
                let fresh = u128::from(base_fee)
                    .saturating_mul(2)
                    .saturating_add(self.fees.priority_fee_per_gas)
                    .min(self.fees.max_fee_per_gas_cap);
                let (max_fee, tip) = self.replacement_fees(nonce, fresh, self.fees.priority_fee_per_gas);
                let mut tx = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce,
                    gas_limit: self.gas_limit,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: tip.min(max_fee),
                    to: TxKind::Call(target),
                    value,
                    access_list: Default::default(),
                    input,
                };
                let signature = self.signer.sign_transaction_sync(&mut tx).map_err(describe)?;
                TxEnvelope::Eip1559(tx.into_signed(signature))
            }
            None => {
                let price = self.bounded(self.provider.get_gas_price()).await?;
                let (price, _) = self.replacement_fees(nonce, price.min(self.fees.max_fee_per_gas_cap), 0);
                let mut tx = TxLegacy {
                    chain_id: Some(self.chain_id),
                    nonce,
                    gas_price: price,
                    gas_limit: self.gas_limit,
                    to: TxKind::Call(target),
                    value,
                    input,
                };
                let signature = self.signer.sign_transaction_sync(&mut tx).map_err(describe)?;
                TxEnvelope::Legacy(tx.into_signed(signature))
            }
        };
        let tx_hash = TxHash(envelope.tx_hash().0);
        Ok(ChainObservation::Signed { id, tx_hash, raw: envelope.encoded_2718() })
    }

    /// The fees to sign `nonce` with: the fresh ones, or for a nonce signed before (a
    /// replacement) at least 12.5% more than last time on both, within the cap.
    fn replacement_fees(&self, nonce: u64, fresh_max: u128, fresh_tip: u128) -> (u128, u128) {
        // A poisoned lock only means another signing panicked; the map is still consistent.
        let mut signed = self.signed_fees.lock().unwrap_or_else(|e| e.into_inner());
        let (max_fee, tip) = match signed.get(&nonce) {
            Some(&(max, tip)) => {
                (fresh_max.max(bumped(max)).min(self.fees.max_fee_per_gas_cap), fresh_tip.max(bumped(tip)))
            }
            None => (fresh_max, fresh_tip),
        };
        signed.insert(nonce, (max_fee, tip));
        while signed.len() > REMEMBERED_NONCES {
            signed.pop_first();
        }
        (max_fee, tip)
    }

    async fn send(&self, id: PaymentId, raw: &[u8]) -> ChainObservation {
        let failed = |reason| ChainObservation::RpcFailed { request: ChainRequestKind::Send(id), reason };
        match tokio::time::timeout(self.timeout, self.provider.send_raw_transaction(raw)).await {
            Ok(Ok(_pending)) => ChainObservation::Sent { id },
            Ok(Err(RpcError::ErrorResp(payload))) => {
                let reason: String = payload.message.chars().take(200).collect();
                if already_known(&reason) {
                    ChainObservation::Sent { id }
                } else {
                    ChainObservation::SendRejected { id, reason }
                }
            }
            Ok(Err(e)) => failed(describe(e)),
            Err(_) => failed(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn receipt(&self, id: PaymentId, tx_hash: TxHash) -> Result<ChainObservation, String> {
        let hash = B256::from(tx_hash.0);
        let Some(receipt) = self.bounded(self.provider.get_transaction_receipt(hash)).await? else {
            return Ok(ChainObservation::Receipt { id, tx_hash, included: None });
        };
        if receipt.transaction_hash != hash {
            return Err(format!("asked for the receipt of {tx_hash}, got {}", receipt.transaction_hash));
        }
        let Some(block) = receipt.block_number else {
            return Ok(ChainObservation::Receipt { id, tx_hash, included: None });
        };
        let success = receipt.status()
            && match self.asset {
                Asset::Native => true,
                // A token may "succeed" without moving anything: count it only if it logged
                // the transfer from us.
                Asset::Erc20(token) => receipt.inner.logs().iter().any(|log| {
                    log.address() == to_alloy(token)
                        && IERC20::Transfer::decode_log_data(log.data())
                            .is_ok_and(|t| t.from == to_alloy(self.address))
                }),
            };
        Ok(ChainObservation::Receipt { id, tx_hash, included: Some(Inclusion { block, success }) })
    }

    async fn scan(&self, from_block: u64, to_block: u64) -> Result<ChainObservation, String> {
        if from_block > to_block {
            return Err(format!("empty block range {from_block}..={to_block}"));
        }
        let transfers = match self.asset {
            Asset::Native => self.scan_native(from_block, to_block).await?,
            Asset::Erc20(token) => self.scan_erc20(token, from_block, to_block).await?,
        };
        Ok(ChainObservation::Incoming { from_block, to_block, transfers })
    }

    async fn scan_native(&self, from_block: u64, to_block: u64) -> Result<Vec<Transfer>, String> {
        let us = to_alloy(self.address);
        let mut transfers = Vec::new();
        for number in from_block..=to_block {
            let block = self
                .bounded(self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).full())
                .await?
                .ok_or_else(|| format!("block {number} not found"))?;
            if block.header.number != number {
                return Err(format!("asked for block {number}, got block {}", block.header.number));
            }
            let txs = block
                .transactions
                .as_transactions()
                .ok_or_else(|| format!("block {number} came without its transactions"))?;
            for tx in txs {
                if tx.to() != Some(us) || tx.value().is_zero() {
                    continue;
                }
                let Ok(amount) = u128::try_from(tx.value()) else {
                    tracing::warn!(
                        block = number,
                        "a native transfer to us beyond 2^128 base units: ignored"
                    );
                    continue;
                };
                transfers.push(Transfer {
                    tx_hash: TxHash(tx.inner.tx_hash().0),
                    log_index: 0,
                    from: from_alloy(tx.inner.signer()),
                    to: self.address,
                    amount: Amount(amount),
                    block: number,
                });
            }
        }
        Ok(transfers)
    }

    async fn scan_erc20(
        &self,
        token: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<Transfer>, String> {
        let us = to_alloy(self.address);
        let filter = Filter::new()
            .address(to_alloy(token))
            .event_signature(IERC20::Transfer::SIGNATURE_HASH)
            .topic2(us.into_word())
            .from_block(from_block)
            .to_block(to_block);
        let logs = self.bounded(self.provider.get_logs(&filter)).await?;
        let mut transfers = Vec::with_capacity(logs.len());
        for log in &logs {
            if let Some(t) = self.transfer_of(log, token, from_block..=to_block)? {
                transfers.push(t);
            }
        }
        Ok(transfers)
    }

    /// The transfer a log records, checked against what was asked. `Err`: the node's answer is
    /// not to be trusted at all; `Ok(None)`: a well-formed transfer we cannot represent.
    fn transfer_of(
        &self,
        log: &Log,
        token: Address,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<Transfer>, String> {
        let block = log.block_number.ok_or("a log without its block")?;
        let tx_hash = log.transaction_hash.ok_or("a log without its transaction")?;
        let log_index = log.log_index.ok_or("a log without its index")?;
        if log.removed {
            return Err(format!("a removed log in block {block}"));
        }
        if !range.contains(&block) {
            return Err(format!("a log of block {block} outside {range:?}"));
        }
        if log.address() != to_alloy(token) {
            return Err(format!("a log of contract {} instead of the token", log.address()));
        }
        let event =
            IERC20::Transfer::decode_log_data(log.data()).map_err(|e| format!("a malformed log: {e}"))?;
        if event.to != to_alloy(self.address) {
            return Err(format!("a transfer to {} answered a query for transfers to us", event.to));
        }
        let log_index =
            u32::try_from(log_index).map_err(|_| format!("log index {log_index} out of range"))?;
        let Ok(amount) = u128::try_from(event.value) else {
            tracing::warn!(block, "a token transfer to us beyond 2^128 base units: ignored");
            return Ok(None);
        };
        Ok(Some(Transfer {
            tx_hash: TxHash(tx_hash.0),
            log_index,
            from: from_alloy(event.from),
            to: self.address,
            amount: Amount(amount),
            block,
        }))
    }
}

/// Whether a node's refusal says it already holds this very transaction (geth: "already
/// known", anvil/reth: "transaction already imported", others: "known transaction").
fn already_known(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("already known") || r.contains("already imported") || r.contains("known transaction")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PaymentKey {
        // anvil's first dev account: a well-known test key, never used for real funds.
        let hex = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        PaymentKey::from_hex(hex).expect("valid key")
    }

    #[test]
    fn the_address_comes_from_the_key_and_https_is_refused() {
        let config = AlloyConfig::new("http://127.0.0.1:1", Asset::Native);
        let chain = AlloyChain::new(&config, &key(), 31337).expect("builds without the network");
        assert_eq!(
            chain.address().to_string(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
            "anvil's first account"
        );
        assert!(!format!("{chain:?}").contains("ac0974"), "the key is never printed");
        let tls = AlloyConfig::new("https://example.invalid", Asset::Native);
        assert!(matches!(AlloyChain::new(&tls, &key(), 1), Err(ChainSetupError::Url { .. })));
    }

    #[test]
    fn refusals_that_mean_the_node_already_holds_the_transaction_are_recognised() {
        assert!(already_known("already known"));
        assert!(already_known("transaction already imported"));
        assert!(!already_known("nonce too low"));
        assert!(!already_known("insufficient funds for gas * price + value"));
    }

    #[tokio::test]
    async fn an_unreachable_node_is_an_observation_not_a_panic() {
        // Port 9 (discard) on loopback: nothing listens there on a test machine.
        let mut config = AlloyConfig::new("http://127.0.0.1:9", Asset::Native);
        config.call_timeout_ms = 500;
        let chain = AlloyChain::new(&config, &key(), 31337).expect("builds");
        let id = PaymentId(4);
        for (command, kind) in [
            (ChainCommand::QueryHead, ChainRequestKind::Head),
            (ChainCommand::QueryNonce, ChainRequestKind::Nonce),
            (ChainCommand::Send { id, raw: vec![1, 2, 3] }, ChainRequestKind::Send(id)),
            (
                ChainCommand::Sign { id, to: Address([7; 20]), amount: Amount(1), nonce: 0 },
                ChainRequestKind::Sign(id),
            ),
            (ChainCommand::QueryReceipt { id, tx_hash: TxHash([1; 32]) }, ChainRequestKind::Receipt(id)),
            (ChainCommand::ScanIncoming { from_block: 1, to_block: 2 }, ChainRequestKind::Incoming),
        ] {
            match chain.execute(command).await {
                ChainObservation::RpcFailed { request, .. } => assert_eq!(request, kind),
                other => panic!("expected a failure, got {other:?}"),
            }
        }
        assert!(matches!(
            AlloyChain::connect(&config, &key()).await,
            Err(ChainSetupError::Unreachable { .. })
        ));
    }
}
