//! Which rows of a global batch each rank takes: contiguous, in rank order, sizes differing by
//! at most one. The global batch comes from the same keyed shuffle on every rank, so the
//! examples of a step do not depend on how many ranks share it.

use std::ops::Range;

/// Rank `rank`'s rows of a global batch of `len` rows split over `world` ranks. A rank may
/// get none (a last batch smaller than the world).
pub fn shard_rows(len: usize, rank: usize, world: usize) -> Range<usize> {
    assert!(rank < world, "rank {rank} of a world of {world}");
    (len * rank / world)..(len * (rank + 1) / world)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_at_most_one_row() {
        for len in 0..40 {
            for world in 1..9 {
                let shards: Vec<_> = (0..world).map(|r| shard_rows(len, r, world)).collect();
                assert_eq!(shards[0].start, 0);
                assert_eq!(shards[world - 1].end, len);
                for w in shards.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let sizes: Vec<_> = shards.iter().map(|s| s.len()).collect();
                assert!(
                    sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                    "{len} over {world}: {sizes:?}"
                );
            }
        }
    }
}
