//! Publishing that survives a server restart: a message is sent again
//! until JetStream says it is stored, under a message id that makes the
//! repeats harmless.

use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use wasmproc::{Error, Outcome};

use crate::error::nats_error;
use crate::link::Link;
use crate::names;
use crate::wire::{self, OutcomeBatch, WireOutcome};

/// How long publishing keeps trying through a NATS outage.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Publishes `payload` to `subject` with message id `id` and waits until
/// JetStream has stored it (or dropped it as a duplicate of an earlier
/// try).
pub(crate) async fn publish_until_stored(
    link: &Link,
    subject: &str,
    id: &str,
    payload: Vec<u8>,
) -> Result<(), Error> {
    let payload = bytes::Bytes::from(payload);
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let publish = PublishMessage::build()
            .payload(payload.clone())
            .message_id(id);
        let stored = match link.js.send_publish(subject.to_owned(), publish).await {
            Ok(ack) => ack.await.map(drop),
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => return Ok(()),
            Err(error) if started.elapsed() > GIVE_UP_AFTER => {
                return Err(nats_error(&format!("publish to `{subject}`"), error));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Stores the outcomes of batch `number` of `job` for its submitter, in as
/// few messages as fit; an outcome too large for a message goes to the
/// blob store. Returns how many outcomes were stored.
pub(crate) async fn publish_outcomes(
    link: &Link,
    job: &str,
    number: u64,
    outcomes: Vec<(u64, Outcome)>,
) -> Result<u64, Error> {
    let budget = message_budget(link);
    let subject = names::outcome_subject(job);
    let count = outcomes.len() as u64;
    let mut part: Vec<(u64, WireOutcome)> = Vec::new();
    let mut size = 0;
    for (index, outcome) in outcomes {
        let encoded = wire::encode(&outcome);
        let (wire_outcome, added) = if encoded.len() > budget {
            let key = format!("{job}.out.{index}");
            Link::write_object(&link.blobs, &key, &encoded).await?;
            (WireOutcome::Stored(key.clone()), key.len() + 16)
        } else {
            (WireOutcome::Inline(Box::new(outcome)), encoded.len() + 16)
        };
        if !part.is_empty() && size + added > budget {
            send_part(link, &subject, job, number, std::mem::take(&mut part)).await?;
            size = 0;
        }
        size += added;
        part.push((index, wire_outcome));
    }
    if !part.is_empty() {
        send_part(link, &subject, job, number, part).await?;
    }
    Ok(count)
}

async fn send_part(
    link: &Link,
    subject: &str,
    job: &str,
    number: u64,
    outcomes: Vec<(u64, WireOutcome)>,
) -> Result<(), Error> {
    // The id names the indices, not the part's position: a rerun that
    // splits differently must not have a part dropped as a "duplicate".
    let (first, last) = (outcomes[0].0, outcomes[outcomes.len() - 1].0);
    let id = format!("{job}.{number}.out.{first}-{last}.{}", outcomes.len());
    let payload = wire::encode(&OutcomeBatch { outcomes });
    publish_until_stored(link, subject, &id, payload).await
}

/// The most bytes to put in one message: half of what the server takes,
/// leaving room for headers.
pub(crate) fn message_budget(link: &Link) -> usize {
    (link.max_payload() / 2).max(4096)
}
