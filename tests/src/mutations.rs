//! Deterministic mutations of seed inputs, for the fuzz entry points' runs
//! in the normal test suite: what `cargo fuzz` finds in hours, a few
//! thousand flips, cuts, splices and repeats catch when they regress.

/// A small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value but 0 works; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (at least 1).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

/// `count` mutations of the seeds, each one to four edits of a seed.
pub fn mutations(seeds: &[Vec<u8>], count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let mut bytes = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                mutate(&mut bytes, seeds, &mut rng);
            }
            bytes
        })
        .collect()
}

fn mutate(bytes: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(7) {
        // Flip a bit.
        0 if !bytes.is_empty() => {
            let at = at.min(bytes.len() - 1);
            bytes[at] ^= 1 << rng.below(8);
        }
        // A byte of an interesting value.
        1 if !bytes.is_empty() => {
            let at = at.min(bytes.len() - 1);
            bytes[at] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'{'][rng.below(8)];
        }
        // Cut the rest.
        2 => bytes.truncate(at),
        // Insert random bytes.
        3 => {
            let new: Vec<u8> = (0..rng.below(16)).map(|_| rng.next_u64() as u8).collect();
            bytes.splice(at..at, new);
        }
        // Splice in part of another seed.
        4 => {
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            let to = from + rng.below(other.len() - from + 1);
            bytes.splice(at..at, other[from..to].iter().copied());
        }
        // Repeat a stretch.
        5 => {
            let to = at + rng.below(bytes.len() - at + 1);
            let stretch = bytes[at..to].to_vec();
            bytes.splice(to..to, stretch);
        }
        // Remove a stretch.
        _ => {
            let to = at + rng.below(bytes.len() - at + 1);
            bytes.drain(at..to);
        }
    }
}
