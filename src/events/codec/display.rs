//! How events read for people: `replay trace`, log lines, demo output. Compact and stable.

use super::Event;
use crate::events::billing::BillingEvent;
use crate::events::exit::{ExitEvent, Statement};
use crate::events::incident::IncidentEvent;
use crate::events::routing::RoutingEvent;
use crate::events::usage::UsageEvent;
use std::fmt;

/// The fields of an event, compact and stable, for traces (`replay trace`, logs).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Usage(UsageEvent::Accrued(r)) => {
                write!(f, "{} tx={} rx={} ", r.link, r.tx_bytes, r.rx_bytes)?;
                match r.price_per_byte {
                    Some(p) => write!(f, "price={p}"),
                    None => write!(f, "unpriced"),
                }
            }
            Event::Usage(UsageEvent::CounterReset(r)) => {
                let dirs = match (r.tx_reset, r.rx_reset) {
                    (true, true) => "tx+rx",
                    (true, false) => "tx",
                    (false, true) => "rx",
                    (false, false) => "none",
                };
                write!(
                    f,
                    "{} reset={dirs} counted=tx{}/rx{} observed=tx{}/rx{}",
                    r.link, r.tx_counted, r.rx_counted, r.tx_observed, r.rx_observed
                )
            }
            Event::Billing(e) => match e {
                BillingEvent::PriceAdvertised { link, price_per_byte } => {
                    write!(f, "{link} price={price_per_byte}")
                }
                BillingEvent::IdentitySet { address } => write!(f, "address={address}"),
                BillingEvent::ExitDue { neighbour, amount_due } => {
                    write!(f, "n{} amount_due={amount_due}", neighbour.0)
                }
                BillingEvent::NeighbourBound { neighbour, address } => {
                    write!(f, "n{} address={address}", neighbour.0)
                }
                BillingEvent::FeeSet { fee_per_byte } => write!(f, "fee={fee_per_byte}"),
                BillingEvent::ThresholdsSet(t) => write!(f, "pay={} enforce={}", t.pay, t.enforce),
                BillingEvent::PaymentIntended { id, neighbour, to, amount } => {
                    write!(f, "{id} n{} to={to} amount={amount}", neighbour.0)
                }
                BillingEvent::PaymentSigned { id, nonce, tx_hash, raw } => {
                    write!(f, "{id} nonce={nonce} tx={tx_hash} raw={}B", raw.len())
                }
                BillingEvent::PaymentConfirmed { id, block } => write!(f, "{id} block={block}"),
                BillingEvent::PaymentFailed { id, failure, nonce_used } => {
                    write!(f, "{id} failure={failure:?} nonce_used={nonce_used}")
                }
                BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block } => {
                    write!(f, "n{} amount={amount} tx={tx_hash}/{log_index} block={block}", neighbour.0)
                }
                BillingEvent::IncomingScanned { to_block } => write!(f, "to_block={to_block}"),
                BillingEvent::CreditApplied { neighbour, amount } => {
                    write!(f, "n{} amount={amount}", neighbour.0)
                }
                BillingEvent::Forgiven { neighbour, amount, reason } => {
                    write!(f, "n{} amount={amount} reason={reason:?}", neighbour.0)
                }
                BillingEvent::EnforcementChanged { neighbour, level } => {
                    write!(f, "n{} level={level:?}", neighbour.0)
                }
            },
            Event::Incident(IncidentEvent::Opened { kind, detail }) => {
                write!(f, "kind={kind} detail={detail}")
            }
            Event::Incident(IncidentEvent::Closed { kind }) => write!(f, "kind={kind}"),
            Event::Exit(e) => fmt_exit(e, f),
            Event::Routing(RoutingEvent::TrustEvidence(e)) => write!(
                f,
                "if{} {} {} advertised rtt={}us loss={}uNp measured {}/{} rtt={}us worse={} streak={} trust={}",
                e.ifindex,
                e.neighbour_address(),
                e.prefix,
                e.advertised_rtt_us,
                e.advertised_loss_micro_nepers,
                e.received,
                e.sent,
                e.measured_rtt_us,
                e.worse,
                e.streak,
                e.trust_permille
            ),
        }
    }
}

fn fmt_statement(s: &Statement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "user={} exit={} seq={} down={} up={} due={}",
        s.user, s.exit, s.seq, s.download_bytes, s.upload_bytes, s.amount_due
    )
}

fn fmt_exit(e: &ExitEvent, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte } => {
            write!(f, "user={user} exit_price={exit_price_per_byte} path_price={path_price_per_byte}")
        }
        ExitEvent::Accrued {
            user,
            download_bytes,
            upload_bytes,
            exit_price_per_byte,
            path_price_per_byte,
        } => {
            write!(
                f,
                "user={user} down={download_bytes} up={upload_bytes} exit_price={exit_price_per_byte} \
                 path_price={path_price_per_byte}"
            )
        }
        ExitEvent::CounterReset {
            user,
            download_reset,
            upload_reset,
            download_observed,
            upload_observed,
            ..
        } => {
            write!(
                f,
                "user={user} reset=down:{download_reset}/up:{upload_reset} \
                 observed=down{download_observed}/up{upload_observed}"
            )
        }
        ExitEvent::StatementIssued(s) => fmt_statement(s, f),
        ExitEvent::StatementSigned { user, seq, .. } => write!(f, "user={user} seq={seq}"),
        ExitEvent::Bound { exit } => write!(f, "exit={exit}"),
        ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
            write!(f, "exit={exit} exit_price={exit_price_per_byte} path_price={path_price_per_byte}")
        }
        ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes } => {
            fmt_statement(statement, f)?;
            write!(f, " own=rx{own_rx_bytes}/tx{own_tx_bytes}")
        }
        ExitEvent::StatementDisputed { exit, seq, reason, by } => {
            write!(f, "exit={exit} seq={seq} reason={reason} by={by}")
        }
    }
}
