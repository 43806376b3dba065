//! Pure codecs for what crosses the network: Babel packets with lastmile's route-vector
//! extension, discovery hellos and billing messages. Nothing crosses the network yet; the
//! Babel codec arrives with the routing work (issue 4). The event log's own encoding is in
//! [`crate::events::codec`], because it is part of the vocabulary, not of a protocol.
