//! The record frame: an 8-byte header, then the payload (FORMAT.md "Record frame").
//!
//! ```text
//! offset  size  field
//! 0       1     magic   = FRAME_MAGIC (0xA7)
//! 1       1     version   event schema version, opaque here, >= 1
//! 2       2     len       payload length, u16 LE
//! 4       4     crc       CRC32C(seq u64 LE ++ version ++ len LE ++ payload), u32 LE
//! 8       len   payload
//! ```
//!
//! The seq is not stored: it is known from the record's position (segment base + index).
//! Covering it with the CRC makes a frame copied to the wrong place fail its check.
//!
//! A *hole frame* (magic [`HOLE_MAGIC`], only in segments of format version 2) stands where
//! recovery removed damaged bytes: it says that seqs `seq..seq + count` hold no record and
//! never will, so no later record reuses them (FORMAT.md "Hole frame").

use thiserror::Error;

/// First byte of every record frame.
pub const FRAME_MAGIC: u8 = 0xA7;
/// First byte of a hole frame.
pub const HOLE_MAGIC: u8 = 0xA8;
/// The version byte of a hole frame (a kind, not an event schema version): 0, which no record
/// has. The magic is not under the CRC, so a hole whose magic rot turned into a record's reads
/// as a record of version 0, which is refused, never as a record.
pub(crate) const HOLE_KIND: u8 = 0;
/// Total size of a hole frame: header + a u64 count.
pub const HOLE_FRAME_LEN: u64 = FRAME_HEADER_LEN + 8;
/// Bytes of frame header before the payload.
pub const FRAME_HEADER_LEN: u64 = 8;
/// Largest payload a frame can carry (the length field is a u16).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

/// Why bytes are not a valid frame, or why a record cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("fewer than 8 header bytes remain")]
    ShortHeader,
    #[error("bad frame magic {0:#04x}")]
    BadMagic(u8),
    #[error("version 0 is reserved")]
    VersionZero,
    #[error("payload of {len} bytes runs past the end ({available} bytes available)")]
    LengthPastEnd { len: u64, available: u64 },
    #[error("CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadCrc { stored: u32, computed: u32 },
    #[error("payload of {0} bytes exceeds the 65535-byte limit")]
    PayloadTooLarge(usize),
    /// A frame with the hole magic whose kind, length or count is not a hole's, or a hole
    /// frame where none may be (a format-1 segment).
    #[error("malformed or misplaced hole frame")]
    BadHole,
}

/// A decoded frame: a record, or a hole left by recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Record(Record<'a>),
    /// Seqs `seq..seq + count` hold no record (`count >= 1`).
    Hole {
        seq: u64,
        count: u64,
    },
}

impl Frame<'_> {
    /// The seq the frame after this one has.
    pub fn next_seq(&self) -> u64 {
        match self {
            Frame::Record(r) => r.seq + 1,
            Frame::Hole { seq, count } => seq + count,
        }
    }
}

/// One decoded record, borrowing its payload from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub version: u8,
    pub payload: &'a [u8],
}

/// The CRC32C of a frame at `seq` (FORMAT.md "CRC coverage").
pub fn frame_crc(seq: u64, version: u8, payload: &[u8]) -> u32 {
    // Only called with payloads checked against MAX_PAYLOAD_LEN, or read from a u16 field.
    let len = payload.len() as u16;
    let mut head = [0u8; 11];
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8] = version;
    head[9..11].copy_from_slice(&len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// Total on-flash size of a frame carrying `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN + payload_len as u64
}

/// Checks that a record can be framed.
pub fn check_record(version: u8, payload: &[u8]) -> Result<(), FrameError> {
    if version == 0 {
        return Err(FrameError::VersionZero);
    }
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    Ok(())
}

/// Appends the frame of record `seq` to `out`. Nothing is appended on error.
pub fn encode(out: &mut Vec<u8>, seq: u64, version: u8, payload: &[u8]) -> Result<(), FrameError> {
    check_record(version, payload)?;
    let len = payload.len() as u16; // checked above
    out.reserve(FRAME_HEADER_LEN as usize + payload.len());
    out.push(FRAME_MAGIC);
    out.push(version);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(seq, version, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the hole frame for seqs `seq..seq + count` to `out` (`count >= 1`).
pub fn encode_hole(out: &mut Vec<u8>, seq: u64, count: u64) {
    debug_assert!(count >= 1, "an empty hole");
    let payload = count.to_le_bytes();
    out.push(HOLE_MAGIC);
    out.push(HOLE_KIND);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&frame_crc(seq, HOLE_KIND, &payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes the frame at the start of `bytes` whose seq is `seq`: a record, or (only where
/// `holes` is allowed) a hole frame. Returns it and the frame's total length. `bytes` is
/// untrusted.
pub fn decode_frame(bytes: &[u8], seq: u64, holes: bool) -> Result<(Frame<'_>, u64), FrameError> {
    if bytes.first() != Some(&HOLE_MAGIC) {
        return decode(bytes, seq).map(|(r, len)| (Frame::Record(r), len));
    }
    if !holes {
        return Err(FrameError::BadMagic(HOLE_MAGIC));
    }
    let Some(h) = bytes.get(..HOLE_FRAME_LEN as usize) else {
        return Err(FrameError::ShortHeader);
    };
    let len = u16::from_le_bytes([h[2], h[3]]);
    if h[1] != HOLE_KIND || u64::from(len) != HOLE_FRAME_LEN - FRAME_HEADER_LEN {
        return Err(FrameError::BadHole);
    }
    let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let payload = &h[FRAME_HEADER_LEN as usize..];
    let computed = frame_crc(seq, HOLE_KIND, payload);
    if computed != stored {
        return Err(FrameError::BadCrc { stored, computed });
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(payload);
    let count = u64::from_le_bytes(c);
    if count == 0 || seq.checked_add(count).is_none() {
        return Err(FrameError::BadHole);
    }
    Ok((Frame::Hole { seq, count }, HOLE_FRAME_LEN))
}

/// Decodes the record frame at the start of `bytes`, expected to hold record `seq`.
/// Returns the record and the frame's total length. `bytes` is untrusted.
pub fn decode(bytes: &[u8], seq: u64) -> Result<(Record<'_>, u64), FrameError> {
    let Some(header) = bytes.get(..FRAME_HEADER_LEN as usize) else {
        return Err(FrameError::ShortHeader);
    };
    if header[0] != FRAME_MAGIC {
        return Err(FrameError::BadMagic(header[0]));
    }
    let version = header[1];
    let len = u16::from_le_bytes([header[2], header[3]]) as usize;
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body = &bytes[FRAME_HEADER_LEN as usize..];
    let Some(payload) = body.get(..len) else {
        return Err(FrameError::LengthPastEnd { len: len as u64, available: body.len() as u64 });
    };
    let computed = frame_crc(seq, version, payload);
    if computed != stored {
        return Err(FrameError::BadCrc { stored, computed });
    }
    // A version-0 frame with a good CRC was never written by us: reject it all the same.
    if version == 0 {
        return Err(FrameError::VersionZero);
    }
    let record = Record { seq, version, payload };
    Ok((record, frame_len(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden frame: seq 1, version 1, payload "hi". Also printed in FORMAT.md.
    pub(crate) const GOLDEN: [u8; 10] = [0xA7, 0x01, 0x02, 0x00, 0xBC, 0x7F, 0x03, 0x0F, b'h', b'i'];

    #[test]
    fn golden_encode() {
        let mut out = Vec::new();
        encode(&mut out, 1, 1, b"hi").unwrap();
        assert_eq!(out, GOLDEN, "{out:02X?}");
    }

    #[test]
    fn golden_decode() {
        let (rec, len) = decode(&GOLDEN, 1).unwrap();
        assert_eq!(rec, Record { seq: 1, version: 1, payload: b"hi" });
        assert_eq!(len, 10);
    }

    #[test]
    fn wrong_seq_fails_crc() {
        assert!(matches!(decode(&GOLDEN, 2), Err(FrameError::BadCrc { .. })));
    }

    #[test]
    fn bad_magic() {
        let mut b = GOLDEN;
        b[0] = 0;
        assert_eq!(decode(&b, 1).unwrap_err(), FrameError::BadMagic(0));
    }

    #[test]
    fn bad_crc_on_any_flipped_byte() {
        for i in 1..GOLDEN.len() {
            let mut b = GOLDEN;
            b[i] ^= 0x10;
            assert!(decode(&b, 1).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn length_past_end() {
        assert_eq!(decode(&GOLDEN[..9], 1).unwrap_err(), FrameError::LengthPastEnd { len: 2, available: 1 });
        assert_eq!(decode(&GOLDEN[..7], 1).unwrap_err(), FrameError::ShortHeader);
    }

    #[test]
    fn version_zero_rejected_both_ways() {
        let mut out = Vec::new();
        assert_eq!(encode(&mut out, 1, 0, b"x"), Err(FrameError::VersionZero));
        assert!(out.is_empty());
        // Hand-made frame with version 0 and a correct CRC.
        let mut b = vec![FRAME_MAGIC, 0, 1, 0];
        b.extend_from_slice(&frame_crc(1, 0, b"x").to_le_bytes());
        b.push(b'x');
        assert_eq!(decode(&b, 1).unwrap_err(), FrameError::VersionZero);
    }

    /// Golden hole frame: seqs 5..8 (count 3). Also printed in FORMAT.md.
    pub(crate) const GOLDEN_HOLE: [u8; 16] =
        [0xA8, 0x00, 0x08, 0x00, 0xA3, 0x91, 0x03, 0x7E, 0x03, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn golden_hole_both_ways() {
        let mut out = Vec::new();
        encode_hole(&mut out, 5, 3);
        assert_eq!(out, GOLDEN_HOLE, "{out:02X?}");
        let (frame, len) = decode_frame(&GOLDEN_HOLE, 5, true).unwrap();
        assert_eq!((frame, len, frame.next_seq()), (Frame::Hole { seq: 5, count: 3 }, 16, 8));
        // Only where holes may be, only at its own seq, never empty or overflowing.
        assert_eq!(decode_frame(&GOLDEN_HOLE, 5, false).unwrap_err(), FrameError::BadMagic(HOLE_MAGIC));
        assert!(matches!(decode_frame(&GOLDEN_HOLE, 6, true), Err(FrameError::BadCrc { .. })));
        let mut empty = Vec::new();
        let payload = 0u64.to_le_bytes();
        empty.extend_from_slice(&[HOLE_MAGIC, HOLE_KIND, 8, 0]);
        empty.extend_from_slice(&frame_crc(5, HOLE_KIND, &payload).to_le_bytes());
        empty.extend_from_slice(&payload);
        assert_eq!(decode_frame(&empty, 5, true).unwrap_err(), FrameError::BadHole);
        assert_eq!(decode_frame(&GOLDEN_HOLE[..10], 5, true).unwrap_err(), FrameError::ShortHeader);
        // A hole whose magic rot turned into a record's is a record of version 0: refused.
        let mut flipped = GOLDEN_HOLE;
        flipped[0] = FRAME_MAGIC;
        assert_eq!(decode_frame(&flipped, 5, true).unwrap_err(), FrameError::VersionZero);
        // A record frame of 8 payload bytes whose magic turned into a hole's is no hole.
        let mut record = Vec::new();
        encode(&mut record, 5, 1, &3u64.to_le_bytes()).unwrap();
        record[0] = HOLE_MAGIC;
        assert_eq!(decode_frame(&record, 5, true).unwrap_err(), FrameError::BadHole);
        // Record frames decode the same through either function.
        let (frame, _) = decode_frame(&GOLDEN, 1, true).unwrap();
        assert_eq!(frame, Frame::Record(Record { seq: 1, version: 1, payload: b"hi" }));
    }

    #[test]
    fn payload_too_large() {
        let mut out = Vec::new();
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(encode(&mut out, 1, 1, &big), Err(FrameError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1)));
        assert!(out.is_empty());
        let max = vec![7u8; MAX_PAYLOAD_LEN];
        encode(&mut out, 9, 3, &max).unwrap();
        let (rec, len) = decode(&out, 9).unwrap();
        assert_eq!(rec.payload, &max[..]);
        assert_eq!(len, frame_len(MAX_PAYLOAD_LEN));
    }
}
