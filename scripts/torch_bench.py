"""Baselines for `chainrule bench` on the same MLP, SGD step and timing (median per-step time,
the loss read back every step): PyTorch eager, torch.compile (default and
mode="reduce-overhead", which replays CUDA graphs), the cuBLAS ceilings, and the bf16 matrix
products of one step with bf16 and with f32 results. Prints one JSON object per line.

    torch_bench.py WIDTHS BATCH MODE STEPS WARMUP [eager|compile|compile-ro]
                 MODE: f32, tf32, bf16, f16, or float8 (torchao's float8 training, tensorwise
                 dynamic scaling, on Linears whose sides are multiples of 16, under bf16 autocast)
    torch_bench.py 0 0 MODE 0 0          the 8192^3 cuBLAS ceiling in MODE (tf32 or bf16)
    torch_bench.py products 8192         bf16 products y=x.Wt, dW=gt.x, dx=g.W: bf16 vs f32 results
"""
import json, statistics, sys, time
import torch

IMPL = {"eager": "pytorch", "compile": "torch-compile", "compile-ro": "torch-compile-ro"}


def bench(widths, batch, mode, steps, warmup, how="eager"):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    dev = torch.device("cuda")
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    if mode == "float8":
        from torchao.float8 import convert_to_float8_training

        def sides_of_16(mod, fqn):
            return mod.in_features % 16 == 0 and mod.out_features % 16 == 0

        convert_to_float8_training(model, module_filter_fn=sides_of_16)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    if how != "eager":
        model = torch.compile(model, mode="reduce-overhead" if how == "compile-ro" else "default")
    x = torch.rand(batch, widths[0], device=dev)
    y = torch.randint(0, widths[-1], (batch,), device=dev)
    loss_fn = torch.nn.CrossEntropyLoss()
    low = {"bf16": torch.bfloat16, "f16": torch.float16, "float8": torch.bfloat16}.get(mode)
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
    return {"impl": IMPL[how], "mode": mode, "layers": "-".join(map(str, widths)), "batch_size": batch,
            "samples_per_sec": batch / step, "step_ms_median": step * 1e3,
            "tflops": 6 * params * batch / step / 1e12, "peak_bytes": torch.cuda.max_memory_allocated()}


def timed(f, reps=10):
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def ceiling(mode, n=8192):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    return {"impl": "cublas-ceiling", "mode": mode, "tflops": 2 * n ** 3 / timed(lambda: a @ b) / 1e12}


def products(n):
    """The three products of a square Linear layer's step, in the layouts a training step
    uses, with bf16 results and with f32 results (f32 accumulation either way): how much
    of the gap between a step's products and the ceiling the result type explains."""
    x, w, g = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    rows = []
    for name, a, b in [("y=x.Wt", x, w.t()), ("dW=gt.x", g.t(), x), ("dx=g.W", g, w)]:
        for out in ["bf16", "f32"]:
            f = (lambda: a @ b) if out == "bf16" else (lambda: torch.mm(a, b, out_dtype=torch.float32))
            try:
                secs = timed(f)
                rows.append({"impl": "cublas-product", "product": name, "result": out, "n": n,
                             "ms": secs * 1e3, "tflops": 2 * n ** 3 / secs / 1e12})
            except (RuntimeError, TypeError) as e:
                rows.append({"impl": "cublas-product", "product": name, "result": out, "n": n, "error": str(e)[:200]})
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "products":
        for row in products(int(sys.argv[2])):
            print(json.dumps(row))
    elif sys.argv[1] == "0":
        print(json.dumps(ceiling(sys.argv[3])))
    else:
        widths = [int(w) for w in sys.argv[1].split("-")]
        batch, mode, steps, warmup = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        how = sys.argv[6] if len(sys.argv) > 6 else "eager"
        print(json.dumps(bench(widths, batch, mode, steps, warmup, how)))
