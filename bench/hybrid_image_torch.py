#!/usr/bin/env python3
"""The hybrid text-to-image model of mmgen, re-implemented in PyTorch (eager), loading
the same model folder (config.json + model.safetensors, f16 -> f32), to time the same
work as `mmgen bench generate`: text encoding, 50 DDIM steps with classifier-free
guidance (batch 2 per step), VAE decode, on the same number of CPU threads.

    python3 bench/hybrid_image_torch.py --model models/hybrid-image --threads 2 \
        [--check reference.safetensors]

--train-step B times the training step instead (text encoder + DiT forward, MSE to a
v target, backward, AdamW; batch B of random latents, as `mmgen bench train --models
hybrid-image --batch B`), for the samples/s ratio; --device cuda runs either on a GPU.

--check compares every part with the reference case that
`mmgen bench generate --dump reference.safetensors` writes (same inputs, mmgen's
outputs) and prints the largest differences: the two implementations are one model.
Setup: python3 -m venv .venv-bench && .venv-bench/bin/pip install torch safetensors numpy
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def linear(w, prefix, x):
    return F.linear(x, w[prefix + ".weight"], w.get(prefix + ".bias"))


def layer_norm(x, w=None, prefix=None):
    if prefix is None:
        return F.layer_norm(x, x.shape[-1:], eps=1e-5)
    return F.layer_norm(x, x.shape[-1:], w[prefix + ".weight"], w[prefix + ".bias"], eps=1e-5)


def attention(w, prefix, x, heads, context=None, mask=None):
    context = x if context is None else context
    b, n, d = x.shape
    m = context.shape[1]
    hd = d // heads
    q = linear(w, prefix + ".q", x).view(b, n, heads, hd).transpose(1, 2)
    k = linear(w, prefix + ".k", context).view(b, m, heads, hd).transpose(1, 2)
    v = linear(w, prefix + ".v", context).view(b, m, heads, hd).transpose(1, 2)
    scores = q @ k.transpose(2, 3) / math.sqrt(hd)
    if mask is not None:
        scores = scores + (mask * 1e4 - 1e4)[:, None, None, :]
    y = torch.softmax(scores, dim=-1) @ v
    return linear(w, prefix + ".out", y.transpose(1, 2).reshape(b, n, d))


def mlp(w, prefix, x):
    return linear(w, prefix + ".down", F.gelu(linear(w, prefix + ".up", x), approximate="tanh"))


def text_encoder(w, cfg, ids, mask):
    L = ids.shape[1]
    x = w["text.tokens.weight"][ids] + w["text.positions"][:L][None]
    for i in range(cfg["depth"]):
        p = f"text.layers.{i}"
        x = x + attention(w, p + ".attn", layer_norm(x, w, p + ".norm1"), cfg["heads"], mask=mask)
        x = x + mlp(w, p + ".mlp", layer_norm(x, w, p + ".norm2"))
    x = layer_norm(x, w, "text.norm")
    weights = mask[..., None]
    pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return x, pooled


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def dit(w, cfg, xs, t, text, mask, pooled):
    b, s, _, c = xs.shape
    p, g = cfg["patch"], s // cfg["patch"]
    tokens = xs.reshape(b, g, p, g, p * c).permute(0, 1, 3, 2, 4).reshape(b, g * g, p * p * c)
    x = linear(w, "dit.patch_in", tokens) + w["dit.positions"][None]
    cond = linear(w, "dit.time.1", F.silu(linear(w, "dit.time.0", timestep_embedding(t, 256))))
    cond = cond + linear(w, "dit.pooled", pooled)
    for i in range(cfg["depth"]):
        q = f"dit.blocks.{i}"
        sh1, sc1, g1, sh2, sc2, g2 = linear(w, q + ".ada", F.silu(cond)).chunk(6, dim=1)
        x = x + attention(w, q + ".attn", modulate(layer_norm(x), sh1, sc1), cfg["heads"]) * g1[:, None]
        x = x + attention(w, q + ".cross", layer_norm(x, w, q + ".norm_cross"), cfg["heads"], text, mask)
        x = x + mlp(w, q + ".mlp", modulate(layer_norm(x), sh2, sc2)) * g2[:, None]
    shift, scale = linear(w, "dit.final_ada", F.silu(cond)).chunk(2, dim=1)
    out = linear(w, "dit.patch_out", modulate(layer_norm(x), shift, scale))
    return out.reshape(b, g, g, p, p * c).permute(0, 1, 3, 2, 4).reshape(b, s, s, c)


def conv3x3(w, prefix, x):
    """mmgen stores 3x3 kernels as (9, c_in, c_out), taps ordered (dy, dx); x is NHWC."""
    k = w[prefix + ".weight"]
    cin, cout = k.shape[1], k.shape[2]
    k = k.reshape(3, 3, cin, cout).permute(3, 2, 0, 1)
    y = F.conv2d(x.permute(0, 3, 1, 2), k, w[prefix + ".bias"], padding=1)
    return y.permute(0, 2, 3, 1)


def depth_to_space(x, k):
    b, h, w_, kkc = x.shape
    c = kkc // (k * k)
    return x.reshape(b, h, w_, k, k * c).permute(0, 1, 3, 2, 4).reshape(b, h * k, w_ * k, c)


def vae_decode(w, cfg, z):
    levels = len(cfg["channels"])
    x = linear(w, "vae.decoder.input", z)
    for i in range(levels):
        p = f"vae.decoder.levels.{i}"
        for j in range(cfg["blocks"]):
            q = f"{p}.blocks.{j}"
            x = x + conv3x3(w, q + ".conv2", F.silu(conv3x3(w, q + ".conv1", F.silu(x))))
        if i + 1 < levels:
            x = depth_to_space(linear(w, p + ".up", F.silu(x)), 2)
    x = depth_to_space(linear(w, "vae.decoder.patch_out", F.silu(x)), cfg["patch"])
    return torch.tanh(x).permute(0, 3, 1, 2)


def sigmas_trailing(cfg, steps):
    sched = cfg["schedule"]["scaled_linear"]
    n = cfg["train_steps"]
    betas = torch.linspace(sched["start"] ** 0.5, sched["end"] ** 0.5, n, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    ts = [max(0.0, round(n * (1 - i / steps) - 1)) for i in range(steps)]
    sig = [math.sqrt((1 - abar[int(t)]) / abar[int(t)]) for t in ts]
    return ts, sig + [0.0]


def generate(w, cfg, ids, mask, steps, guidance, seed):
    text, pooled = text_encoder(w, cfg["text"], ids, mask)
    dc = cfg["dit"]
    s, c = dc["latent_size"], dc["latent_channels"]
    ts, sig = sigmas_trailing(cfg, steps)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(1, s, s, c, generator=gen) * math.sqrt(1 + sig[0] ** 2)
    for i in range(steps):
        s0, s1 = sig[i], sig[i + 1]
        x = y / math.sqrt(1 + s0 * s0)
        out = dit(w, dc, torch.cat([x, x]), torch.full((2,), float(ts[i])), text, mask, pooled)
        v = out[1:] + guidance * (out[:1] - out[1:])
        abar = 1 / (1 + s0 * s0)
        x0 = abar * y - math.sqrt(1 - abar) * v  # v-prediction
        eps = (y - x0) / s0
        y = x0 + s1 * eps  # DDIM (eta 0) in sigma coordinates
    return vae_decode(w, cfg["vae"], y / cfg["latent_scale"])


def train_step(w, cfg, batch, iters, device):
    """Median seconds of one optimiser step on the text encoder and DiT."""
    params = {k: v.clone().requires_grad_(True) for k, v in w.items() if not k.startswith("vae.")}
    frozen = {k: v for k, v in w.items() if k.startswith("vae.")}
    opt = torch.optim.AdamW(params.values(), lr=1e-4, weight_decay=1e-4)
    dc = cfg["dit"]
    s, c = dc["latent_size"], dc["latent_channels"]
    latents = torch.randn(batch, s, s, c, device=device)
    noise = torch.randn_like(latents)
    length = min(32, cfg["text"]["max_len"])  # as `mmgen bench train` (32 tokens)
    ids = torch.zeros(batch, length, dtype=torch.long, device=device)
    mask = torch.ones(batch, length, device=device)
    t = torch.full((batch,), 500.0, device=device)

    def step():
        ww = {**frozen, **params}
        states, pooled = text_encoder(ww, cfg["text"], ids, mask)
        xs = latents * 0.5 + noise * 0.866
        loss = ((dit(ww, dc, xs, t, states, mask, pooled) - noise) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    times = []
    for i in range(iters + 3):
        start = time.perf_counter()
        step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"batch": batch, "step_seconds": seconds, "samples_per_s": batch / seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/hybrid-image")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--check", help="reference safetensors from `mmgen bench generate --dump`")
    ap.add_argument("--train-step", type=int, metavar="B", help="time the training step at batch B")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    w = {k: v.float().to(args.device) for k, v in load_file(os.path.join(args.model, "model.safetensors")).items()}
    report = {"peer": f"pytorch {torch.__version__} eager", "threads": args.threads, "device": args.device}
    if args.train_step:
        report.update(train_step(w, cfg, args.train_step, args.iters, args.device))
        print(json.dumps(report, indent=2))
        return
    report["steps"] = args.steps
    with torch.inference_mode():
        if args.check:
            ref = load_file(args.check)
            ids, mask = ref["ids"].long(), ref["mask"].float()
            states, pooled = text_encoder(w, cfg["text"], ids, mask)
            out = dit(w, cfg["dit"], ref["xs"], ref["timesteps"], states, mask, pooled)
            image = vae_decode(w, cfg["vae"], ref["xs"] / cfg["latent_scale"])
            diff = lambda a, b: float((a - b).abs().max())
            report["max_abs_diff"] = {
                "text_states": diff(states, ref["text_states"]),
                "dit_out": diff(out, ref["dit_out"]),
                "decoded": diff(image, ref["decoded"]),
            }
            ids, mask = ids, mask
        else:
            ids = torch.zeros(2, 8, dtype=torch.long)
            mask = torch.ones(2, 8)
        times = []
        for i in range(args.iters + 1):
            start = time.perf_counter()
            generate(w, cfg, ids, mask, args.steps, args.guidance, i)
            if i > 0:  # the first run warms up
                times.append(time.perf_counter() - start)
    report["seconds_per_image"] = statistics.median(times)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
