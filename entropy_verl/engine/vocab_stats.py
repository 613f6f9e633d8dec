"""Full-vocabulary statistics per position, for Clip-V (Entropy Dynamics, arXiv:2602.03392, Sec. 4, Eq. 15):

    H_t = -sum_i p_i log p_i,   Q_t = sum_i p_i^2,   R_t = sum_i p_i^2 log p_i,   E_{i~pi}[S_i] = H_t Q_t + R_t

computed in one pass over the logits, chunked over positions: the extra memory is two (chunk, vocab) float32
buffers, independent of the number of positions (verl's chunked entropy allocates about as much per chunk).

Numerics. With y = x - max(x) (x the temperature-scaled logits), e = exp(y) and z = sum e = 1 + t, t the sum of e
over every entry but the argmax:

    H = log1p(t) - sum(e y) / z,   Q = (1 + sum'(e^2)) / z^2,   R = sum(e^2 y) / z^2 - Q log1p(t)

Every term is a sum of same-signed values (y <= 0 <= log z), so nothing cancels; verl's logsumexp(x) - sum(p x)
subtracts two numbers of the size of the largest logit and loses ~1e-3 nats on confident rows at V = 151,936. The
tail sums t and sum'(e^2) leave the argmax's 1 out, so a confident row's log z = log1p(t) keeps its relative
precision (log of a float32 z = 1.0005 would not: R off by 1e-4 relative). The
sums are torch reductions in float32 (pairwise on CPU, tree-reduced on GPU), never matrix products, which on CPU
accumulate too sequentially (0.01 nats off on a uniform row) and under autocast run in bf16. Autocast is switched
off inside: the caller's bf16 region (verl's forward on GPU) does not reach these sums.
"""

from __future__ import annotations

import torch


def entropy_and_vocab_stats(
    logits: torch.Tensor, chunk_size: int = 2048, temperature: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H, sum p^2, sum p^2 log p) of softmax(logits / temperature), each of shape logits.shape[:-1], in float32.
    No gradient flows through them. ``temperature`` broadcasts to logits.shape[:-1] + (1,) (per position); it is
    applied chunk by chunk, so no scaled copy of the logits is made. Two (chunk, vocab) float32 buffers are allocated
    once and reused for every chunk; every other operation is in place."""
    flat = logits.reshape(-1, logits.shape[-1])
    if temperature is not None:
        temperature = temperature.clamp(min=1e-8).expand(*logits.shape[:-1], 1).reshape(-1, 1).float()  # as verl does
    out = torch.empty(3, flat.shape[0], dtype=torch.float32, device=logits.device)
    rows = min(chunk_size, flat.shape[0])
    y_buf, e_buf = (torch.empty(rows, flat.shape[1], dtype=torch.float32, device=logits.device) for _ in range(2))
    with torch.no_grad(), torch.autocast(device_type=logits.device.type, enabled=False):
        for start in range(0, flat.shape[0], chunk_size):
            x = flat[start : start + chunk_size]
            n = x.shape[0]
            y, e = y_buf[:n], e_buf[:n]
            if temperature is None:
                top, argmax = x.max(dim=-1, keepdim=True)
                torch.sub(x, top, out=y)  # y = x - max, in float32
            else:
                torch.div(x, temperature[start : start + n], out=y)
                top, argmax = y.max(dim=-1, keepdim=True)
                y.sub_(top)
            torch.exp(y, out=e)
            e.scatter_(-1, argmax, 0.0)  # the argmax's e = 1 is added back exactly: 1 + t
            log_z = e.sum(dim=-1).log1p()
            inv_z2 = torch.exp(-2.0 * log_z)
            y.mul_(e)  # e y (0 at the argmax, where y = 0)
            entropy = log_z - y.sum(dim=-1) * torch.exp(-log_z)
            y.mul_(e)  # e^2 y
            sum_p2_y = y.sum(dim=-1) * inv_z2
            e.square_()  # e^2 but at the argmax
            sum_p2 = (1.0 + e.sum(dim=-1)) * inv_z2
            out[0, start : start + n] = entropy
            out[1, start : start + n] = sum_p2
            out[2, start : start + n] = sum_p2_y - sum_p2 * log_z
    entropy, sum_p2, sum_p2_logp = out.reshape(3, *logits.shape[:-1]).unbind(0)
    return entropy, sum_p2, sum_p2_logp
