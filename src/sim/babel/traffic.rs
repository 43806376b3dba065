//! Counting control traffic: Babel payload and packets as sent, what the IPv6 and UDP
//! headers add on the wire, and the same packets as babeld would have encoded them.

use crate::wire::babel::{decode, RouterId, Tlv};

/// IPv6 (40) and UDP (8) headers of every Babel packet on the wire.
pub const IP_UDP_HEADER_BYTES: u64 = 48;
/// A Router-Id TLV: type, length, 2 reserved bytes and the 8-byte id.
pub const ROUTER_ID_TLV_BYTES: u64 = 12;

/// Control traffic sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    /// Babel payload (UDP payload) bytes.
    pub payload_bytes: u64,
    /// The same packets in babeld's encoding (only with [`SimConfig::babeld_accounting`](super::SimConfig::babeld_accounting)).
    pub babeld_like_bytes: u64,
    /// Update TLVs sent, packets carrying at least one, their payload bytes and those bytes
    /// in babeld's encoding (only with [`SimConfig::babeld_accounting`](super::SimConfig::babeld_accounting)): the part of the
    /// traffic that grows with the number of routes.
    pub updates: u64,
    pub update_packets: u64,
    pub update_payload_bytes: u64,
    pub babeld_like_update_bytes: u64,
    /// Packets lost to link loss.
    pub lost: u64,
    /// Packets sent into a link that was down or to an address that is not the peer's; in
    /// [`BabelSim::total`](super::BabelSim::total) also those that arrived at a node that
    /// was down or over a link that had gone down.
    pub dropped: u64,
}

impl Traffic {
    /// Bytes on the wire: payload plus IPv6 and UDP headers.
    pub fn wire_bytes(&self) -> u64 {
        self.payload_bytes + IP_UDP_HEADER_BYTES * self.packets
    }

    pub fn babeld_like_wire_bytes(&self) -> u64 {
        self.babeld_like_bytes + IP_UDP_HEADER_BYTES * self.packets
    }

    /// Wire bytes of the packets that carry updates (ours, or babeld's encoding).
    pub fn update_wire_bytes(&self, babeld_like: bool) -> u64 {
        let payload = if babeld_like { self.babeld_like_update_bytes } else { self.update_payload_bytes };
        payload + IP_UDP_HEADER_BYTES * self.update_packets
    }

    pub(super) fn add(&mut self, o: &Traffic) {
        self.packets += o.packets;
        self.payload_bytes += o.payload_bytes;
        self.babeld_like_bytes += o.babeld_like_bytes;
        self.updates += o.updates;
        self.update_packets += o.update_packets;
        self.update_payload_bytes += o.update_payload_bytes;
        self.babeld_like_update_bytes += o.babeld_like_update_bytes;
        self.lost += o.lost;
        self.dropped += o.dropped;
    }

    /// What was sent since `earlier`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            packets: self.packets - earlier.packets,
            payload_bytes: self.payload_bytes - earlier.payload_bytes,
            babeld_like_bytes: self.babeld_like_bytes - earlier.babeld_like_bytes,
            updates: self.updates - earlier.updates,
            update_packets: self.update_packets - earlier.update_packets,
            update_payload_bytes: self.update_payload_bytes - earlier.update_payload_bytes,
            babeld_like_update_bytes: self.babeld_like_update_bytes - earlier.babeld_like_update_bytes,
            lost: self.lost - earlier.lost,
            dropped: self.dropped - earlier.dropped,
        }
    }
}

/// Traffic over a window of virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
    pub nodes: usize,
    pub traffic: Traffic,
}

impl Window {
    fn per_node_per_s(&self, bytes: u64) -> f64 {
        bytes as f64 * 1000.0 / (self.nodes.max(1) as f64 * (self.to_ms - self.from_ms).max(1) as f64)
    }

    /// Babel payload bytes per node per second.
    pub fn payload_bytes_per_node_s(&self) -> f64 {
        self.per_node_per_s(self.traffic.payload_bytes)
    }

    /// Bytes on the wire (headers included) per node per second.
    pub fn wire_bytes_per_node_s(&self) -> f64 {
        self.per_node_per_s(self.traffic.wire_bytes())
    }

    pub fn babeld_like_wire_bytes_per_node_s(&self) -> f64 {
        self.per_node_per_s(self.traffic.babeld_like_wire_bytes())
    }

    /// Wire bytes per node per second of the packets carrying updates.
    pub fn update_wire_bytes_per_node_s(&self, babeld_like: bool) -> f64 {
        self.per_node_per_s(self.traffic.update_wire_bytes(babeld_like))
    }
}

/// Length of a LEB128 encoding of `v`.
fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// What the Babel packet `bytes` would take in babeld's encoding, and how many Update TLVs
/// it holds: without lastmile's route-vector sub-TLVs, and with a Router-Id TLV
/// ([`ROUTER_ID_TLV_BYTES`]) before every announcement whose router-id our encoder took from
/// the prefix (flag 0x40, which babeld does not use). Prefix compression is kept as ours.
pub fn babeld_like_len(bytes: &[u8]) -> (usize, usize) {
    let Ok(decoded) = decode(bytes) else { return (bytes.len(), 0) };
    let mut len = bytes.len() as u64;
    let mut updates = 0;
    for tlv in &decoded.packet.tlvs {
        let Tlv::Update(u) = tlv else { continue };
        updates += 1;
        if let Some(v) = &u.vector {
            len -= 2
                + varint_len(v.price_per_byte)
                + varint_len(u64::from(v.rtt_us))
                + varint_len(u64::from(v.loss_micro_nepers));
        }
        if let Some(p) = &u.prefix {
            if !u.is_retraction() && u.router_id == RouterId::from_prefix(p) {
                len += ROUTER_ID_TLV_BYTES;
            }
        }
    }
    (len as usize, updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_counted_like_the_codec_writes_them() {
        assert_eq!([0, 127, 128, 16_383, 16_384, u64::MAX].map(varint_len), [1, 1, 2, 2, 3, 10]);
    }
}
