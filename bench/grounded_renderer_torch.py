#!/usr/bin/env python3
"""The grounded renderer of mmgen (crates/models/src/grounded/renderer.rs and field.rs),
re-implemented in PyTorch (eager), loading the same model folder (config.json +
model.safetensors, f16 -> f32), to time the same work as `mmgen bench grounded`'s
renderer step: the plan grounded once, then one `predict` on a noisy 64x64 image at
timestep 500 (batch 1), on the same number of CPU threads.

    python3 bench/grounded_renderer_torch.py --model models/grounded-renderer --threads 2 \
        [--iters 10] [--json] [--check reference.safetensors]

--train-step B times one training step instead (ground + predict on B random plans
and noisy images at random timesteps, MSE to a random target, backward, AdamW), for
the samples/s ratio; --device cuda runs either on a GPU.

--check compares the grounding (pixels, globals) and the prediction with the
reference case that `mmgen bench grounded --dump reference.safetensors` writes (two
plans, noisy images, mmgen's outputs), prints the largest absolute differences and
exits non-zero when one exceeds 1e-3: the two implementations are one network.
Setup: python3 -m venv .venv-bench && .venv-bench/bin/pip install torch safetensors numpy
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

MAX_OBJECTS = 4  # plan.rs
STILL_TIME = 0.5  # plan.rs: the clip time a still shows
SUPPORT = 1.6  # field.rs: an object's support, in units of its radius
SIGMA_DATA = 0.5  # renderer.rs: EDM's data standard deviation
LN_EPS = 1e-5  # mmgen_nn::LayerNorm


# ---------------------------------------------------------------- mmgen_nn helpers

def layer_norm(x):
    """mmgen_nn::LayerNorm without affine parameters, over the last dim, eps 1e-5."""
    return F.layer_norm(x, x.shape[-1:], eps=LN_EPS)


def space_to_depth(x, k):
    """(b, h, w, c) -> (b, h/k, w/k, k*k*c), channels ordered (dy, dx, c)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // k, k, w // k, k * c).permute(0, 1, 3, 2, 4).reshape(b, h // k, w // k, k * k * c)


def depth_to_space(x, k):
    """The inverse of space_to_depth: (b, h, w, k*k*c) -> (b, h*k, w*k, c)."""
    b, h, w, kkc = x.shape
    c = kkc // (k * k)
    return x.reshape(b, h, w, k, k * c).permute(0, 1, 3, 2, 4).reshape(b, h * k, w * k, c)


def timestep_embedding(t, dim):
    """mmgen_nn::timestep_embedding: [cos(t f_i), sin(t f_i)], f_i = 10000^(-i/half)
    computed in f64 and rounded to f32, the product in f32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    freqs = freqs.to(torch.float32).to(t.device)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def fourier(x, octaves):
    """field.rs fourier: x and sin / cos(pi 2^j x) for j < octaves, on the last dim."""
    parts = [x]
    for j in range(octaves):
        scaled = x * (math.pi * (1 << j))
        parts.append(torch.sin(scaled))
        parts.append(torch.cos(scaled))
    return torch.cat(parts, dim=-1)


def canvas_coords(h, w):
    """Pixel-centre (u, v) in [0, 1] of an h x w canvas, (h w, 2), row-major."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    u = (xs + 0.5) / w
    v = (ys + 0.5) / h
    return torch.stack([u, v], dim=-1).reshape(h * w, 2)


def object_coords(poses, uv):
    """(b, K, 4) poses, (n, 2) uv -> (b, K, n, 2): offset from the centre unrotated and
    divided by the radius, y up."""
    cx, cy, radius, angle = (poses[..., i : i + 1] for i in range(4))  # (b, K, 1)
    u = uv[:, 0][None, None]
    v = uv[:, 1][None, None]
    dx = u - cx
    dy = v - cy
    s, c = torch.sin(angle), torch.cos(angle)
    lx = (dx * c + dy * s) / radius
    ly = (dx * s - dy * c) / radius
    return torch.stack([lx, ly], dim=3)


def support(coords):
    """1 where max(|x|, |y|) < SUPPORT: (b, K, n)."""
    return (coords.abs().amax(dim=-1) < SUPPORT).to(torch.float32)


class Conv3x3(nn.Module):
    """mmgen_nn::Conv3x3: weight (9, c_in, c_out), taps ordered (dy, dx); padding 1 (the
    CellGrid's zero border). Works on NHWC."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(9, c_in, c_out))
        self.bias = nn.Parameter(torch.empty(c_out))

    def forward(self, x):
        c_in, c_out = self.weight.shape[1], self.weight.shape[2]
        k = self.weight.reshape(3, 3, c_in, c_out).permute(3, 2, 0, 1)
        # A permuted contiguous NHWC tensor is a channels-last NCHW one: no copies.
        y = F.conv2d(x.permute(0, 3, 1, 2), k, self.bias, padding=1)
        return y.permute(0, 2, 3, 1)


# ---------------------------------------------------------------- renderer.rs

class ResBlock(nn.Module):
    """norm, SiLU, conv1, FiLM (x (1 + scale) + shift after norm2), SiLU, conv2, plus
    the input (through `skip` when widths differ). On NHWC: the CellGrid's zero border
    is the convolutions' zero padding, and the per-cell maps leave it at zero."""

    def __init__(self, c_in, c_out, embed_dim):
        super().__init__()
        self.conv1 = Conv3x3(c_in, c_out)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.conv2 = Conv3x3(c_out, c_out)
        self.skip = nn.Linear(c_in, c_out) if c_in != c_out else None

    def forward(self, x, cond):
        h = self.conv1(F.silu(layer_norm(x)))
        film = self.film(cond)[:, None, None, :]
        c = film.shape[-1] // 2
        scale, shift = film[..., :c], film[..., c:]
        h = layer_norm(h) * (scale + 1.0) + shift
        h = self.conv2(F.silu(h))
        skip = self.skip(x) if self.skip is not None else x
        return skip + h


class ClipLight(nn.Module):
    def __init__(self, embed_dim, octaves):
        super().__init__()
        self.hidden = nn.Linear(1 + 2 * octaves + embed_dim, embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.octaves = octaves

    def forward(self, times, lighting):
        encoded = fourier(times, self.octaves)
        return self.out(F.silu(self.hidden(torch.cat([encoded, lighting], dim=1))))


class ObjectField(nn.Module):
    def __init__(self, n_shapes, n_colours, n_sizes, hidden, features, colour_dim, octaves):
        super().__init__()
        inputs = 2 + 4 * octaves
        self.shape_weights = nn.Embedding(n_shapes, inputs * hidden)
        self.shapes = nn.Embedding(n_shapes, hidden)
        self.sizes = nn.Embedding(n_sizes, hidden)
        self.colours = nn.Embedding(n_colours, colour_dim)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1 + features)
        self.octaves = octaves
        self.n_hidden = hidden

    def channels(self):
        return self.out.weight.shape[0] - 1 + self.colours.weight.shape[1] + 1

    def forward(self, object_ids, present, poses, uv):
        b, k = present.shape
        n = uv.shape[0]
        coords = object_coords(poses, uv)  # (b, K, n, 2)
        weight = support(coords) * present[:, :, None]
        shape, colour_id, size = object_ids[..., 0], object_ids[..., 1], object_ids[..., 2]
        bias = (self.shapes(shape) + self.sizes(size))[:, :, None, :]  # (b, K, 1, hidden)
        colour = self.colours(colour_id)[:, :, None, :].expand(b, k, n, -1)
        inputs = 2 + 4 * self.octaves
        hidden = self.n_hidden
        weights = self.shape_weights(shape).reshape(b * k, inputs, hidden)
        encoded = fourier(coords, self.octaves).reshape(b * k, n, inputs)
        h = F.silu(torch.bmm(encoded, weights).reshape(b, k, n, hidden) + bias)
        h = F.silu(self.hidden(h))
        out = self.out(h)
        occupancy = out[..., 0]
        alpha = torch.sigmoid(occupancy) * weight  # (b, K, n)
        value = torch.cat([out[..., 1:], colour], dim=3)
        # Front (the last slot) to back: each slot shows through what is in front of it.
        through = torch.ones(b, n, 1, dtype=out.dtype, device=out.device)
        acc = None
        for slot in reversed(range(k)):
            a = alpha[:, slot, :, None]
            term = value[:, slot] * (through * a)
            acc = term if acc is None else acc + term
            through = through * (1.0 - a)
        coverage = 1.0 - through
        return torch.cat([acc, coverage], dim=2), occupancy, weight


class BackgroundField(nn.Module):
    def __init__(self, embed_dim, hidden, features, octaves):
        super().__init__()
        self.coords = nn.Linear(2 + 4 * octaves, hidden)
        self.globals = nn.Linear(embed_dim, hidden)
        self.out = nn.Linear(hidden, features)
        self.octaves = octaves

    def forward(self, globals_, uv):
        at = self.coords(fourier(uv, self.octaves))[None]  # (1, n, hidden)
        g = self.globals(globals_)[:, None]  # (b, 1, hidden)
        return self.out(F.silu(at + g))


class GroundedRenderer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        v = cfg["vocab"]
        e = cfg["embed_dim"]
        ch = cfg["channels"]
        levels = len(ch)
        self.patch = cfg["patch"]
        self.image_size = cfg["image_size"]
        self.embed_dim = e
        self.preconditioning = cfg.get("preconditioning", "plain")
        if self.preconditioning == "edm" and cfg["prediction"] != "sample":
            raise ValueError("preconditioning edm needs prediction sample")
        self.backgrounds = nn.Embedding(len(v["backgrounds"]) + 1, e)
        self.styles = nn.Embedding(len(v["styles"]) + 1, e)
        self.lightings = nn.Embedding(len(v["lightings"]) + 1, e)
        self.time = nn.ModuleDict({"in": nn.Linear(e, e), "out": nn.Linear(e, e)})
        self.objects = ObjectField(
            len(v["shapes"]), len(v["colours"]), len(v["sizes"]), cfg["field_hidden"],
            cfg["field_features"], cfg["colour_features"], cfg["octaves"],
        )
        self.background = BackgroundField(e, cfg["field_hidden"], cfg["background_features"], cfg["octaves"])
        grounding = self.objects.channels() + cfg["background_features"]
        p = self.patch
        self.stem = nn.Linear((3 + grounding) * p * p, ch[0])
        self.down = nn.ModuleList([ResBlock(ch[i], ch[i], e) for i in range(levels - 1)])
        self.downsample = nn.ModuleList([nn.Linear(4 * ch[i], ch[i + 1]) for i in range(levels - 1)])
        self.upsample = nn.ModuleList([nn.Linear(ch[i + 1], 4 * ch[i]) for i in range(levels - 1)])
        self.merge = nn.ModuleList([nn.Linear(2 * ch[i], ch[i]) for i in range(levels - 1)])
        self.up = nn.ModuleList([ResBlock(ch[i], ch[i], e) for i in range(levels - 1)])
        self.mid = nn.ModuleList([ResBlock(ch[-1], ch[-1], e) for _ in range(2)])
        out_dim = 3 * p * p
        self.out = nn.Linear(ch[0], out_dim)
        self.out_film = nn.Linear(e, 2 * ch[0])
        self.input_skip = nn.Linear(e, out_dim)
        self.pixel_head = nn.Linear(ch[0], 3 * grounding) if cfg.get("pixel_head", False) else None
        self.clip_light = ClipLight(e, cfg["octaves"]) if cfg.get("clip_time", False) else None
        self.register_buffer("uv", canvas_coords(self.image_size, self.image_size), persistent=False)
        self.log_sigmas = noise_schedule_log_sigmas(cfg["schedule"], cfg["train_steps"])

    def ground(self, globals_ids, object_ids, present, poses, times):
        """PlanBatch tensors -> (pixels (b, s, s, G), globals embedding (b, E))."""
        b = present.shape[0]
        lighting = self.lightings(globals_ids[:, 2])
        globals_ = self.backgrounds(globals_ids[:, 0]) + self.styles(globals_ids[:, 1]) + lighting
        if self.clip_light is not None:
            globals_ = globals_ + self.clip_light(times, lighting)
        features, _occupancy, _weight = self.objects(object_ids, present, poses, self.uv)
        background = self.background(globals_, self.uv)
        s = self.image_size
        pixels = torch.cat([features, background], dim=2).reshape(b, s, s, -1)
        return pixels, globals_

    def predict(self, xs, timesteps, pixels_g, globals_):
        """Noisy images xs (b, 3, s, s) at timesteps (b,) -> the prediction (b, 3, s, s)."""
        noisy_input = xs
        b = xs.shape[0]
        t = timestep_embedding(timesteps, self.embed_dim)
        t = self.time["out"](F.silu(self.time["in"](t)))
        cond = F.silu(t + globals_)
        p = self.patch
        pixels = xs.permute(0, 2, 3, 1).contiguous()
        inp = torch.cat([pixels, pixels_g], dim=3)
        x = self.stem(space_to_depth(inp, p))
        skips = []
        for block, down in zip(self.down, self.downsample):
            x = block(x, cond)
            skips.append(x)
            x = down(space_to_depth(x, 2))
        for block in self.mid:
            x = block(x, cond)
        for i in reversed(range(len(self.up))):
            upsampled = depth_to_space(self.upsample[i](x), 2)
            merged = self.merge[i](torch.cat([upsampled, skips[i]], dim=3))
            x = self.up[i](merged, cond)
        c0 = x.shape[3]
        film = self.out_film(cond)[:, None, None, :]
        hidden = F.silu(layer_norm(x) * (film[..., :c0] + 1.0) + film[..., c0:])
        out = self.out(hidden)
        if self.pixel_head is not None:
            out = out + pixel_adaptive(self.pixel_head, hidden, pixels_g, p)
        noisy = space_to_depth(pixels, p)
        gain = self.input_skip(cond)[:, None, None, :]
        out = out + noisy * gain
        output = depth_to_space(out, p).permute(0, 3, 1, 2).contiguous()
        if self.preconditioning == "edm":
            return self.edm(output, noisy_input, timesteps)
        return output

    def sigma_at(self, t):
        """NoiseSchedule::sigma_at: log-sigma interpolated at fractional t (f64)."""
        ls = self.log_sigmas
        t = min(max(t, 0.0), float(len(ls) - 1))
        lo = int(math.floor(t))
        hi = min(lo + 1, len(ls) - 1)
        w = t - lo
        return math.exp((1.0 - w) * ls[lo] + w * ls[hi])

    def edm(self, output, noisy, timesteps):
        """c_skip y + c_out F with y = x_t sqrt(1 + sigma^2); coefficients in f64, applied in f32."""
        sd2 = SIGMA_DATA * SIGMA_DATA
        skip, scale = [], []
        for t in timesteps.detach().to("cpu", torch.float64).tolist():
            sigma = self.sigma_at(t)
            s2 = sigma * sigma
            skip.append(sd2 / (s2 + sd2) * math.sqrt(1.0 + s2))
            scale.append(sigma * SIGMA_DATA / math.sqrt(s2 + sd2))
        column = lambda v: torch.tensor(v, dtype=torch.float32, device=output.device).reshape(-1, 1, 1, 1)
        return noisy * column(skip) + output * column(scale)


def pixel_adaptive(head, hidden, grounding, patch):
    """Every cell's map from the G grounding channels to colour at each of its patch^2
    pixels: hidden (b, H, W, c), grounding (b, H patch, W patch, G) -> (b, H, W, patch^2 3)."""
    b, h, w, _ = hidden.shape
    g = grounding.shape[3]
    maps = head(hidden).reshape(b * h * w, g, 3)
    pixels = space_to_depth(grounding.contiguous(), patch).reshape(b * h * w, patch * patch, g)
    return torch.bmm(pixels, maps).reshape(b, h, w, patch * patch * 3)


def noise_schedule_log_sigmas(kind, n):
    """NoiseSchedule::new's ln sigma_t (f64), for the schedules of the diffusion crate."""
    if kind == "cosine":
        f = lambda t: math.cos((t / n + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = [min(1.0 - f(i + 1.0) / f(float(i)), 0.999) for i in range(n)]
    elif isinstance(kind, dict) and "linear" in kind:
        s, e = kind["linear"]["start"], kind["linear"]["end"]
        betas = [s + (e - s) * i / (n - 1) for i in range(n)]
    elif isinstance(kind, dict) and "scaled_linear" in kind:
        s, e = kind["scaled_linear"]["start"], kind["scaled_linear"]["end"]
        betas = [(math.sqrt(s) + (math.sqrt(e) - math.sqrt(s)) * i / (n - 1)) ** 2 for i in range(n)]
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    out, prod = [], 1.0
    for b_ in betas:
        prod *= 1.0 - b_
        out.append(math.log(math.sqrt((1.0 - prod) / prod)))
    return out


# ---------------------------------------------------------------- loading

def load_renderer(model_dir, device):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tensors = {k: v.float() for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    model = GroundedRenderer(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unused = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(expected[k].shape) != tuple(tensors[k].shape))
    if missing or unused or wrong:
        print(f"missing parameters (not in the safetensors): {missing}", file=sys.stderr)
        print(f"unused safetensors keys: {unused}", file=sys.stderr)
        for k in wrong:
            print(f"shape mismatch {k}: model {tuple(expected[k].shape)}, file {tuple(tensors[k].shape)}", file=sys.stderr)
        sys.exit(2)
    model.load_state_dict(tensors, strict=True)
    return model.to(device), cfg


def one_plan(device):
    """A fixed plan for the timing mode: sunset_sea / flat / steady, a red star above a
    blue circle (what `mmgen bench grounded` plans from its prompt, near enough: the
    renderer's cost does not depend on the ids or poses)."""
    globals_ = torch.tensor([[0, 0, 0]], dtype=torch.long)
    ids = torch.zeros(1, MAX_OBJECTS, 3, dtype=torch.long)
    ids[0, 0] = torch.tensor([0, 4, 1])  # circle, blue, large
    ids[0, 1] = torch.tensor([3, 0, 0])  # star, red, small
    present = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    poses = torch.tensor([[[0.5, 0.65, 0.2, 0.0], [0.5, 0.3, 0.12, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    times = torch.full((1, 1), STILL_TIME)
    return [x.to(device) for x in (globals_, ids, present, poses, times)]


def random_plans(cfg, b, gen):
    """B random plans as PlanBatch tensors (empty slots: ids 0, pose [0, 0, 1, 0])."""
    v = cfg["vocab"]
    randint = lambda n, shape: torch.randint(0, n, shape, generator=gen)
    globals_ = torch.stack([randint(len(v[k]), (b,)) for k in ("backgrounds", "styles", "lightings")], dim=1)
    ids = torch.stack([randint(len(v[k]), (b, MAX_OBJECTS)) for k in ("shapes", "colours", "sizes")], dim=2)
    present = (torch.rand(b, MAX_OBJECTS, generator=gen) < 0.5).float()
    present[:, 0] = 1.0
    centres = torch.rand(b, MAX_OBJECTS, 2, generator=gen) * 1.2 - 0.6
    radius = torch.rand(b, MAX_OBJECTS, 1, generator=gen) * 0.2 + 0.1
    poses = torch.cat([centres, radius, torch.zeros(b, MAX_OBJECTS, 1)], dim=2)
    empty = present == 0
    ids[empty] = 0
    poses[empty] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    times = torch.full((b, 1), STILL_TIME)
    return globals_, ids, present, poses, times


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def train_step(model, cfg, batch, iters, device):
    """Median seconds of one optimiser step of the whole renderer (fields included)."""
    gen = torch.Generator().manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    s = cfg["image_size"]
    plans = [x.to(device) for x in random_plans(cfg, batch, gen)]
    xs = torch.randn(batch, 3, s, s, generator=gen).to(device)
    target = torch.randn(batch, 3, s, s, generator=gen).to(device)
    t = torch.randint(0, cfg["train_steps"], (batch,), generator=gen).float().to(device)

    def step():
        pixels, globals_ = model.ground(*plans)
        loss = ((model.predict(xs, t, pixels, globals_) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)

    times = []
    for i in range(iters + 1):
        start = time.perf_counter()
        step()
        if i > 0:  # the first step warms up
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"batch": batch, "step_seconds": seconds, "samples_per_s": batch / seconds}


def check(model, path):
    ref = load_file(path)
    plans = (ref["globals"].long(), ref["object_ids"].long(), ref["present"].float(), ref["poses"].float(),
             ref["times"].float())
    pixels, globals_ = model.ground(*plans)
    out = model.predict(ref["xs"].float(), ref["timesteps"].float(), pixels, globals_)
    ours = {"grounding_pixels": pixels, "grounding_globals": globals_, "output": out}
    report, worst = {}, 0.0
    for name, value in ours.items():
        r = ref[name].float()
        if tuple(r.shape) != tuple(value.shape):
            print(f"{name}: shape {tuple(value.shape)}, reference {tuple(r.shape)}", file=sys.stderr)
            sys.exit(1)
        d = float((value - r).abs().max())
        report[name] = {"max_abs_diff": d, "reference_max_abs": float(r.abs().max())}
        worst = max(worst, d)
    return report, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/grounded-renderer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a line")
    ap.add_argument("--check", metavar="FILE", help="reference safetensors from `mmgen bench grounded --dump`")
    ap.add_argument("--train-step", type=int, metavar="B", help="time the training step at batch B")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, cfg = load_renderer(args.model, args.device)
    report = {"peer": f"pytorch {torch.__version__} eager", "threads": args.threads, "device": args.device}

    if args.check:
        with torch.inference_mode():
            model.eval()
            result, worst = check(model.to("cpu"), args.check)
        report["check"] = result
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for name, r in result.items():
                print(f"{name:<18} max |diff| {r['max_abs_diff']:.3e}  (reference max |x| {r['reference_max_abs']:.3e})")
        if worst > 1e-3:
            print(f"FAIL: largest difference {worst:.3e} > 1e-3", file=sys.stderr)
            sys.exit(1)
        print(f"ok: largest difference {worst:.3e} <= 1e-3", file=sys.stderr)
        return

    if args.train_step:
        report.update(train_step(model, cfg, args.train_step, args.iters, args.device))
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"training step, batch {report['batch']}: {report['step_seconds'] * 1e3:.1f} ms "
                  f"({report['samples_per_s']:.1f} samples/s; median of {args.iters}, {args.threads} threads, "
                  f"{args.device})")
        return

    s = cfg["image_size"]
    model.eval()
    with torch.inference_mode():
        pixels, globals_ = model.ground(*one_plan(args.device))
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(1, 3, s, s, generator=gen).to(args.device)
        t = torch.tensor([500.0], device=args.device)
        times = []
        for i in range(args.iters + 1):
            start = time.perf_counter()
            model.predict(noise, t, pixels, globals_)
            sync(args.device)
            if i > 0:  # the first run warms up
                times.append(time.perf_counter() - start)
    report.update({"image_size": s, "iters": args.iters, "seconds_per_renderer_step": statistics.median(times)})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"renderer step, {s}x{s}, batch 1: {report['seconds_per_renderer_step'] * 1e3:.2f} ms "
              f"(median of {args.iters}, {args.threads} threads, {args.device})")


if __name__ == "__main__":
    main()
