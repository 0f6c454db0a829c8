"""PyTorch eager baseline for `chainrule bench`: the same MLP, SGD step and timing
(median per-step time, the loss read back every step). Prints one JSON object per line."""
import json, statistics, sys, time
import torch

def bench(widths, batch, mode, steps, warmup):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    dev = torch.device("cuda")
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(batch, widths[0], device=dev)
    y = torch.randint(0, widths[-1], (batch,), device=dev)
    loss_fn = torch.nn.CrossEntropyLoss()
    low = {"bf16": torch.bfloat16, "f16": torch.float16}.get(mode)
    # f16 trains with dynamic loss scaling, as chainrule's --dtype f16 does.
    scaler = torch.amp.GradScaler("cuda", enabled=mode == "f16")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for s in range(warmup + steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=low or torch.bfloat16, enabled=low is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        loss.item()
        if s >= warmup:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    return {"impl": "pytorch", "mode": mode, "layers": "-".join(map(str, widths)), "batch_size": batch,
            "samples_per_sec": batch / step, "step_ms_median": step * 1e3,
            "tflops": 6 * params * batch / step / 1e12, "peak_bytes": torch.cuda.max_memory_allocated()}

def ceiling(mode, n=8192, reps=10):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return {"impl": "cublas-ceiling", "mode": mode, "tflops": 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12}

if __name__ == "__main__":
    widths = [int(w) for w in sys.argv[1].split("-")]
    batch, mode, steps, warmup = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    if sys.argv[1] == "0":
        print(json.dumps(ceiling(mode)))
    else:
        print(json.dumps(bench(widths, batch, mode, steps, warmup)))
