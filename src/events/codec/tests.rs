use super::*;
use crate::events::billing::{Enforcement, PaymentFailure, Thresholds};
use crate::events::chain::{Address, Amount, PaymentId, TxHash};
use crate::events::exit::{DisputeReason, Signature, Statement};
use crate::events::incident::IncidentKind;
use crate::events::usage::{CounterReset, Link, NeighbourId, UsageRecord};

fn accrued(price_per_byte: Option<u64>) -> Event {
    Event::Usage(UsageEvent::Accrued(UsageRecord {
        link: Link::new(3, 17),
        tx_bytes: 12_000_000,
        rx_bytes: 11_500_000,
        price_per_byte,
    }))
}

fn hash(b: u8) -> TxHash {
    TxHash([b; 32])
}

fn addr(b: u8) -> Address {
    Address([b; 20])
}

/// `[kind] ++ rest`, for goldens with long runs of address or hash bytes.
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn trust_evidence() -> Event {
    use crate::events::routing::TrustEvidence;
    use crate::wire::babel::Prefix;
    let fd07 = core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7);
    Event::Routing(RoutingEvent::TrustEvidence(TrustEvidence {
        ifindex: 3,
        neighbour: core::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9).octets(),
        prefix: Prefix::new(fd07.into(), 128).expect("valid"),
        advertised_rtt_us: 1000,
        advertised_loss_micro_nepers: 0,
        sent: 20,
        received: 19,
        measured_rtt_us: 40_000,
        worse: true,
        streak: 2,
        trust_permille: 750,
    }))
}

/// (event, exact current-version payload bytes), checked in both directions.
fn golden() -> Vec<(Event, Vec<u8>)> {
    let tx12m = [0xce, 0x00, 0xb7, 0x1b, 0x00];
    let rx11m = [0xce, 0x00, 0xaf, 0x79, 0xe0];
    vec![
        (
            trust_evidence(),
            bytes(&[
                &[0x30, 0x9b, 0x03, 0xc4, 0x10, 0xfe, 0x80],
                &[0; 13],
                &[0x09, 0x92, 0xc4, 0x10, 0xfd],
                &[0; 14],
                &[
                    0x07, 0xcc, 0x80, 0xcd, 0x03, 0xe8, 0x00, 0x14, 0x13, 0xcd, 0x9c, 0x40, 0xc3, 0x02, 0xcd,
                    0x02, 0xee,
                ],
            ]),
        ),
        (accrued(Some(20)), bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0x14]])),
        (accrued(None), bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0xc0]])),
        (
            accrued(Some(300_000)),
            bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0xce, 0x00, 0x04, 0x93, 0xe0]]),
        ),
        (
            Event::Usage(UsageEvent::CounterReset(CounterReset {
                link: Link::new(1, 2),
                tx_reset: true,
                rx_reset: false,
                tx_counted: 1000,
                rx_counted: 7,
                tx_observed: 5,
                rx_observed: 9,
            })),
            vec![0x02, 0x97, 0x92, 0x01, 0x02, 0xc3, 0xc2, 0xcd, 0x03, 0xe8, 0x07, 0x05, 0x09],
        ),
        (
            Event::Incident(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 300 }),
            vec![0x03, 0x92, 0x01, 0xcd, 0x01, 0x2c],
        ),
        (
            Event::Incident(IncidentEvent::Closed { kind: IncidentKind::LogWriteFailed }),
            vec![0x04, 0x91, 0x02],
        ),
        (
            Event::Billing(BillingEvent::PriceAdvertised { link: Link::new(1, 2), price_per_byte: 7 }),
            vec![0x05, 0x92, 0x92, 0x01, 0x02, 0x07],
        ),
        (
            Event::Billing(BillingEvent::NeighbourBound { neighbour: NeighbourId(4), address: addr(0xab) }),
            bytes(&[&[0x10, 0x92, 0x04, 0xc4, 0x14], &[0xab; 20]]),
        ),
        (Event::Billing(BillingEvent::FeeSet { fee_per_byte: 9 }), vec![0x11, 0x91, 0x09]),
        (
            Event::Billing(BillingEvent::ExitDue { neighbour: NeighbourId(9), amount_due: Amount(70_000) }),
            vec![0x1d, 0x92, 0x09, 0xce, 0x00, 0x01, 0x11, 0x70],
        ),
        (
            Event::Billing(BillingEvent::IdentitySet { address: addr(0xcd) }),
            bytes(&[&[0x1c, 0x91, 0xc4, 0x14], &[0xcd; 20]]),
        ),
        (
            Event::Billing(BillingEvent::ThresholdsSet(Thresholds {
                pay: Amount(1000),
                enforce: Amount(u128::MAX),
            })),
            bytes(&[&[0x12, 0x92, 0xcd, 0x03, 0xe8, 0xc4, 0x10], &[0xff; 16]]),
        ),
        (
            Event::Billing(BillingEvent::PaymentIntended {
                id: PaymentId(2),
                neighbour: NeighbourId(4),
                to: addr(1),
                amount: Amount(70_000),
            }),
            bytes(&[&[0x13, 0x94, 0x02, 0x04, 0xc4, 0x14], &[0x01; 20], &[0xce, 0x00, 0x01, 0x11, 0x70]]),
        ),
        (
            Event::Billing(BillingEvent::PaymentSigned {
                id: PaymentId(2),
                nonce: 5,
                tx_hash: hash(0xee),
                raw: vec![0xf8, 0x6b, 0x01],
            }),
            bytes(&[&[0x14, 0x94, 0x02, 0x05, 0xc4, 0x20], &[0xee; 32], &[0xc4, 0x03, 0xf8, 0x6b, 0x01]]),
        ),
        (
            Event::Billing(BillingEvent::PaymentConfirmed { id: PaymentId(2), block: 130 }),
            vec![0x15, 0x92, 0x02, 0xcc, 0x82],
        ),
        (
            Event::Billing(BillingEvent::PaymentFailed {
                id: PaymentId(3),
                failure: PaymentFailure::Reverted,
                nonce_used: true,
            }),
            vec![0x16, 0x93, 0x03, 0x02, 0xc3],
        ),
        (
            Event::Billing(BillingEvent::PaymentReceived {
                neighbour: NeighbourId(4),
                tx_hash: hash(0x11),
                log_index: 0,
                amount: Amount(5),
                block: 7,
            }),
            bytes(&[&[0x17, 0x95, 0x04, 0xc4, 0x20], &[0x11; 32], &[0x00, 0x05, 0x07]]),
        ),
        (Event::Billing(BillingEvent::IncomingScanned { to_block: 7 }), vec![0x18, 0x91, 0x07]),
        (
            Event::Billing(BillingEvent::CreditApplied { neighbour: NeighbourId(4), amount: Amount(3) }),
            vec![0x19, 0x92, 0x04, 0x03],
        ),
        (
            Event::Billing(BillingEvent::Forgiven {
                neighbour: NeighbourId(4),
                amount: Amount(3),
                reason: "storm".into(),
            }),
            vec![0x1a, 0x93, 0x04, 0x03, 0xa5, b's', b't', b'o', b'r', b'm'],
        ),
        (
            Event::Billing(BillingEvent::EnforcementChanged {
                neighbour: NeighbourId(4),
                level: Enforcement::Throttled,
            }),
            vec![0x1b, 0x92, 0x04, 0x01],
        ),
        (
            Event::Exit(ExitEvent::PricesSet {
                user: addr(0x22),
                exit_price_per_byte: 3,
                path_price_per_byte: 4,
            }),
            bytes(&[&[0x20, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x03, 0x04]]),
        ),
        (
            Event::Exit(ExitEvent::Accrued {
                user: addr(0x22),
                download_bytes: 1000,
                upload_bytes: 7,
                exit_price_per_byte: 3,
                path_price_per_byte: 4,
            }),
            bytes(&[&[0x21, 0x95, 0xc4, 0x14], &[0x22; 20], &[0xcd, 0x03, 0xe8, 0x07, 0x03, 0x04]]),
        ),
        (
            Event::Exit(ExitEvent::CounterReset {
                user: addr(0x22),
                download_reset: true,
                upload_reset: false,
                download_counted: 1000,
                upload_counted: 7,
                download_observed: 5,
                upload_observed: 9,
            }),
            bytes(&[
                &[0x22, 0x97, 0xc4, 0x14],
                &[0x22; 20],
                &[0xc3, 0xc2, 0xcd, 0x03, 0xe8, 0x07, 0x05, 0x09],
            ]),
        ),
        (Event::Exit(ExitEvent::StatementIssued(statement())), bytes(&[&[0x23], &statement_bytes()])),
        (
            Event::Exit(ExitEvent::StatementSigned {
                user: addr(0x22),
                seq: 2,
                signature: Signature([0x44; 65]),
            }),
            bytes(&[&[0x24, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x02, 0xc4, 0x41], &[0x44; 65]]),
        ),
        (
            Event::Exit(ExitEvent::Bound { exit: addr(0x33) }),
            bytes(&[&[0x25, 0x91, 0xc4, 0x14], &[0x33; 20]]),
        ),
        (
            Event::Exit(ExitEvent::Quoted {
                exit: addr(0x33),
                exit_price_per_byte: 3,
                path_price_per_byte: 4,
            }),
            bytes(&[&[0x26, 0x93, 0xc4, 0x14], &[0x33; 20], &[0x03, 0x04]]),
        ),
        (
            Event::Exit(ExitEvent::StatementAccepted {
                statement: statement(),
                own_rx_bytes: 990,
                own_tx_bytes: 7,
            }),
            bytes(&[&[0x27, 0x93], &statement_bytes(), &[0xcd, 0x03, 0xde, 0x07]]),
        ),
        (
            Event::Exit(ExitEvent::StatementDisputed {
                exit: addr(0x33),
                seq: 2,
                reason: DisputeReason::DownloadAboveTolerance,
                by: 10,
            }),
            bytes(&[&[0x28, 0x94, 0xc4, 0x14], &[0x33; 20], &[0x02, 0x09, 0x0a]]),
        ),
    ]
}

fn statement() -> Statement {
    Statement {
        user: addr(0x22),
        exit: addr(0x33),
        seq: 2,
        download_bytes: 1000,
        upload_bytes: 7,
        amount_due: Amount(7021),
    }
}

/// `[user, exit, seq, download, upload, amount_due]`
fn statement_bytes() -> Vec<u8> {
    bytes(&[
        &[0x96, 0xc4, 0x14],
        &[0x22; 20],
        &[0xc4, 0x14],
        &[0x33; 20],
        &[0x02, 0xcd, 0x03, 0xe8, 0x07, 0xcd, 0x1b, 0x6d],
    ])
}

#[test]
fn golden_payloads_encode_exactly() {
    for (event, bytes) in golden() {
        assert_eq!(encode_to_vec(&event), bytes, "{event:?}");
    }
}

#[test]
fn golden_payloads_decode_exactly() {
    for (event, bytes) in golden() {
        assert_eq!(decode(EVENT_VERSION, &bytes), Ok(event));
    }
}

#[test]
fn every_event_kind_has_a_golden_and_a_distinct_name() {
    let table: std::collections::BTreeMap<&str, u8> = kinds().map(|(k, n)| (n, k)).collect();
    let numbers: std::collections::BTreeSet<u8> = kinds().map(|(k, _)| k).collect();
    assert_eq!(
        (table.len(), numbers.len()),
        (kinds().count(), kinds().count()),
        "names and numbers are distinct"
    );
    let goldens: std::collections::BTreeSet<&str> = golden().iter().map(|(e, _)| e.kind_name()).collect();
    assert_eq!(
        goldens,
        table.keys().copied().collect(),
        "every kind in the tables has a golden, and no other"
    );
    for (event, bytes) in golden() {
        assert_eq!(bytes[0], table[event.kind_name()], "{} is written as its kind number", event.kind_name());
    }
}

#[test]
fn older_versions_decode_and_upcast_to_exactly_what_they_knew() {
    // v2: the same layout as v3 for the kinds it had.
    let v2 = bytes(&[
        &[0x01, 0x94, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf, 0x79, 0xe0],
        &[0x14],
    ]);
    assert_eq!(decode(2, &v2), Ok(accrued(Some(20))));
    // v1: no price at all.
    let v1 = [0x01, 0x93, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf, 0x79, 0xe0];
    assert_eq!(decode(1, &v1), Ok(accrued(None)));
    // The same bytes are not valid in the newer layouts.
    assert!(matches!(decode(2, &v1), Err(DecodeError::Body { kind: 1, .. })));
    assert_eq!(decode(3, &v2), Ok(accrued(Some(20))));
    // Billing and exit kinds did not exist before version 3.
    assert_eq!(decode(2, &[0x25, 0x91]), Err(DecodeError::UnknownKind { version: 2, kind: 0x25 }));
    assert_eq!(decode(2, &[0x11, 0x91, 0x09]), Err(DecodeError::UnknownKind { version: 2, kind: 0x11 }));
}

#[test]
fn unknown_versions_and_kinds_are_refused() {
    let payload = encode_to_vec(&accrued(Some(1)));
    assert_eq!(
        decode(EVENT_VERSION + 1, &payload),
        Err(DecodeError::NewerVersion { found: EVENT_VERSION + 1, supported: EVENT_VERSION })
    );
    assert_eq!(decode(0, &payload), Err(DecodeError::UnknownVersion(0)));
    assert_eq!(decode(3, &[]), Err(DecodeError::Empty));
    assert_eq!(decode(3, &[0x63, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x63 }));
    // Routing evidence arrived with version 4.
    assert_eq!(decode(3, &[0x30, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x30 }));
    let mut long = payload.clone();
    long.push(0);
    assert_eq!(decode(3, &long), Err(DecodeError::Trailing { kind: 1, bytes: 1 }));
    assert!(matches!(decode(3, &payload[..6]), Err(DecodeError::Body { .. })));
    assert!(matches!(decode(3, &[0x03, 0x92, 0x09, 0x01]), Err(DecodeError::Body { kind: 3, .. })));
    // A 19-byte address is not an address.
    assert!(matches!(
        decode(3, &bytes(&[&[0x10, 0x92, 0x04, 0xc4, 0x13], &[0xab; 19]])),
        Err(DecodeError::Body { kind: 0x10, .. })
    ));
}

#[test]
fn exit_kinds_refuse_malformed_bodies_and_unknown_reasons() {
    // A 64-byte signature is not a signature.
    let short = bytes(&[&[0x24, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x02, 0xc4, 0x40], &[0x44; 64]]);
    assert!(matches!(decode(3, &short), Err(DecodeError::Body { kind: 0x24, .. })));
    let reason = bytes(&[&[0x28, 0x94, 0xc4, 0x14], &[0x33; 20], &[0x02, 0x63, 0x0a]]);
    assert!(matches!(decode(3, &reason), Err(DecodeError::Body { kind: 0x28, .. })));
    // Kind 41 is not assigned.
    assert_eq!(decode(3, &[0x29, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x29 }));
    assert!(Event::Exit(ExitEvent::StatementSigned { user: addr(1), seq: 1, signature: Signature([0; 65]) })
        .is_urgent());
    let accrued = Event::Exit(ExitEvent::Accrued {
        user: addr(1),
        download_bytes: 10,
        upload_bytes: 2,
        exit_price_per_byte: 3,
        path_price_per_byte: 4,
    });
    assert_eq!(accrued.value(), 10 * 7 + 2 * 3);
}

#[test]
fn decoding_arbitrary_bytes_never_panics() {
    fn prop(version: u8, bytes: Vec<u8>) -> bool {
        let _ = decode(version, &bytes);
        true
    }
    quickcheck::quickcheck(prop as fn(u8, Vec<u8>) -> bool);
}

#[test]
fn every_golden_renders_for_people() {
    for (event, _) in golden() {
        assert!(!event.to_string().is_empty());
    }
    assert_eq!(accrued(Some(20)).to_string(), "n3/d17 tx=12000000 rx=11500000 price=20");
}
