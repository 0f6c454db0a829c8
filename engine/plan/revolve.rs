//! `revolve:S`: binomial checkpointing (Griewank and Walther, "Algorithm 799: revolve"),
//! for chains too deep for one level of segments. At most S checkpoints are alive at once
//! besides the data; with r the least whole number such that C(S + r, S) reaches the
//! chain's length, no stage's forward runs more than r + 1 times, so memory can fall to
//! O(log n) checkpoints at O(n log n) forward work. Uniform-cost optimal; the budget
//! planner ([`super::optimal`]) is the one that weighs stages of different sizes.

use super::nesting::Nest;

/// C(c + r, c), saturating.
fn binomial(c: usize, r: usize) -> usize {
    let (c, r) = (c as u128, r as u128);
    let mut b: u128 = 1;
    for i in 1..=c.min(r) {
        b = b * (c + r + 1 - i) / i;
        if b > usize::MAX as u128 {
            return usize::MAX;
        }
    }
    b as usize
}

/// The binomial plan for stages `s..=t` with `a_s` held and `slots` more checkpoints allowed
/// (at least one when the segment is longer than one stage).
pub fn binomial_nest(s: usize, t: usize, slots: usize) -> Nest {
    let len = t - s + 1;
    if len == 1 {
        return Nest::Last(s);
    }
    // More slots than boundaries add nothing (and would overflow the binomials).
    let slots = slots.clamp(1, len);
    let reps = (0..)
        .find(|&r| binomial(slots, r) >= len)
        .expect("binomials grow without bound");
    // Advance as little as lets the right part finish in `reps` with one slot fewer; the left
    // part then fits in `reps - 1` with every slot (Pascal's rule).
    let advance = len.saturating_sub(binomial(slots - 1, reps)).clamp(1, len - 1);
    let at = s + advance;
    Nest::Split {
        from: s,
        at,
        right: Box::new(binomial_nest(at, t, slots - 1)),
        left: Box::new(binomial_nest(s, at - 1, slots)),
    }
}
