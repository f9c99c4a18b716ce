#!/usr/bin/env python3
"""torch_train.py - training tokens/s of gqa's Llama-style model in PyTorch (CPU),
the side-by-side for `gqa bench train` (bench/train.sh runs both).

The model is the one gqa trains (include/gqa_train.h, src/train/): token
embedding -> n_layers x [RMSNorm -> Q/K/V (no bias) -> RoPE on adjacent pairs
(2i, 2i+1), theta_i = base^(-2i/d) -> causal GQA attention -> output projection
-> residual -> RMSNorm -> SwiGLU down(SiLU(gate x) * up x) -> residual] ->
RMSNorm -> classifier, tied to the embedding (gqa's presets are tied; --untied
adds output.weight). Attention is F.scaled_dot_product_attention(is_causal=True,
enable_gqa=True): K/V keep G heads, no repeat_interleave copy.

One step, timed in three parts like gqa's bench: forward (with the mean
cross-entropy), backward, and the optimizer (global-norm clipping at 1.0, then
AdamW with gqa's defaults: betas 0.9/0.95, eps 1e-8, weight decay 0.1 on the
2-D projections only, none on norms and the embedding). torch's default AdamW
implementation for CPU tensors is used (pass --fused for fused=True). Inputs are
random bytes, as in `gqa bench train`. Prints the median of --steps steps after
--warmup per thread count, and one `RESULT threads=N tok_s=X` line each for
scripts.
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, d, base):
    i = torch.arange(d // 2, dtype=torch.float64)
    theta = base ** (-2.0 * i / d)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    """x: (B, heads, T, d); rotate the adjacent pairs (2i, 2i+1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        E, H, G, d, Fd = c.embd, c.heads, c.kv_heads, c.head_dim, c.ff
        self.c = c
        self.attn_norm = nn.Parameter(torch.ones(E))
        self.wq = nn.Linear(E, H * d, bias=False)
        self.wk = nn.Linear(E, G * d, bias=False)
        self.wv = nn.Linear(E, G * d, bias=False)
        self.wo = nn.Linear(H * d, E, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(E))
        self.gate = nn.Linear(E, Fd, bias=False)
        self.up = nn.Linear(E, Fd, bias=False)
        self.down = nn.Linear(Fd, E, bias=False)

    def forward(self, x, cos, sin):
        c = self.c
        B, T, _ = x.shape
        h = rms_norm(x, self.attn_norm, c.eps)
        q = self.wq(h).view(B, T, c.heads, c.head_dim).transpose(1, 2)
        k = self.wk(h).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.wv(h).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           enable_gqa=c.kv_heads != c.heads)
        x = x + self.wo(a.transpose(1, 2).reshape(B, T, c.heads * c.head_dim))
        h = rms_norm(x, self.ffn_norm, c.eps)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embd = nn.Embedding(c.vocab, c.embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = nn.Parameter(torch.ones(c.embd))
        self.output = None if c.tied else nn.Linear(c.embd, c.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        cos, sin = rope_tables(c.seq_len, c.head_dim, c.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tok):
        x = self.embd(tok)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        x = rms_norm(x, self.norm, self.c.eps)
        w = self.embd.weight if self.output is None else self.output.weight
        return x @ w.t()


def make_optimizer(model, fused):
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("embd")]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith("embd"))]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    kw = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, **kw)


def bench(c, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = Model(c)
    opt = make_optimizer(model, c.fused)
    g = torch.Generator().manual_seed(12345)
    tok = torch.randint(0, 256, (c.batch, c.seq_len), generator=g)
    tgt = torch.randint(0, 256, (c.batch, c.seq_len), generator=g)
    fwd, bwd, upd, step = [], [], [], []
    for s in range(c.warmup + c.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(tok)
        loss = F.cross_entropy(logits.view(-1, c.vocab), tgt.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = time.perf_counter()
        if s >= c.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            upd.append(t3 - t2)
            step.append(t3 - t0)
    n_params = sum(p.numel() for p in model.parameters())
    return (statistics.median(fwd), statistics.median(bwd), statistics.median(upd),
            statistics.median(step), loss.item(), n_params)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # defaults: gqa's `exp` preset (tools/train_config.c)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--ff", type=int, default=704)
    ap.add_argument("--vocab", type=int, default=257)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--untied", dest="tied", action="store_false")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--fused", action="store_true", help="AdamW(fused=True)")
    c = ap.parse_args()
    if c.heads % c.kv_heads:
        sys.exit("torch_train.py: --heads must be a multiple of --kv-heads")
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}: {c.layers} layers, width {c.embd}, H {c.heads}, "
          f"G {c.kv_heads}, d {c.head_dim}, ff {c.ff}, vocab {c.vocab}, "
          f"{'tied' if c.tied else 'untied'}; batch {c.batch} x {c.seq_len} tokens; "
          f"AdamW {'fused' if c.fused else 'default'}; SDPA enable_gqa")
    print(f"median of {c.steps} steps after {c.warmup} warm-up\n")
    print(f"{'threads':<8} {'fwd ms':>10} {'bwd ms':>10} {'adamw ms':>10} {'step ms':>10} "
          f"{'tokens/s':>12}")
    for t in (int(x) for x in c.threads.split(",")):
        f, b, u, s, loss, n = bench(c, t)
        tps = c.batch * c.seq_len / s
        print(f"{t:<8} {1e3 * f:10.1f} {1e3 * b:10.1f} {1e3 * u:10.1f} {1e3 * s:10.1f} "
              f"{tps:12.0f}")
        print(f"RESULT threads={t} tok_s={tps:.1f} params={n} loss={loss:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
