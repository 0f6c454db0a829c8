//! Which GPUs a job uses (`--devices 0,1,2,3` or `all`) and which one each rank takes.
//!
//! The rule, stated once: a rank takes entry LOCAL_RANK of the listed GPUs; with no list (or
//! `all`) it takes GPU LOCAL_RANK of those it sees, except that a process that sees exactly
//! one GPU takes that one, whatever its LOCAL_RANK. A scheduler that gives each task only
//! its own GPU (SLURM's `--gpus-per-task`, or `CUDA_VISIBLE_DEVICES` set per task) makes
//! every rank see one GPU numbered 0, where "GPU LOCAL_RANK" would not exist.

use std::fmt;
use std::str::FromStr;

/// `--devices`: GPUs by number, or every GPU this process sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceList {
    All,
    Listed(Vec<usize>),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("'{0}': expected GPU numbers such as 0,1,2,3, or all")]
    Syntax(String),
    #[error("GPU {0} is listed twice (one process per GPU)")]
    Twice(usize),
    #[error("{why}")]
    NoGpu { why: String },
    #[error("there is no GPU {gpu} here: this process sees {visible} GPU(s)")]
    Missing { gpu: usize, visible: usize },
    #[error("LOCAL_RANK={local_rank} but {count} GPU(s) are listed: list one per process on this machine")]
    ShortList { local_rank: usize, count: usize },
    #[error("LOCAL_RANK={local_rank} but this process sees {visible} GPUs: give each task its own GPU (CUDA_VISIBLE_DEVICES, or SLURM's --gpus-per-task 1), or list one per process with --devices")]
    TooFewVisible { local_rank: usize, visible: usize },
}

impl FromStr for DeviceList {
    type Err = PlacementError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("all") {
            return Ok(DeviceList::All);
        }
        let gpus = text
            .split(',')
            .map(|g| g.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| PlacementError::Syntax(text.to_string()))?;
        if let Some(twice) = gpus
            .iter()
            .enumerate()
            .find_map(|(i, g)| gpus[..i].contains(g).then_some(*g))
        {
            return Err(PlacementError::Twice(twice));
        }
        Ok(DeviceList::Listed(gpus))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceList::All => write!(f, "all"),
            DeviceList::Listed(gpus) => {
                let text: Vec<String> = gpus.iter().map(usize::to_string).collect();
                write!(f, "{}", text.join(","))
            }
        }
    }
}

impl DeviceList {
    /// The GPUs by number, given what this process sees (`Err`: why it sees none): every
    /// listed one must exist; `all` is every one seen, and an error when there is none.
    pub fn resolve(&self, visible: Result<usize, String>) -> Result<Vec<usize>, PlacementError> {
        let count = match (self, visible) {
            (_, Ok(n)) if n > 0 => n,
            (_, Ok(_)) => {
                return Err(PlacementError::NoGpu {
                    why: "no GPU is usable".into(),
                })
            }
            (_, Err(why)) => return Err(PlacementError::NoGpu { why }),
        };
        match self {
            DeviceList::All => Ok((0..count).collect()),
            DeviceList::Listed(gpus) => match gpus.iter().find(|&&g| g >= count) {
                Some(&gpu) => Err(PlacementError::Missing { gpu, visible: count }),
                None => Ok(gpus.clone()),
            },
        }
    }
}

/// The GPU (by number among those this process sees) that the rank at `local_rank` takes,
/// by the rule at the top of this file; `listed` is `--devices` when it lists numbers.
pub fn gpu_for_rank(local_rank: usize, listed: Option<&[usize]>, visible: usize) -> Result<usize, PlacementError> {
    match listed {
        Some(gpus) => gpus.get(local_rank).copied().ok_or(PlacementError::ShortList {
            local_rank,
            count: gpus.len(),
        }),
        None if visible == 1 => Ok(0),
        None if local_rank < visible => Ok(local_rank),
        None => Err(PlacementError::TooFewVisible { local_rank, visible }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_takes_its_entry_of_the_list_or_its_local_rank_or_its_only_gpu() {
        // torchrun on an 8-GPU machine: GPU LOCAL_RANK.
        assert_eq!(gpu_for_rank(5, None, 8), Ok(5));
        // SLURM's --gpus-per-task 1: every task sees its own GPU as GPU 0.
        for local_rank in 0..4 {
            assert_eq!(gpu_for_rank(local_rank, None, 1), Ok(0));
        }
        // A list picks by LOCAL_RANK, whatever the GPUs' numbers.
        assert_eq!(gpu_for_rank(1, Some(&[6, 2]), 8), Ok(2));
        assert_eq!(
            gpu_for_rank(2, Some(&[6, 2]), 8),
            Err(PlacementError::ShortList {
                local_rank: 2,
                count: 2
            })
        );
        // Two GPUs each for four tasks is a mistake to name, not a silent sharing.
        assert_eq!(
            gpu_for_rank(3, None, 2),
            Err(PlacementError::TooFewVisible {
                local_rank: 3,
                visible: 2
            })
        );
    }

    #[test]
    fn devices_are_a_list_of_numbers_or_all() {
        assert_eq!("0,1, 3".parse(), Ok(DeviceList::Listed(vec![0, 1, 3])));
        assert_eq!("ALL".parse(), Ok(DeviceList::All));
        assert_eq!("1,1".parse::<DeviceList>(), Err(PlacementError::Twice(1)));
        assert!(matches!("8 GPUs".parse::<DeviceList>(), Err(PlacementError::Syntax(_))));
        assert_eq!(DeviceList::All.resolve(Ok(3)), Ok(vec![0, 1, 2]));
        assert_eq!(
            DeviceList::Listed(vec![0, 4]).resolve(Ok(4)),
            Err(PlacementError::Missing { gpu: 4, visible: 4 })
        );
        let none = DeviceList::All.resolve(Err("the CUDA driver library was not found".into()));
        assert!(matches!(none, Err(PlacementError::NoGpu { why }) if why.contains("driver")));
        assert_eq!(DeviceList::Listed(vec![2, 0]).to_string(), "2,0");
    }
}
