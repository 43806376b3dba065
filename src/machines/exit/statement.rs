//! The bytes of a usage statement that an exit signs, and their verification. Pure: recovery
//! of the signer is arithmetic on the statement, no key store and no I/O.
//!
//! The message is 101 bytes, fixed layout, integers big-endian:
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 21 | domain: ASCII `lastmile-statement-v1` |
//! | 21 | 20 | exit address |
//! | 41 | 20 | user address |
//! | 61 | 8 | statement seq (u64) |
//! | 69 | 8 | download bytes, cumulative (u64) |
//! | 77 | 8 | upload bytes, cumulative (u64) |
//! | 85 | 16 | amount due, cumulative, base units (u128) |
//!
//! The digest is EIP-191 `personal_sign` (version `0x45`):
//! `keccak256("\x19Ethereum Signed Message:\n101" ‖ message)`, so any Ethereum tool (a wallet's
//! `personal_sign`, `ecrecover` with `toEthSignedMessageHash` in a contract, alloy's
//! `sign_message`) produces and checks the same signatures. The signature is secp256k1 ECDSA,
//! `r ‖ s ‖ v` (65 bytes, `v` = 27 + recovery id); high-s signatures are refused (k256 verifies
//! low-s only), so a statement has exactly one valid signature per key. The signer is the
//! Ethereum address of the recovered key: the last 20 bytes of keccak256 of its uncompressed
//! point without the 0x04 tag.

use crate::events::chain::Address;
use crate::events::exit::{Signature, Statement};
use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, VerifyingKey};
use sha3::{Digest, Keccak256};

/// The domain separator that opens every statement message.
pub const DOMAIN: &[u8; 21] = b"lastmile-statement-v1";
/// The length of a statement message.
pub const MESSAGE_LEN: usize = 101;

/// The exact bytes signed (see the module docs for the layout).
pub fn message(s: &Statement) -> [u8; MESSAGE_LEN] {
    let mut out = [0u8; MESSAGE_LEN];
    out[0..21].copy_from_slice(DOMAIN);
    out[21..41].copy_from_slice(&s.exit.0);
    out[41..61].copy_from_slice(&s.user.0);
    out[61..69].copy_from_slice(&s.seq.to_be_bytes());
    out[69..77].copy_from_slice(&s.download_bytes.to_be_bytes());
    out[77..85].copy_from_slice(&s.upload_bytes.to_be_bytes());
    out[85..101].copy_from_slice(&s.amount_due.0.to_be_bytes());
    out
}

pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// The EIP-191 digest of the statement's message: what is signed.
pub fn digest(s: &Statement) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n101");
    hasher.update(message(s));
    hasher.finalize().into()
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Not a signature: r or s out of range or zero, high s, a bad `v`, or no key recovers.
    Malformed,
    /// A valid signature by this other address.
    WrongSigner(Address),
}

/// The address whose key signed `digest` with `signature`.
pub fn recover(digest: &[u8; 32], signature: &Signature) -> Result<Address, SignatureError> {
    let bytes = &signature.0;
    let sig = EcdsaSignature::from_slice(&bytes[..64]).map_err(|_| SignatureError::Malformed)?;
    let recovery = match bytes[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(SignatureError::Malformed),
    };
    let recovery = RecoveryId::from_byte(recovery).ok_or(SignatureError::Malformed)?;
    let key =
        VerifyingKey::recover_from_prehash(digest, &sig, recovery).map_err(|_| SignatureError::Malformed)?;
    Ok(address_of(&key))
}

/// Checks that `signed` carries a signature of its statement by `statement.exit`.
pub fn verify(statement: &Statement, signature: &Signature) -> Result<(), SignatureError> {
    let signer = recover(&digest(statement), signature)?;
    if signer == statement.exit {
        Ok(())
    } else {
        Err(SignatureError::WrongSigner(signer))
    }
}

/// The Ethereum address of a public key.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    Address(out)
}

/// Signs like the shell's adapter does, for tests of the pure layers (RFC 6979: deterministic,
/// no randomness).
#[cfg(test)]
pub(crate) fn sign_for_test(secret: &[u8; 32], s: &Statement) -> Signature {
    let key = k256::ecdsa::SigningKey::from_slice(secret).expect("test keys are valid");
    let (sig, recovery) = key.sign_prehash_recoverable(&digest(s)).expect("signing a digest succeeds");
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + recovery.to_byte();
    Signature(out)
}

/// The address of a test secret.
#[cfg(test)]
pub(crate) fn address_for_test(secret: &[u8; 32]) -> Address {
    let key = k256::ecdsa::SigningKey::from_slice(secret).expect("test keys are valid");
    address_of(key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::chain::Amount;

    fn statement() -> Statement {
        Statement {
            user: Address([0x22; 20]),
            exit: address_for_test(&[7; 32]),
            seq: 3,
            download_bytes: 0x0102_0304,
            upload_bytes: 5,
            amount_due: Amount(1 << 70),
        }
    }

    #[test]
    fn the_message_layout_is_exactly_as_documented() {
        let s = statement();
        let m = message(&s);
        assert_eq!(&m[..21], b"lastmile-statement-v1");
        assert_eq!(&m[21..41], &s.exit.0);
        assert_eq!(&m[41..61], &[0x22; 20]);
        assert_eq!(&m[61..69], &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&m[69..77], &[0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(&m[77..85], &[0, 0, 0, 0, 0, 0, 0, 5]);
        let mut amount = [0u8; 16];
        amount[7] = 0x40;
        assert_eq!(&m[85..], &amount);
    }

    #[test]
    fn keccak_is_ethereums() {
        // keccak256 of the empty string, as every Ethereum client has it.
        let hex: String = keccak256(b"").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    }

    #[test]
    fn high_s_twins_are_refused() {
        let s = statement();
        let sig = sign_for_test(&[7; 32], &s);
        let ecdsa = EcdsaSignature::from_slice(&sig.0[..64]).expect("a signature");
        let (r, low_s) = ecdsa.split_scalars();
        let high_s = -*low_s.as_ref();
        let twin = EcdsaSignature::from_scalars(r.to_bytes(), high_s.to_bytes()).expect("in range");
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&twin.to_bytes());
        bytes[64] = sig.0[64] ^ 1;
        assert_eq!(verify(&s, &Signature(bytes)), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_signature_recovers_to_its_signer_and_nothing_else_passes() {
        let s = statement();
        let sig = sign_for_test(&[7; 32], &s);
        assert_eq!(verify(&s, &sig), Ok(()));
        let other = sign_for_test(&[8; 32], &s);
        assert_eq!(verify(&s, &other), Err(SignatureError::WrongSigner(address_for_test(&[8; 32]))));
        let mut changed = s;
        changed.amount_due = Amount(s.amount_due.0 + 1);
        assert!(matches!(verify(&changed, &sig), Err(SignatureError::WrongSigner(_))));
        let mut bad_v = sig;
        bad_v.0[64] = 29;
        assert_eq!(verify(&s, &bad_v), Err(SignatureError::Malformed));
        assert_eq!(verify(&s, &Signature([0; 65])), Err(SignatureError::Malformed));
        assert_eq!(verify(&s, &Signature([0xff; 65])), Err(SignatureError::Malformed));
    }
}
