//! The exact budget planner: a dynamic program over the chain (Beaumont, Eyraud-Dubois,
//! Herrmann, Joly and Shilova, "Optimal checkpointing for heterogeneous chains", 2019, the
//! rotor solver) that finds, among all nested plans ([`Nest`]), the one with the least
//! recompute time whose peak fits a byte budget.
//!
//! Memory is not discretized: for each segment `s..=t` the program keeps the whole Pareto
//! frontier of (most bytes it adds, seconds it takes) over its plans. A plan's peak is a max
//! of sums of block effects ([`Profiles`]), so the frontier of a split is the merge of its
//! two parts' frontiers, each shifted by what lives beside it, and the answer is exact to
//! the byte. Chains whose distinct segments would need more than [`MAX_SPLITS`] checkpoint
//! places are planned over runs of consecutive stages (checkpoints only between runs), which
//! keeps planning a 1,000-layer net under a second; the plan is then exact for that coarser
//! choice.

use super::nesting::{Block, Nest};
use super::profile::{Effect, Profiles};
use std::collections::HashMap;

/// Splits the program may weigh in all (one per distinct segment and checkpoint place): its
/// time is this times a frontier merge. A chain of distinct layers gets about 53 units under
/// it, a chain of equal ones a few hundred (equal segments are planned once).
pub const MAX_SPLITS: usize = 25_000;

/// How a frontier point was made, to rebuild its plan.
#[derive(Clone, Copy, Debug)]
enum How {
    Last,
    /// Keep this unit's tapes; point `rest` of the segment after it.
    Keep {
        rest: usize,
    },
    /// Checkpoint `after` units past the segment's first; points of the right and left parts.
    Split {
        after: usize,
        right: usize,
        left: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Point {
    most: i64,
    seconds: f64,
    how: How,
}

/// Consecutive stages planned as one: `first..=last`.
#[derive(Clone, Copy, Debug)]
struct Unit {
    first: usize,
    last: usize,
}

/// A unit's blocks, composed from its stages'.
struct UnitEffects {
    chain_keep: Effect,
    chain_drop: Effect,
    all: Effect,
    last: Effect,
    backward: Effect,
}

impl UnitEffects {
    /// Every number in it, bit for bit: equal fingerprints, interchangeable units.
    fn fingerprint(&self) -> Vec<u64> {
        [self.chain_keep, self.chain_drop, self.all, self.last, self.backward]
            .iter()
            .flat_map(|e| [e.most as u64, e.net as u64, e.seconds.to_bits()])
            .collect()
    }
}

fn unit_effects(p: &Profiles, u: Unit) -> UnitEffects {
    let seq = |blocks: &mut dyn Iterator<Item = Block>| blocks.fold(Effect::EMPTY, |e, b| e.then(p.of(b)));
    UnitEffects {
        chain_keep: p
            .of(Block::ChainKeep(u.first))
            .then(seq(&mut (u.first + 1..=u.last).map(Block::ChainDrop))),
        chain_drop: seq(&mut (u.first..=u.last).map(Block::ChainDrop)),
        all: seq(&mut (u.first..=u.last).map(Block::All)),
        last: seq(&mut (u.first..u.last).map(Block::All)).then(p.of(Block::Last(u.last))),
        backward: seq(&mut (u.first..=u.last).rev().map(Block::Backward)),
    }
}

/// The planner's picks among the nested plans of stages `0..stages`: its least-memory plan
/// and, when one fits `budget` over `entry` live bytes (the resident ones and the
/// prologue's), its fastest that does. Both ends come from one frontier, which does not
/// depend on the budget.
pub fn nests_within(profiles: &Profiles, stages: usize, entry: i64, budget: i64) -> Vec<Nest> {
    // The finest runs of layers whose distinct segments stay within MAX_SPLITS (from at most
    // 400 units: more would not fit it even if all were equal).
    let (units, effects, segments) = (stages.div_ceil(400)..=stages)
        .map(|per| {
            let units: Vec<Unit> = (0..stages)
                .step_by(per)
                .map(|first| Unit {
                    first,
                    last: (first + per - 1).min(stages - 1),
                })
                .collect();
            let effects: Vec<UnitEffects> = units.iter().map(|&u| unit_effects(profiles, u)).collect();
            let segments = Segments::of(&effects);
            (units, effects, segments)
        })
        .find(|(units, _, segments)| units.len() == 1 || segments.splits <= MAX_SPLITS)
        .expect("one unit always fits");
    let cap = budget - entry;
    let n = units.len();
    let mut frontiers: Vec<Vec<Point>> = vec![Vec::new(); segments.count];
    // What a whole segment leaves behind does not depend on its plan.
    let mut net = vec![0i64; segments.count];
    let mut done = vec![false; segments.count];
    for len in 1..=n {
        for s in 0..=n - len {
            let t = s + len - 1;
            let key = segments.key(s, t);
            if std::mem::replace(&mut done[key], true) {
                continue;
            }
            let e = &effects[s];
            let mut options = Vec::new();
            if s == t {
                let leaf = e.last.then(e.backward);
                net[key] = leaf.net;
                options.push(Point {
                    most: leaf.most,
                    seconds: leaf.seconds,
                    how: How::Last,
                });
            } else {
                let rest_key = segments.key(s + 1, t);
                net[key] = e.all.net + net[rest_key] + e.backward.net;
                for (i, r) in frontiers[rest_key].iter().enumerate() {
                    let most = e
                        .all
                        .most
                        .max(e.all.net + r.most)
                        .max(e.all.net + net[rest_key] + e.backward.most);
                    options.push(Point {
                        most,
                        seconds: e.all.seconds + r.seconds + e.backward.seconds,
                        how: How::Keep { rest: i },
                    });
                }
                let mut chain = e.chain_keep;
                for (at, next) in effects.iter().enumerate().take(t + 1).skip(s + 1) {
                    let (right, left) = (segments.key(at, t), segments.key(s, at - 1));
                    let shift_left = chain.net + net[right];
                    for (most, seconds, (r, l)) in merge(&frontiers[right], chain.net, &frontiers[left], shift_left) {
                        options.push(Point {
                            most: most.max(chain.most),
                            seconds: seconds + chain.seconds,
                            how: How::Split {
                                after: at - s,
                                right: r,
                                left: l,
                            },
                        });
                    }
                    chain = chain.then(next.chain_drop);
                }
            }
            frontiers[key] = thin(pareto(options));
        }
    }
    let root = &frontiers[segments.key(0, n - 1)];
    // The frontier runs from least memory (first) to least time (last).
    let smallest = (!root.is_empty()).then_some(0);
    let fastest = root.iter().rposition(|p| p.most <= cap);
    let picks = smallest.into_iter().chain(fastest.filter(|&f| Some(f) != smallest));
    picks
        .map(|k| rebuild(&frontiers, &segments, &units, 0, n - 1, k))
        .collect()
}

/// Segments `s..=t` named by what they are made of: units with equal effects are
/// interchangeable (a segment's frontier depends on nothing else), so a net of repeated
/// layers plans each distinct run once instead of once per place.
struct Segments {
    keys: Vec<usize>,
    n: usize,
    count: usize,
    /// Checkpoint places over all distinct segments: the program's work.
    splits: usize,
}

impl Segments {
    fn of(effects: &[UnitEffects]) -> Segments {
        let n = effects.len();
        let kind_of: Vec<usize> = {
            let mut kinds: HashMap<Vec<u64>, usize> = HashMap::new();
            effects
                .iter()
                .map(|e| {
                    let fingerprint = e.fingerprint();
                    let next = kinds.len();
                    *kinds.entry(fingerprint).or_insert(next)
                })
                .collect()
        };
        // A trie over kinds: the key of s..=t is the key of s..=t-1 followed by t's kind.
        let mut trie: HashMap<(usize, usize), usize> = HashMap::new();
        let mut keys = vec![0; n * n];
        let mut splits = 0;
        for s in 0..n {
            let mut prefix = usize::MAX;
            for t in s..n {
                let next = trie.len();
                prefix = *trie.entry((prefix, kind_of[t])).or_insert_with(|| {
                    splits += t - s;
                    next
                });
                keys[s * n + t] = prefix;
            }
        }
        Segments {
            keys,
            n,
            count: trie.len(),
            splits,
        }
    }

    fn key(&self, s: usize, t: usize) -> usize {
        self.keys[s * self.n + t]
    }
}

/// The frontier of `max(a + shift_a, b + shift_b)` against summed seconds, over every pair
/// of points of `a` and `b` (each sorted by most, seconds falling): for each threshold, the
/// cheapest point of each side under it.
fn merge(a: &[Point], shift_a: i64, b: &[Point], shift_b: i64) -> Vec<(i64, f64, (usize, usize))> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    if a.is_empty() || b.is_empty() {
        return out;
    }
    loop {
        let m = (a[i].most + shift_a).max(b[j].most + shift_b);
        // Take every point of each side that fits under m (the later, the cheaper).
        while i + 1 < a.len() && a[i + 1].most + shift_a <= m {
            i += 1;
        }
        while j + 1 < b.len() && b[j + 1].most + shift_b <= m {
            j += 1;
        }
        out.push((m, a[i].seconds + b[j].seconds, (i, j)));
        let next_a = a.get(i + 1).map(|p| p.most + shift_a);
        let next_b = b.get(j + 1).map(|p| p.most + shift_b);
        match (next_a, next_b) {
            (None, None) => return out,
            (Some(x), Some(y)) if x <= y => i += 1,
            (Some(_), Some(_)) | (None, Some(_)) => j += 1,
            (Some(_), None) => i += 1,
        }
    }
}

/// Points a segment's frontier keeps at most. Nets whose layers differ at random can have
/// long frontiers, and the program's time grows with their length; past this, a frontier
/// keeps the cheapest point under each of `MAX_POINTS / 2` sizes evenly spaced in memory and
/// the smallest point under each of `MAX_POINTS / 2` times evenly spaced in seconds. A plan's
/// peak stays exact, but it is then no longer sure to be the fastest. Thinning never looks
/// at the budget, so a larger budget never gets a slower plan. Regular nets (and the chains
/// of the brute-force test) stay below it.
pub const MAX_POINTS: usize = 128;

fn thin(points: Vec<Point>) -> Vec<Point> {
    let n = points.len();
    if n <= MAX_POINTS {
        return points;
    }
    let steps = MAX_POINTS as i128 / 2;
    let spread = |lo: i128, hi: i128, i: i128| lo + (hi - lo) * i / (steps - 1);
    let mut keep = vec![false; n];
    // Memory: the last point (the cheapest) at or under each size.
    let (lo, hi) = (points[0].most as i128, points[n - 1].most as i128);
    let mut j = 0;
    for i in 0..steps {
        let size = spread(lo, hi, i) as i64;
        while j + 1 < n && points[j + 1].most <= size {
            j += 1;
        }
        keep[j] = true;
    }
    // Time: the first point (the smallest) at or under each time, in nanoseconds.
    let nanos = |p: &Point| (p.seconds * 1e9) as i128;
    let (slow, fast) = (nanos(&points[0]), nanos(&points[n - 1]));
    let mut j = 0;
    for i in 0..steps {
        let time = spread(slow, fast, i);
        while j + 1 < n && nanos(&points[j]) > time {
            j += 1;
        }
        keep[j] = true;
    }
    points
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(p, _)| p)
        .collect()
}

/// The points no other beats in both most and seconds, most rising.
fn pareto(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_by(|a, b| a.most.cmp(&b.most).then(a.seconds.total_cmp(&b.seconds)));
    let mut out: Vec<Point> = Vec::new();
    for p in points {
        if out.last().is_none_or(|q| p.seconds < q.seconds) {
            out.push(p);
        }
    }
    out
}

fn rebuild(frontiers: &[Vec<Point>], segments: &Segments, units: &[Unit], s: usize, t: usize, k: usize) -> Nest {
    let point = frontiers[segments.key(s, t)][k];
    let u = units[s];
    match point.how {
        How::Last => Nest::keep_all(u.first, u.last),
        How::Keep { rest } => {
            let inner = rebuild(frontiers, segments, units, s + 1, t, rest);
            (u.first..=u.last).rev().fold(inner, |r, k| Nest::Keep(k, Box::new(r)))
        }
        How::Split { after, right, left } => {
            let at = s + after;
            Nest::Split {
                from: u.first,
                at: units[at].first,
                right: Box::new(rebuild(frontiers, segments, units, at, t, right)),
                left: Box::new(rebuild(frontiers, segments, units, s, at - 1, left)),
            }
        }
    }
}
