//! Which worker hosts hold which task messages of a job, from the hosts'
//! own word (`wire::Progress`), and which of them stopped answering: a
//! host that holds tasks and has said nothing for two of its progress
//! intervals (two thirds of the ack wait) is taken for dead, and its
//! tasks wait for JetStream to redeliver them when the ack wait runs out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::wire::Progress;

/// A job's held messages and their hosts.
#[derive(Default)]
pub(crate) struct Held {
    /// By the message's sequence in the task stream.
    messages: HashMap<u64, Message>,
    hosts: HashMap<u64, Host>,
}

struct Message {
    host: u64,
    tasks: Vec<(u64, u64)>,
    /// The host's last word about it.
    heard: Instant,
    ack_wait: Duration,
}

struct Host {
    /// Its last word about any message, or an outcome of one it held.
    heard: Instant,
    ack_wait: Duration,
    /// Already reported silent (until it speaks again).
    reported: bool,
}

/// Tasks held by a host that stopped answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Silent {
    /// How many of the job's tasks it holds without an outcome yet.
    pub(crate) tasks: u64,
    /// When the last of them goes back to the queue, from now.
    pub(crate) redelivery_in: Duration,
}

/// How long a host may say nothing before it counts as stopped: two of
/// the intervals at which it speaks up (a third of the ack wait).
fn silent_after(ack_wait: Duration) -> Duration {
    ack_wait * 2 / 3
}

impl Held {
    /// Takes a host's word at `now`; `ended(index)` says whether a task
    /// already has its outcome (the word may come after it).
    pub(crate) fn heard(&mut self, word: Progress, now: Instant, ended: impl Fn(u64) -> bool) {
        let open = word
            .tasks
            .iter()
            .any(|&(start, end)| (start..end).any(|index| !ended(index)));
        let previous = if word.holding && open {
            self.messages.insert(
                word.message,
                Message {
                    host: word.host,
                    tasks: word.tasks,
                    heard: now,
                    ack_wait: word.ack_wait,
                },
            )
        } else if word.holding
            || self
                .messages
                .get(&word.message)
                .is_some_and(|message| message.host == word.host)
        {
            self.messages.remove(&word.message)
        } else {
            // A late word from a host that lost the message to another.
            None
        };
        // A message taken over by another host leaves its old host.
        if let Some(previous) = previous
            && previous.host != word.host
        {
            self.forget_if_idle(previous.host);
        }
        let host = self.hosts.entry(word.host).or_insert(Host {
            heard: now,
            ack_wait: word.ack_wait,
            reported: false,
        });
        host.heard = now;
        host.ack_wait = word.ack_wait;
        host.reported = false;
        self.forget_if_idle(word.host);
    }

    /// An outcome for task `index` came (and `ended` counts it): its host
    /// was alive, and the message holding it is done once every task of
    /// it has its outcome.
    pub(crate) fn ended(&mut self, index: u64, now: Instant, ended: impl Fn(u64) -> bool) {
        let holding = self.messages.iter().find_map(|(sequence, message)| {
            let contains = message
                .tasks
                .iter()
                .any(|&(start, end)| (start..end).contains(&index));
            contains.then_some(*sequence)
        });
        let Some(sequence) = holding else {
            return;
        };
        let message = &self.messages[&sequence];
        let host = message.host;
        let open = message
            .tasks
            .iter()
            .any(|&(start, end)| (start..end).any(|index| !ended(index)));
        if let Some(host) = self.hosts.get_mut(&host) {
            host.heard = now;
            host.reported = false;
        }
        if !open {
            self.messages.remove(&sequence);
            self.forget_if_idle(host);
        }
    }

    /// When a host not yet reported would count as silent, if any holds
    /// tasks.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        self.hosts
            .values()
            .filter(|host| !host.reported)
            .map(|host| host.heard + silent_after(host.ack_wait))
            .min()
    }

    /// The hosts that stopped answering by `now` and were not reported
    /// yet (now they are): what each holds.
    pub(crate) fn newly_silent(
        &mut self,
        now: Instant,
        ended: impl Fn(u64) -> bool,
    ) -> Vec<Silent> {
        let mut silent = Vec::new();
        for (id, host) in &mut self.hosts {
            if host.reported || now.duration_since(host.heard) < silent_after(host.ack_wait) {
                continue;
            }
            host.reported = true;
            let mut tasks = 0;
            let mut redelivery_in = Duration::ZERO;
            for message in self.messages.values().filter(|message| message.host == *id) {
                tasks += message
                    .tasks
                    .iter()
                    .flat_map(|&(start, end)| start..end)
                    .filter(|&index| !ended(index))
                    .count() as u64;
                let due = (message.heard + message.ack_wait).saturating_duration_since(now);
                redelivery_in = redelivery_in.max(due);
            }
            if tasks > 0 {
                silent.push(Silent {
                    tasks,
                    redelivery_in,
                });
            }
        }
        silent
    }

    /// Counts every host's word as fresh at `now`: after this side lost
    /// its own connection, their silence says nothing about them.
    pub(crate) fn excuse(&mut self, now: Instant) {
        for host in self.hosts.values_mut() {
            host.heard = now;
        }
    }

    fn forget_if_idle(&mut self, host: u64) {
        if !self.messages.values().any(|message| message.host == host) {
            self.hosts.remove(&host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(host: u64, message: u64, tasks: (u64, u64), holding: bool) -> Progress {
        Progress {
            host,
            message,
            tasks: vec![tasks],
            ack_wait: Duration::from_secs(3),
            holding,
        }
    }

    #[test]
    fn a_host_that_stops_answering_is_reported_once_with_its_tasks() {
        let start = Instant::now();
        let mut held = Held::default();
        let none_ended = |_| false;
        held.heard(word(1, 10, (0, 4), true), start, none_ended);
        held.heard(
            word(1, 11, (4, 5), true),
            start + Duration::from_secs(1),
            none_ended,
        );
        held.heard(word(2, 12, (5, 6), true), start, none_ended);
        // Host 2 finishes; host 1 stores one outcome of four, then goes
        // quiet.
        held.ended(5, start + Duration::from_secs(1), |index| index == 5);
        held.ended(0, start + Duration::from_secs(1), |index| index == 0);
        assert_eq!(held.next_check(), Some(start + Duration::from_secs(3)));
        assert!(
            held.newly_silent(start + Duration::from_millis(2900), none_ended)
                .is_empty()
        );
        let silent = held.newly_silent(start + Duration::from_secs(3), |index| index == 0);
        assert_eq!(
            silent,
            vec![Silent {
                tasks: 4,
                redelivery_in: Duration::from_secs(1),
            }]
        );
        assert!(
            held.newly_silent(start + Duration::from_secs(9), none_ended)
                .is_empty()
        );
        assert_eq!(held.next_check(), None);
        // Its message goes to another host, which speaks.
        held.heard(
            word(3, 10, (0, 4), true),
            start + Duration::from_secs(4),
            none_ended,
        );
        held.heard(
            word(3, 11, (4, 5), true),
            start + Duration::from_secs(4),
            none_ended,
        );
        assert_eq!(held.hosts.len(), 1);
        assert!(
            held.newly_silent(start + Duration::from_secs(5), none_ended)
                .is_empty()
        );
    }

    #[test]
    fn words_about_ended_or_handed_back_tasks_hold_nothing() {
        let start = Instant::now();
        let mut held = Held::default();
        held.heard(word(1, 10, (0, 2), true), start, |_| true);
        assert_eq!(held.next_check(), None);
        held.heard(word(1, 11, (2, 4), true), start, |_| false);
        // Another host lets go of it late: host 1 still holds it.
        held.heard(word(2, 11, (2, 4), false), start, |_| false);
        assert!(held.next_check().is_some());
        held.heard(word(1, 11, (2, 4), false), start, |_| false);
        assert_eq!(held.next_check(), None);
        held.heard(word(1, 12, (4, 5), true), start, |_| false);
        held.excuse(start + Duration::from_secs(10));
        assert!(
            held.newly_silent(start + Duration::from_secs(11), |_| false)
                .is_empty()
        );
    }
}
