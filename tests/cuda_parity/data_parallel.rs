//! Data-parallel training on a GPU through NCCL: a one-rank job trains bitwise as the plain
//! single-GPU run (its share is exactly 1 and NCCL's sum over one rank is the identity), with
//! the update after backward and inside it (each gradient summed just before its update).

use super::*;
use chainrule::backend::cuda::nccl::{self, NcclComm};
use chainrule::dist::{Collective, Group};

#[test]
#[ignore = "needs a GPU and NCCL: scripts/gpu-check.sh runs it with --include-ignored"]
fn a_one_rank_nccl_job_trains_bitwise_as_a_single_gpu() {
    let be = gpu(false);
    let (major, minor, patch) = nccl::version().unwrap_or_else(|why| panic!("this test needs NCCL: {why}"));
    println!("NCCL {major}.{minor}.{patch}");
    for (kind, inside) in [OptimizerKind::Sgd, OptimizerKind::AdamW]
        .into_iter()
        .flat_map(|k| [(k, false), (k, true)])
    {
        let run = |joined: bool| {
            let fresh = CudaBackend::open(be.ordinal, MemoryTracker::new(None), false).unwrap();
            let spec = MlpSpec::new("50-64-33-10", "gelu", 0.25).unwrap();
            let mut t = trainer_of(spec, &on_gpu(fresh.clone()), kind, false, plan::CheckpointPolicy::None);
            t.set_update_in_backward(inside).unwrap();
            if joined {
                let comm = NcclComm::join(&fresh, 0, 1, nccl::unique_id().unwrap()).unwrap();
                t.join(Group::new(Arc::new(comm) as Arc<dyn Collective>)).unwrap();
            }
            let mut rng = KeyedRng::new(41, 41);
            let losses: Vec<u32> = (0..4)
                .map(|_| {
                    let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
                    let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
                    t.train_step(x, y, 0.01).unwrap().0.to_bits()
                })
                .collect();
            (losses, param_bits(&t))
        };
        let (plain, joined) = (run(false), run(true));
        assert_eq!(plain.0, joined.0, "{kind:?}: the losses differ");
        assert!(
            plain.1 == joined.1,
            "{kind:?}: a one-rank NCCL job changed the parameters' bits"
        );
    }
}
