//! Signs exit usage statements with the payment key: the answer to
//! [`ExitEffect::SignStatement`](crate::events::exit::ExitEffect::SignStatement).
//!
//! The machine decides what to sign; this adapter only signs it, with alloy's local signer
//! (EIP-191 `personal_sign` over the statement's message, exactly the digest
//! [`statement::digest`] defines), and feeds the signature back as
//! [`ExitInput::Signed`]. Verification lives in the pure layers
//! ([`statement::verify`]), so a user checks statements without this adapter.

use crate::events::chain::Address;
use crate::events::exit::{ExitInput, Signature, Statement};
use crate::machines::exit::statement;
use crate::os::keyfile::PaymentKey;
use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use std::fmt;

/// The payment key as a statement signer. Its `Debug` prints only the address.
pub struct StatementSigner {
    signer: PrivateKeySigner,
    address: Address,
}

impl fmt::Debug for StatementSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatementSigner({})", self.address)
    }
}

impl StatementSigner {
    pub fn new(key: &PaymentKey) -> Result<Self, String> {
        let signer = PrivateKeySigner::from_bytes(&B256::from(*key.secret()))
            .map_err(|_| "not a valid secp256k1 private key".to_string())?;
        let address = Address(signer.address().into_array());
        Ok(Self { signer, address })
    }

    /// The address statements must name as their exit.
    pub fn address(&self) -> Address {
        self.address
    }

    /// `r ‖ s ‖ v` over the statement's EIP-191 digest. Refuses a statement that names another
    /// exit: signing it would vouch for what we did not count.
    pub fn sign(&self, s: &Statement) -> Result<Signature, String> {
        if s.exit != self.address {
            return Err(format!("statement names exit {}, we are {}", s.exit, self.address));
        }
        let sig = self.signer.sign_message_sync(&statement::message(s)).map_err(|e| e.to_string())?;
        Ok(Signature(sig.as_bytes()))
    }

    /// The machine's input answering `SignStatement(s)`.
    pub fn answer(&self, s: &Statement) -> Result<ExitInput, String> {
        Ok(ExitInput::Signed { user: s.user, seq: s.seq, signature: self.sign(s)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::chain::Amount;

    #[test]
    fn alloys_eip191_signatures_verify_in_the_pure_layer() {
        let key = PaymentKey::from_bytes([7; 32]).expect("a valid key");
        let signer = StatementSigner::new(&key).expect("a signer");
        let s = Statement {
            user: Address([0x22; 20]),
            exit: signer.address(),
            seq: 9,
            download_bytes: 123_456,
            upload_bytes: 789,
            amount_due: Amount(u128::from(u64::MAX) + 5),
        };
        let signature = signer.sign(&s).expect("signs");
        assert!(matches!(signature.0[64], 27 | 28));
        assert_eq!(statement::verify(&s, &signature), Ok(()));
        // The pure digest is alloy's EIP-191 hash of the message.
        assert_eq!(statement::digest(&s), alloy::primitives::eip191_hash_message(statement::message(&s)).0);
        let mut other = s;
        other.exit = Address([1; 20]);
        assert!(signer.sign(&other).is_err());
        assert_eq!(signer.answer(&s), Ok(ExitInput::Signed { user: s.user, seq: 9, signature }));
        assert!(!format!("{signer:?}").contains("0707"));
    }
}
