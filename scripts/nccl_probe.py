"""NCCL on the GPU machine: the library's version, and all-reduce bus bandwidth for 256 MiB of
f32 gradients with one rank and with two ranks on one GPU (NCCL 2.30+, NCCL_MULTI_RANK_GPU_ENABLE=1).
Prints JSON lines. Bus bandwidth follows nccl-tests: size / time x 2 (n - 1) / n."""
import ctypes
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def nccl_library():
    import nvidia

    for root in nvidia.__path__:
        for folder, _, files in os.walk(root):
            for name in files:
                if name.startswith("libnccl.so"):
                    return os.path.join(folder, name)
    return None


def library_version(path):
    lib = ctypes.CDLL(path)
    version = ctypes.c_int()
    lib.ncclGetVersion(ctypes.byref(version))
    return version.value


def rank_main(rank, world, port, mib, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    grads = torch.randn(mib * 2**20 // 4, device="cuda")
    for _ in range(3):
        dist.all_reduce(grads)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 10
    start.record()
    for _ in range(reps):
        dist.all_reduce(grads)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / reps
    if rank == 0:
        size = grads.numel() * 4
        bus = size / seconds * (2 * (world - 1) / world) if world > 1 else 0.0
        result.put({"ranks": world, "mib": mib, "ms": seconds * 1e3,
                    "algbw_gbs": size / seconds / 1e9, "busbw_gbs": bus / 1e9})
    dist.destroy_process_group()


def main():
    path = nccl_library()
    print(json.dumps({"libnccl": path, "version": library_version(path) if path else None,
                      "torch_nccl": ".".join(map(str, torch.cuda.nccl.version()))}), flush=True)
    os.environ.setdefault("NCCL_MULTI_RANK_GPU_ENABLE", "1")
    ctx = mp.get_context("spawn")
    # Two ranks on one GPU need NCCL 2.30 (earlier ones refuse: "Duplicate GPU detected").
    version = torch.cuda.nccl.version()
    worlds = (1, 2) if tuple(version) >= (2, 30) else (1,)
    for world in worlds:
        result = ctx.Queue()
        procs = [ctx.Process(target=rank_main, args=(r, world, 29500 + world, 256, result))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        codes = [p.exitcode for p in procs]
        if result.empty():
            print(json.dumps({"ranks": world, "error": f"exit codes {codes}"}), flush=True)
        else:
            print(json.dumps(result.get()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
