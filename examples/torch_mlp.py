"""A chainrule model file loaded into plain torch.nn: the same module, the same names.

    python examples/torch_mlp.py model.safetensors   # prints the module and its logits' shape

`load(path)` returns the torch module with the file's weights (strict: every name must
match) and the input normalization the file records; chainrule's `predict` and this
module give the same logits for the same raw inputs.
"""
import json
import struct
import sys

import numpy as np
import torch
from torch import nn


NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm, "batch": nn.BatchNorm1d, "none": lambda width: nn.Identity()}


class Block(nn.Module):
    """x + fc2(drop(act(fc1(norm(x))) [* fc3(norm(x))])), dropout on the branch too."""

    def __init__(self, width, expansion, norm, act, gated, dropout):
        super().__init__()
        hidden = width * expansion
        self.norm = NORMS[norm](width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.fc3 = nn.Linear(width, hidden) if gated else None
        self.act, self.drop = act, nn.Dropout(dropout)

    def forward(self, x):
        n = self.norm(x)
        h = self.act(self.fc1(n))
        if self.fc3 is not None:
            h = h * self.fc3(n)  # SwiGLU with SiLU, GEGLU with GELU
        return x + self.drop(self.fc2(self.drop(h)))


class BlockMLP(nn.Module):
    """input projection, blocks, a last norm, output projection."""

    def __init__(self, features, width, depth, classes, expansion=4, norm="layer", act=None,
                 gated=False, dropout=0.0):
        super().__init__()
        act = act or nn.GELU(approximate="tanh")
        self.input = nn.Linear(features, width)
        self.blocks = nn.ModuleList(Block(width, expansion, norm, act, gated, dropout) for _ in range(depth))
        self.norm = NORMS[norm](width)
        self.output = nn.Linear(width, classes)

    def forward(self, x):
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        return self.output(self.norm(h))


class ChainMLP(nn.Module):
    """The plain chain: layers.{i}, the activation and dropout between them."""

    def __init__(self, widths, act, dropout=0.0):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.act, self.drop = act, nn.Dropout(dropout)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.drop(self.act(layer(x)))
        return self.layers[-1](x)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU,
               "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    tensors = {name: torch.from_numpy(np.frombuffer(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]],
                                                    "<f4").reshape(t["shape"]).copy())
               for name, t in header.items()}
    return tensors, meta


def load(path):
    tensors, meta = read_safetensors(path)
    spec = json.loads(meta["model"])
    widths, act = spec["widths"], ACTIVATIONS[spec["activation"]]()
    blocks = spec.get("blocks")
    if blocks is None:
        model = ChainMLP(widths, act, spec["dropout"])
    else:
        model = BlockMLP(widths[0], widths[1], len(widths) - 2, widths[-1], blocks["expansion"], blocks["norm"],
                         act, blocks["kind"] == "gated", spec["dropout"])
    params = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(params, strict=True)
    return model.eval(), json.loads(meta["normalization"])


def prepare(x, norm):
    """Raw inputs as the model saw them: x * scale, then standardized if the run did."""
    x = x * norm["scale"]
    if norm.get("mean") is not None:
        x = (x - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)
    return torch.from_numpy(x.astype(np.float32))


if __name__ == "__main__":
    model, norm = load(sys.argv[1])
    print(model)
