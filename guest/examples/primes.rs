//! The initializer example: a prime sieve of tens of megabytes, built once
//! by an initializer, then read by every task, each in a fresh instance
//! that starts from the snapshot (copy-on-write, on every OS).
//!
//! ```sh
//! cargo build --release -p wasmproc-guest --example primes --target wasm32-wasip1
//! # One task: the sieve is built (or found in the cache), then queried.
//! wasmproc run target/wasm32-wasip1/release/examples/primes.wasm \
//!     --init sieve --init-args 50000000 --task is_prime --args 49999991
//! # Many: one query per input line, all from the same snapshot.
//! seq 49999900 49999999 | wasmproc map target/wasm32-wasip1/release/examples/primes.wasm \
//!     --init sieve --init-args 50000000 --task is_prime
//! ```
//!
//! Without `--init` the tasks still answer, more slowly (trial division) or
//! with an error that says what is missing.

use std::sync::OnceLock;

use wasmproc_guest::{Failure, init, task};

/// A sieve of Eratosthenes up to `limit`, and the primes it found.
struct Sieve {
    /// `prime[n]` says whether `n` is prime, for `n <= limit`.
    prime: Vec<bool>,
    /// The primes up to `limit`, in order.
    primes: Vec<u32>,
}

impl Sieve {
    fn new(limit: u32) -> Sieve {
        let len = limit as usize + 1;
        let mut prime = vec![true; len];
        prime[0] = false;
        if len > 1 {
            prime[1] = false;
        }
        let mut n = 2usize;
        while n * n < len {
            if prime[n] {
                for multiple in (n * n..len).step_by(n) {
                    prime[multiple] = false;
                }
            }
            n += 1;
        }
        let primes = (0..len as u32).filter(|&n| prime[n as usize]).collect();
        Sieve { prime, primes }
    }

    fn is_prime(&self, n: u64) -> Option<bool> {
        self.prime.get(usize::try_from(n).ok()?).copied()
    }
}

/// Built by the initializer; empty in a module that was not initialized.
static SIEVE: OnceLock<Sieve> = OnceLock::new();

/// Sieves up to `limit` (50 million: about 60 MB of state, half a second).
#[init]
fn sieve(limit: u32) {
    SIEVE.get_or_init(|| Sieve::new(limit));
}

/// Whether `n` is prime: a lookup in the sieve, or trial division past it.
#[task]
fn is_prime(n: u64) -> bool {
    match SIEVE.get().and_then(|sieve| sieve.is_prime(n)) {
        Some(answer) => answer,
        None => by_trial_division(n),
    }
}

/// The `k`th prime (the 0th is 2), if the sieve reaches it.
#[task]
fn nth_prime(k: usize) -> Result<Option<u32>, Failure> {
    Ok(sieved()?.primes.get(k).copied())
}

/// How many primes are at most `n` (n up to the sieve's limit).
#[task]
fn prime_pi(n: u32) -> Result<usize, Failure> {
    let sieve = sieved()?;
    if n as usize >= sieve.prime.len() {
        return Err(Failure::new(
            2,
            format!("{n} is past the sieve (up to {})", sieve.prime.len() - 1),
        ));
    }
    Ok(sieve.primes.partition_point(|&p| p <= n))
}

/// `is_prime` without an initializer: the sieve is built inside the task,
/// as a program that cannot keep state between tasks must (the benchmark's
/// baseline).
#[task]
fn is_prime_from_scratch(limit: u32, n: u64) -> bool {
    match Sieve::new(limit).is_prime(n) {
        Some(answer) => answer,
        None => by_trial_division(n),
    }
}

fn sieved() -> Result<&'static Sieve, Failure> {
    SIEVE.get().ok_or_else(|| {
        Failure::new(
            2,
            "no sieve: run the initializer first (`--init sieve --init-args LIMIT`)",
        )
    })
}

fn by_trial_division(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sieve_agrees_with_trial_division() {
        let sieve = Sieve::new(10_000);
        for n in 0..=10_000u64 {
            assert_eq!(sieve.is_prime(n), Some(by_trial_division(n)), "{n}");
        }
        assert_eq!(sieve.primes.len(), 1229);
    }
}
