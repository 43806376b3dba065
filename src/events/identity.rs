//! Who a node is, and what a neighbour may trust about it.
//!
//! A node has one identity key, a secp256k1 key on flash (`os::keyfile`). It is also the
//! node's payment key, so the **payment address** is the identity's Ethereum address and needs
//! no binding of its own. Everything else a neighbour needs is derived from the public key or
//! signed by it (docs/IDENTITY.md gives the derivations byte by byte):
//!
//! - [`NodeId`]: the compressed public key (33 bytes). It names the node in discovery and in
//!   the log.
//! - the **mesh address** ([`NodeId::mesh_address`]): `fd` followed by the first 15 bytes of
//!   `keccak256("lastmile mesh address v1" ‖ node id)`. A squatter would need a second
//!   preimage of 120 bits of keccak.
//! - the Babel **router-id** ([`NodeId::router_id`]): the last 8 bytes of the mesh address,
//!   unique by construction (a collision is a 64-bit hash collision).
//! - the **WireGuard key** ([`WgKey`], x25519, its own key file): carried in discovery
//!   messages signed by the identity, and proven by a MAC keyed with the x25519 shared secret
//!   of both WireGuard keys, so a node can claim only a WireGuard key whose private half it
//!   holds.
//!
//! Signatures are 64-byte ECDSA (r ‖ s, low s) over `keccak256(domain ‖ message)`, RFC 6979
//! deterministic: the pure layers sign and verify without randomness.

use super::chain::Address;
use core::net::Ipv6Addr;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

fixed_bytes!(NodeId, 33, "node id (compressed secp256k1 public key)");
fixed_bytes!(WgKey, 32, "WireGuard public key");

/// The domain of mesh address derivation.
const MESH_DOMAIN: &[u8] = b"lastmile mesh address v1";

impl NodeId {
    /// The node id of a signing key.
    pub fn of(key: &SigningKey) -> NodeId {
        Self::of_public(key.verifying_key())
    }

    pub fn of_public(key: &VerifyingKey) -> NodeId {
        let point = key.to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        NodeId(out)
    }

    /// The public key, if these 33 bytes are one (a point on the curve, compressed).
    pub fn public_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_sec1_bytes(&self.0).ok()
    }

    /// The node's mesh address: an `fd00::/8` /128 that only the holder of this key can claim.
    pub fn mesh_address(&self) -> Ipv6Addr {
        let mut h = Keccak256::new();
        h.update(MESH_DOMAIN);
        h.update(self.0);
        let digest = h.finalize();
        let mut octets = [0u8; 16];
        octets[0] = 0xfd;
        octets[1..].copy_from_slice(&digest[..15]);
        Ipv6Addr::from(octets)
    }

    /// The node's Babel router-id: the interface identifier of its mesh address.
    pub fn router_id(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.mesh_address().octets()[8..]);
        out
    }

    /// The node's payment address (the identity key is the payment key). `None` if the bytes
    /// are not a public key.
    pub fn payment_address(&self) -> Option<Address> {
        let key = self.public_key()?;
        let point = key.to_encoded_point(false);
        let digest = Keccak256::digest(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[12..]);
        Some(Address(out))
    }

    /// A short form for logs and interface descriptions: the first 4 bytes after the prefix
    /// byte, in hex.
    pub fn short(&self) -> String {
        self.0[1..5].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The digest signed for `message` under `domain`.
fn digest(domain: &[u8], message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(domain);
    h.update(message);
    h.finalize().into()
}

/// Signs `message` under `domain` (RFC 6979: deterministic, no randomness).
pub fn sign(key: &SigningKey, domain: &[u8], message: &[u8]) -> [u8; 64] {
    use k256::ecdsa::signature::hazmat::PrehashSigner;
    let sig: Signature =
        key.sign_prehash(&digest(domain, message)).expect("signing a 32-byte digest succeeds");
    let sig = sig.normalize_s().unwrap_or(sig);
    sig.to_bytes().into()
}

/// Whether `signature` is `node`'s signature of `message` under `domain`. High-s signatures
/// are refused, so a signature has one encoding only.
pub fn verify(node: &NodeId, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
    let Some(key) = node.public_key() else { return false };
    let Ok(sig) = Signature::from_slice(signature) else { return false };
    if sig.normalize_s().is_some() {
        return false;
    }
    key.verify_prehash(&digest(domain, message), &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_slice(&[n; 32]).expect("valid test key")
    }

    #[test]
    fn derivations_are_fixed_golden_values() {
        // The derivations are a protocol: every node computes the same address from the same
        // key. A change here breaks every mesh, so these values are pinned.
        let id = NodeId::of(&key(1));
        assert_eq!(id.to_string(), "0x031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f");
        assert_eq!(id.mesh_address().to_string(), MESH_GOLDEN);
        assert_eq!(id.router_id(), id.mesh_address().octets()[8..]);
        // The payment address is the key's Ethereum address (the well-known value of the
        // private key 0x0101…01).
        assert_eq!(
            id.payment_address().expect("a key").to_string(),
            "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"
        );
    }

    const MESH_GOLDEN: &str = "fdea:ce6d:f9c6:4c4:41de:906f:ad3d:4617";

    #[test]
    fn mesh_addresses_are_unique_local_and_differ_between_keys() {
        let a = NodeId::of(&key(1)).mesh_address();
        let b = NodeId::of(&key(2)).mesh_address();
        assert_ne!(a, b);
        for addr in [a, b] {
            assert_eq!(addr.octets()[0], 0xfd);
        }
    }

    #[test]
    fn signatures_verify_only_for_their_signer_domain_and_message() {
        let (k, other) = (key(3), key(4));
        let id = NodeId::of(&k);
        let sig = sign(&k, b"domain", b"message");
        assert!(verify(&id, b"domain", b"message", &sig));
        assert!(!verify(&id, b"other domain", b"message", &sig));
        assert!(!verify(&id, b"domain", b"messagf", &sig));
        assert!(!verify(&NodeId::of(&other), b"domain", b"message", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify(&id, b"domain", b"message", &bad));
        // Not a point: refused, not a panic.
        assert!(!verify(&NodeId([0xff; 33]), b"domain", b"message", &sig));
        assert!(NodeId([0xff; 33]).payment_address().is_none());
    }

    #[test]
    fn a_high_s_twin_of_a_valid_signature_is_refused() {
        let k = key(5);
        let id = NodeId::of(&k);
        let sig = sign(&k, b"d", b"m");
        let parsed = Signature::from_slice(&sig).expect("valid");
        let (r, s) = parsed.split_scalars();
        let twin = Signature::from_scalars(r, -*s).expect("valid scalars");
        assert!(!verify(&id, b"d", b"m", &twin.to_bytes().into()));
    }
}
