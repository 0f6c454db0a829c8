"""JAX baseline for `chainrule bench`: the same MLP (ReLU, softmax cross-entropy, PyTorch's
Linear initialisation) and SGD step as one jitted function, timed like the others (median
per-step time, the loss read back every step). bf16: parameters stay f32 and each product
reads bf16 copies, as autocast does. Prints one JSON object.

    jax_bench.py WIDTHS BATCH MODE STEPS WARMUP       MODE: f32, tf32 or bf16
"""
import json, os, statistics, sys, time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
import jax
import jax.numpy as jnp


def bench(widths, batch, mode, steps, warmup):
    precision = {"f32": "highest", "tf32": "tensorfloat32"}.get(mode, "default")
    jax.config.update("jax_default_matmul_precision", precision)
    low = jnp.bfloat16 if mode == "bf16" else jnp.float32
    key = jax.random.PRNGKey(0)
    params = []
    for i in range(len(widths) - 1):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / widths[i] ** 0.5
        params.append((jax.random.uniform(kw, (widths[i], widths[i + 1]), minval=-bound, maxval=bound),
                       jax.random.uniform(kb, (widths[i + 1],), minval=-bound, maxval=bound)))
    key, kx, ky = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (batch, widths[0]))
    y = jax.random.randint(ky, (batch,), 0, widths[-1])

    def loss_fn(params, x, y):
        h = x.astype(low)
        for i, (w, b) in enumerate(params):
            h = h @ w.astype(low) + b.astype(low)
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h.astype(jnp.float32))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - 1e-3 * g, params, grads), loss

    times = []
    for s in range(warmup + steps):
        t = time.perf_counter()
        params, loss = step(params, x, y)
        float(loss)
        if s >= warmup:
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    n = sum(w.size + b.size for w, b in params)
    return {"impl": "jax-jit", "mode": mode, "layers": "-".join(map(str, widths)), "batch_size": batch,
            "samples_per_sec": batch / step_s, "step_ms_median": step_s * 1e3,
            "tflops": 6 * n * batch / step_s / 1e12, "peak_bytes": 0}


if __name__ == "__main__":
    widths = [int(w) for w in sys.argv[1].split("-")]
    print(json.dumps(bench(widths, int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
