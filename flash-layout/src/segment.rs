//! Segment files: a fixed 32-byte header, then frames back to back (FORMAT.md "Segment").
//!
//! ```text
//! offset  size  field
//! 0       4     magic "LMSG"
//! 4       1     format version: 1, or 2 for a segment that may hold hole frames
//! 5       1     header length = 32
//! 6       2     reserved, zero
//! 8       8     base seq, u64 LE: seq of the first record in the segment (>= 1)
//! 16      12    reserved, zero
//! 28      4     CRC32C of bytes 0..28, u32 LE
//! ```
//!
//! Files are named `seg-{base_seq:016x}.log` so that a sorted listing is log order.

use thiserror::Error;

pub const SEGMENT_MAGIC: [u8; 4] = *b"LMSG";
/// The format of segments the log writes.
pub const SEGMENT_FORMAT_VERSION: u8 = 1;
/// The format of a segment recovery rewrote with hole frames in it. Logs that were never
/// damaged stay format 1, readable by builds that predate holes.
pub const SEGMENT_FORMAT_WITH_HOLES: u8 = 2;
pub const SEGMENT_HEADER_LEN: u64 = 32;

/// Why the first 32 bytes of a segment file are not a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("segment shorter than its {SEGMENT_HEADER_LEN}-byte header ({0} bytes)")]
    Short(u64),
    #[error("bad segment magic")]
    BadMagic,
    #[error("unsupported segment format version {0}")]
    BadFormatVersion(u8),
    #[error("unexpected header length {0}")]
    BadHeaderLen(u8),
    #[error("segment header CRC mismatch")]
    BadCrc,
    #[error("base seq 0 is reserved")]
    BaseSeqZero,
    #[error("base seq {header} does not match the file name's {name}")]
    NameMismatch { header: u64, name: u64 },
}

/// A valid segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub base_seq: u64,
    pub format: u8,
}

impl SegmentHeader {
    /// Whether hole frames may appear in this segment.
    pub fn holes_allowed(&self) -> bool {
        self.format >= SEGMENT_FORMAT_WITH_HOLES
    }
}

/// The header of the segment whose first record is `base_seq`.
pub fn encode_header(base_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    encode_header_format(base_seq, SEGMENT_FORMAT_VERSION)
}

/// The header of a segment of the given format version.
pub fn encode_header_format(base_seq: u64, format: u8) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = format;
    h[5] = SEGMENT_HEADER_LEN as u8;
    h[8..16].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes and checks a segment header from the start of a file's bytes; returns the base seq.
/// See [`decode_segment_header`] for the format too.
pub fn decode_header(bytes: &[u8]) -> Result<u64, HeaderError> {
    decode_segment_header(bytes).map(|h| h.base_seq)
}

/// Decodes and checks a segment header from the start of a file's bytes.
///
/// A file whose first bytes disagree with the magic is `BadMagic` even when it is too short for
/// a header (it is not a segment); `Short` is for a file that holds a prefix of the magic.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let magic = bytes.len().min(SEGMENT_MAGIC.len());
    if bytes[..magic] != SEGMENT_MAGIC[..magic] {
        return Err(HeaderError::BadMagic);
    }
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN as usize) else {
        return Err(HeaderError::Short(bytes.len() as u64));
    };
    let stored = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if crc32c::crc32c(&h[..28]) != stored {
        return Err(HeaderError::BadCrc);
    }
    if !(SEGMENT_FORMAT_VERSION..=SEGMENT_FORMAT_WITH_HOLES).contains(&h[4]) {
        return Err(HeaderError::BadFormatVersion(h[4]));
    }
    if u64::from(h[5]) != SEGMENT_HEADER_LEN {
        return Err(HeaderError::BadHeaderLen(h[5]));
    }
    let mut base = [0u8; 8];
    base.copy_from_slice(&h[8..16]);
    let base = u64::from_le_bytes(base);
    if base == 0 {
        return Err(HeaderError::BaseSeqZero);
    }
    Ok(SegmentHeader { base_seq: base, format: h[4] })
}

/// The file name of the segment starting at `base_seq`.
pub fn segment_name(base_seq: u64) -> String {
    format!("seg-{base_seq:016x}.log")
}

/// The base seq in a segment file name, or `None` if the name is not a segment's (base seq 0
/// is none: seqs start at 1).
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().filter(|&base| base != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden header for base seq 1. Also printed in FORMAT.md.
    const GOLDEN: [u8; 32] = [
        0x4C, 0x4D, 0x53, 0x47, 0x01, 0x20, 0x00, 0x00, //
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x5F, 0x03, 0x7D, 0xFF, //
    ];

    #[test]
    fn golden_encode() {
        assert_eq!(encode_header(1), GOLDEN, "{:02X?}", encode_header(1));
    }

    #[test]
    fn golden_decode() {
        assert_eq!(decode_header(&GOLDEN), Ok(1));
    }

    #[test]
    fn format_two_is_read_and_three_refused() {
        let h = encode_header_format(9, SEGMENT_FORMAT_WITH_HOLES);
        assert_eq!(decode_segment_header(&h), Ok(SegmentHeader { base_seq: 9, format: 2 }));
        assert!(decode_segment_header(&h).unwrap().holes_allowed());
        assert!(!decode_segment_header(&GOLDEN).unwrap().holes_allowed());
        assert_eq!(decode_header(&encode_header_format(9, 3)), Err(HeaderError::BadFormatVersion(3)));
    }

    #[test]
    fn roundtrip_large_base() {
        let h = encode_header(0x0123_4567_89AB_CDEF);
        assert_eq!(decode_header(&h), Ok(0x0123_4567_89AB_CDEF));
    }

    #[test]
    fn errors() {
        assert_eq!(decode_header(&GOLDEN[..31]), Err(HeaderError::Short(31)));
        let mut b = GOLDEN;
        b[0] = b'X';
        assert_eq!(decode_header(&b), Err(HeaderError::BadMagic));
        let mut b = GOLDEN;
        b[9] = 1;
        assert_eq!(decode_header(&b), Err(HeaderError::BadCrc));
        assert_eq!(decode_header(&[0u8; 32]), Err(HeaderError::BadMagic));
        // A file too short for a header but whose bytes disagree with the magic is not ours.
        assert_eq!(decode_header(b"LMX"), Err(HeaderError::BadMagic));
        assert_eq!(decode_header(b"hello"), Err(HeaderError::BadMagic));
        assert_eq!(decode_header(b"LM"), Err(HeaderError::Short(2)));
        assert_eq!(decode_header(b""), Err(HeaderError::Short(0)));
        assert_eq!(decode_header(&encode_header(0)), Err(HeaderError::BaseSeqZero));
    }

    #[test]
    fn names_sort_in_seq_order_and_parse_back() {
        let mut names: Vec<String> =
            [300u64, 1, 0x1_0000_0000, 17].iter().map(|&s| segment_name(s)).collect();
        names.sort();
        let bases: Vec<u64> = names.iter().map(|n| parse_segment_name(n).unwrap()).collect();
        assert_eq!(bases, vec![1, 17, 300, 0x1_0000_0000]);
        assert_eq!(segment_name(1), "seg-0000000000000001.log");
        for bad in [
            "seg-1.log",
            "seg-000000000000000G.log",
            "seg-0000000000000001.log.tmp",
            "seg-000000000000000A.log",
            "seg-0000000000000000.log",
            "x",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
