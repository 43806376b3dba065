//! FORMAT.md's hex examples are the golden bytes: they must decode to the documented values
//! and equal what the encoders produce (FORMAT.md "Segment header", "Record frame", "Hole
//! frame").

use flash_layout::frame;
use flash_layout::segment;

const FORMAT_MD: &str = include_str!("../FORMAT.md");

/// The bytes in the fenced block tagged `tag`.
fn block(tag: &str) -> Vec<u8> {
    let start =
        FORMAT_MD.find(&format!("```{tag}\n")).unwrap_or_else(|| panic!("no {tag} block")) + tag.len() + 4;
    let end = start + FORMAT_MD[start..].find("```").unwrap();
    FORMAT_MD[start..end].split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
}

#[test]
fn segment_header_example() {
    let bytes = block("golden-segment-header");
    assert_eq!(bytes, segment::encode_header(1));
    assert_eq!(segment::decode_header(&bytes), Ok(1));
}

#[test]
fn frame_example() {
    let bytes = block("golden-frame");
    let mut encoded = Vec::new();
    frame::encode(&mut encoded, 1, 1, b"hi").unwrap();
    assert_eq!(bytes, encoded);
    let (rec, len) = frame::decode(&bytes, 1).unwrap();
    assert_eq!((rec.seq, rec.version, rec.payload, len), (1, 1, &b"hi"[..], 10));
}

#[test]
fn hole_frame_example() {
    let bytes = block("golden-hole");
    let mut encoded = Vec::new();
    frame::encode_hole(&mut encoded, 5, 3);
    assert_eq!(bytes, encoded);
    let (f, len) = frame::decode_frame(&bytes, 5, true).unwrap();
    assert_eq!((f, len), (frame::Frame::Hole { seq: 5, count: 3 }, 16));
}
