//! Which seq makes a frame's CRC verify, in constant time: what lets recovery resynchronise
//! after damage of any size (FORMAT.md "Recovery").
//!
//! A frame's CRC is `CRC32C(seq u64 LE ‖ rest)` (`rest` = version ‖ len ‖ payload). When
//! recovery looks for the next intact frame after damaged bytes, it does not know how many
//! records the damage swallowed, so it does not know the seq to check a candidate frame with.
//! Trying every seq in a window costs a CRC combine per seq per byte offset; this module
//! solves for the seq instead.
//!
//! The algebra (over GF(2), CRC registers as 32-bit vectors):
//! - `CRC(A ‖ B) = Z(|B|) · CRC(A) ⊕ CRC(B)` where `Z(n)` is the linear operator that feeds
//!   `n` zero bytes through the register (zlib's `crc32_combine`).
//! - For 8-byte messages the CRC is affine in the message bits: `CRC(s) = M · s ⊕ CRC(0)`,
//!   where `M` is 32 × 64.
//!
//! So `stored = Z · (M · s ⊕ CRC(0)) ⊕ CRC(rest)`, i.e. `M · s = Z⁻¹ · (stored ⊕ CRC(rest)) ⊕
//! CRC(0)`. With the high 32 bits of `s` fixed (a window never spans more than two values
//! of them), the low 32 bits are `M_lo⁻¹ · (…)`: `M_lo`, the CRC of the first four bytes
//! of an 8-byte message, is invertible because a CRC is a bijection on any 32-bit window.
//! One candidate seq per high half; the caller checks it lies in the window and, as for any
//! frame, that the CRC really verifies. (So every high half has exactly one seq that fits any
//! CRC: a window of 2^32 seqs always matches. Recovery's windows are bounded by the damaged
//! bytes / 8, and it also requires the frame after a match to verify.)

/// A 32 × 32 matrix over GF(2): column `i` is the image of bit `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gf2([u32; 32]);

impl Gf2 {
    fn identity() -> Self {
        let mut m = [0u32; 32];
        for (i, col) in m.iter_mut().enumerate() {
            *col = 1 << i;
        }
        Gf2(m)
    }

    fn times(&self, mut v: u32) -> u32 {
        let mut out = 0;
        let mut i = 0;
        while v != 0 {
            if v & 1 == 1 {
                out ^= self.0[i];
            }
            v >>= 1;
            i += 1;
        }
        out
    }

    /// `self · other`.
    fn compose(&self, other: &Gf2) -> Gf2 {
        let mut m = [0u32; 32];
        for (i, col) in m.iter_mut().enumerate() {
            *col = self.times(other.0[i]);
        }
        Gf2(m)
    }

    /// The inverse, by Gauss-Jordan elimination on the rows; `None` if singular.
    fn invert(&self) -> Option<Gf2> {
        // rows[r] bit c = entry (r, c); augmented with the identity.
        let mut rows = [0u32; 32];
        for (c, col) in self.0.iter().enumerate() {
            for (r, row) in rows.iter_mut().enumerate() {
                *row |= ((col >> r) & 1) << c;
            }
        }
        let mut inv: [u32; 32] = Gf2::identity().0; // as rows, identity is symmetric
        for c in 0..32 {
            let pivot = (c..32).find(|&r| (rows[r] >> c) & 1 == 1)?;
            rows.swap(c, pivot);
            inv.swap(c, pivot);
            for r in 0..32 {
                if r != c && (rows[r] >> c) & 1 == 1 {
                    rows[r] ^= rows[c];
                    inv[r] ^= inv[c];
                }
            }
        }
        // Back from rows to columns.
        let mut cols = [0u32; 32];
        for (r, row) in inv.iter().enumerate() {
            for (c, col) in cols.iter_mut().enumerate() {
                *col |= ((row >> c) & 1) << r;
            }
        }
        Some(Gf2(cols))
    }
}

/// The operator that feeds one zero bit through the reflected CRC-32C register.
fn one_zero_bit() -> Gf2 {
    let mut m = [0u32; 32];
    m[0] = 0x82F6_3B78; // the reflected Castagnoli polynomial
    for (i, col) in m.iter_mut().enumerate().skip(1) {
        *col = 1 << (i - 1);
    }
    Gf2(m)
}

/// `Z(n)`: `n` zero bytes through the register, by repeated squaring.
fn zeros(mut n: u64) -> Gf2 {
    let mut out = Gf2::identity();
    let bit = one_zero_bit();
    let mut power = bit.compose(&bit); // 2 bits
    power = power.compose(&power); // 4 bits
    power = power.compose(&power); // 8 bits = one byte
    while n != 0 {
        if n & 1 == 1 {
            out = power.compose(&out);
        }
        power = power.compose(&power);
        n >>= 1;
    }
    out
}

/// The constant parts of the solve: `M_lo⁻¹`, `M_hi`, `CRC(0)` for 8-byte messages.
struct Seqs {
    lo_inverse: Gf2,
    hi: Gf2,
    crc_zero: u32,
}

fn seqs() -> &'static Seqs {
    static SEQS: std::sync::OnceLock<Seqs> = std::sync::OnceLock::new();
    SEQS.get_or_init(|| {
        let crc_zero = crc32c::crc32c(&[0u8; 8]);
        let column = |bit: u32| crc32c::crc32c(&(1u64 << bit).to_le_bytes()) ^ crc_zero;
        let mut lo = [0u32; 32];
        let mut hi = [0u32; 32];
        for i in 0..32 {
            lo[i as usize] = column(i);
            hi[i as usize] = column(32 + i);
        }
        // A CRC is a bijection on any 32 consecutive message bits: this never fails.
        let lo_inverse = Gf2(lo).invert().expect("the CRC of 4 message bytes is invertible");
        Seqs { lo_inverse, hi: Gf2(hi), crc_zero }
    })
}

/// Solves frames for their seq, caching `Z(n)⁻¹` per length (frames of one log have few
/// distinct lengths).
#[derive(Default)]
pub(crate) struct Solver {
    inverses: std::collections::BTreeMap<u64, Gf2>,
}

/// Lengths cached at most (each costs 128 bytes).
const CACHE_LENGTHS: usize = 512;

impl Solver {
    /// The seq `s` in `lo..=hi` for which `CRC32C(s u64 LE ‖ rest) == stored`, where
    /// `rest_crc` is `CRC32C(rest)` and `rest_len` its length. `None` if no seq in the range
    /// fits. The range may be anything; at most two candidates are computed.
    pub(crate) fn seq_for_crc(
        &mut self,
        stored: u32,
        rest_crc: u32,
        rest_len: u64,
        lo: u64,
        hi: u64,
    ) -> Option<u64> {
        if lo > hi {
            return None;
        }
        if self.inverses.len() >= CACHE_LENGTHS {
            self.inverses.clear();
        }
        let z_inverse = match self.inverses.get(&rest_len) {
            Some(z) => *z,
            None => {
                // `Z(n)` is a power of an invertible operator: never singular.
                let z = zeros(rest_len).invert()?;
                self.inverses.insert(rest_len, z);
                z
            }
        };
        solve(&z_inverse, stored ^ rest_crc, lo, hi)
    }
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Solver({} lengths cached)", self.inverses.len())
    }
}

/// See [`Solver::seq_for_crc`]; `x` is `stored ⊕ CRC(rest)`.
fn solve(z_inverse: &Gf2, x: u32, lo: u64, hi: u64) -> Option<u64> {
    let k = seqs();
    // M · s = target
    let target = z_inverse.times(x) ^ k.crc_zero;
    let (hi_first, hi_last) = ((lo >> 32) as u32, (hi >> 32) as u32);
    let mut high = hi_first;
    loop {
        let low = k.lo_inverse.times(target ^ k.hi.times(high));
        let s = (u64::from(high) << 32) | u64::from(low);
        if (lo..=hi).contains(&s) {
            return Some(s);
        }
        if high == hi_last {
            return None;
        }
        // A range wider than 2^32 seqs: only its first two high halves are tried. Frames are
        // at least 8 bytes, so no damaged region of a segment swallows that many seqs.
        if high != hi_first {
            return None;
        }
        high += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc_with_seq(seq: u64, rest: &[u8]) -> u32 {
        crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), rest)
    }

    fn seq_for_crc(stored: u32, rest_crc: u32, rest_len: u64, lo: u64, hi: u64) -> Option<u64> {
        Solver::default().seq_for_crc(stored, rest_crc, rest_len, lo, hi)
    }

    #[test]
    fn zeros_matches_the_crate_combine() {
        for n in [0u64, 1, 3, 8, 100, 65_538] {
            for a in [0u32, 1, 0xDEAD_BEEF, u32::MAX] {
                let want = crc32c::crc32c_combine(a, 0, n as usize);
                assert_eq!(zeros(n).times(a), want, "n={n} a={a:#x}");
            }
        }
    }

    #[test]
    fn inverse_is_an_inverse() {
        let z = zeros(1234);
        let inv = z.invert().unwrap();
        assert_eq!(z.compose(&inv), Gf2::identity());
    }

    #[test]
    fn finds_the_seq_a_frame_was_written_with() {
        let rests: [&[u8]; 3] = [b"\x01\x00\x00", b"\x02\x05\x00hello", &[7u8; 300]];
        for rest in rests {
            for seq in [1u64, 2, 77, 5_000, 0xFFFF_FFFF, 0x1_0000_0000, 0x1234_5678_9ABC] {
                let stored = crc_with_seq(seq, rest);
                let rest_crc = crc32c::crc32c(rest);
                let n = rest.len() as u64;
                assert_eq!(seq_for_crc(stored, rest_crc, n, seq, seq), Some(seq));
                assert_eq!(seq_for_crc(stored, rest_crc, n, seq.saturating_sub(1000), seq + 1000), Some(seq));
                assert_eq!(seq_for_crc(stored, rest_crc, n, seq + 1, seq + 1000), None);
                // Each high half of the seq has exactly one low half that fits any CRC, so
                // only windows well below 2^32 seqs discriminate (recovery's always are).
                if seq > 0 && seq < 1 << 24 {
                    assert_eq!(seq_for_crc(stored, rest_crc, n, 0, seq - 1), None);
                }
            }
        }
    }

    #[test]
    fn agrees_with_brute_force_on_random_crcs() {
        // For arbitrary stored CRCs, the solver and an exhaustive search over a window agree.
        let rest = b"\x03\x04\x00abcd";
        let rest_crc = crc32c::crc32c(rest);
        let mut x = 0x9E37_79B9u32;
        for _ in 0..200 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let (lo, hi) = (1_000u64, 3_000u64);
            let brute = (lo..=hi).find(|&s| crc_with_seq(s, rest) == x);
            assert_eq!(seq_for_crc(x, rest_crc, rest.len() as u64, lo, hi), brute);
        }
        // And a window across a 2^32 boundary.
        let seq = (3u64 << 32) + 5;
        let stored = crc_with_seq(seq, rest);
        assert_eq!(
            seq_for_crc(stored, rest_crc, rest.len() as u64, (3 << 32) - 10, (3 << 32) + 10),
            Some(seq)
        );
    }
}
