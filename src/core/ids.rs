//! UUIDv7 ids for mutations and for rows inserted without a key.
//!
//! Layout (RFC 9562): 48 bits of Unix milliseconds, the version (7), 12 bits `rand_a`, the
//! variant, 62 bits `rand_b`. The 74 bits of `rand_a`+`rand_b` are random for a new millisecond,
//! and used as a counter within one: an id is always greater than the `floor` it is given and
//! than every id this generator made before. The outbox is ordered by mutation id, so a write's
//! entry always sorts after every entry that existed when it was planned, whatever the clock says
//! (two writes in one millisecond, a clock that steps back, another tab's entries).
//!
//! Randomness comes from an injected source, so a failing `crypto.getRandomValues` cannot panic
//! here; the browser binding falls back to `Math.random` then.

use uuid::Uuid;

const COUNTER_BITS: u32 = 74;
const COUNTER_MAX: u128 = (1 << COUNTER_BITS) - 1;

/// Fills a buffer with random bytes. Must not fail.
pub type RandomSource = fn(&mut [u8]);

pub struct IdGen {
    last: u128,
    random: RandomSource,
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen::new(fallback_random)
    }
}

fn compose(ms: u64, counter: u128) -> u128 {
    let rand_a = (counter >> 62) & 0xfff;
    let rand_b = counter & ((1 << 62) - 1);
    (u128::from(ms) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
}

fn split(id: u128) -> (u64, u128) {
    let ms = (id >> 80) as u64;
    let rand_a = (id >> 64) & 0xfff;
    let rand_b = id & ((1 << 62) - 1);
    (ms, (rand_a << 62) | rand_b)
}

impl IdGen {
    pub fn new(random: RandomSource) -> Self {
        IdGen { last: 0, random }
    }

    /// A new id, greater than `floor` (a UUID string; ignored if it is not one) and than every
    /// id made before.
    pub fn next(&mut self, now_ms: f64, floor: Option<&str>) -> String {
        let floor = floor
            .and_then(|f| Uuid::parse_str(f).ok())
            .map_or(0, |u| u.as_u128())
            .max(self.last);
        let now = if now_ms.is_finite() && now_ms > 0.0 {
            (now_ms as u64).min((1 << 48) - 1)
        } else {
            0
        };
        let (floor_ms, floor_counter) = split(floor);
        let id = if floor == 0 || now > floor_ms {
            compose(now, self.fresh_counter())
        } else if floor_counter < COUNTER_MAX {
            // Same millisecond (or a clock behind the floor): count up from the floor by a
            // random step of up to 2^32, so ids stay hard to guess and two tabs counting up from
            // the same floor (both behind it) collide once in four billion, not once in sixteen.
            let step = 1 + u128::from(self.random_u32());
            compose(floor_ms, (floor_counter + step).min(COUNTER_MAX))
        } else {
            compose(floor_ms + 1, self.fresh_counter())
        };
        self.last = id;
        Uuid::from_u128(id).hyphenated().to_string()
    }

    /// A random counter with its top bit clear, leaving room to count up within a millisecond.
    fn fresh_counter(&self) -> u128 {
        let mut b = [0u8; 10];
        (self.random)(&mut b);
        let mut c: u128 = 0;
        for byte in b {
            c = (c << 8) | u128::from(byte);
        }
        c & (COUNTER_MAX >> 1)
    }

    fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        (self.random)(&mut b);
        u32::from_le_bytes(b)
    }
}

/// A non-cryptographic source for hosts without the browser's: xorshift64*, seeded per thread
/// from the clock and a stack address. Host tests only; the browser binding injects
/// `crypto.getRandomValues`.
pub fn fallback_random(buf: &mut [u8]) {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            let local = 0u8;
            let addr = &local as *const u8 as u64;
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            x = (addr ^ t.rotate_left(17)) | 1;
        }
        for b in buf.iter_mut() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *b = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
        s.set(x);
    });
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn is_v7(s: &str) -> bool {
        let u = Uuid::parse_str(s).unwrap();
        u.get_version_num() == 7 && s.as_bytes()[19] >= b'8' && s.as_bytes()[19] <= b'b'
    }

    #[test]
    fn ids_increase_within_a_millisecond_and_when_the_clock_steps_back() {
        let mut g = IdGen::default();
        let mut prev = String::new();
        for now in [1_000.0, 1_000.0, 1_000.0, 999.0, 5.0, 1_001.0, 1_001.0] {
            let id = g.next(now, None);
            assert!(is_v7(&id), "{id}");
            assert!(id > prev, "{id} after {prev}");
            prev = id;
        }
    }

    #[test]
    fn ids_exceed_the_floor() {
        let mut g = IdGen::default();
        let mut other = IdGen::default();
        let floor = other.next(2_000_000.0, None);
        let id = g.next(1_000_000.0, Some(&floor));
        assert!(id > floor && is_v7(&id));
        // A floor at the top of a millisecond's counter rolls over to the next millisecond.
        let mut g = IdGen::default();
        let top = Uuid::from_u128(compose(7, COUNTER_MAX))
            .hyphenated()
            .to_string();
        let next = g.next(7.0, Some(&top));
        assert!(next > top);
        assert_eq!(split(Uuid::parse_str(&next).unwrap().as_u128()).0, 8);
        assert!(
            g.next(0.0, Some("not a uuid")) > next,
            "a bad floor is ignored"
        );
    }

    #[test]
    fn fresh_ids_carry_the_millisecond() {
        let mut g = IdGen::default();
        let id = g.next(1_700_000_000_123.0, None);
        let (ms, _) = split(Uuid::parse_str(&id).unwrap().as_u128());
        assert_eq!(ms, 1_700_000_000_123);
    }
}
