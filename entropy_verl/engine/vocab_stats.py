"""Full-vocabulary statistics per position, for Clip-V (Entropy Dynamics, arXiv:2602.03392, Sec. 4, Eq. 15):

    H_t = -sum_i p_i log p_i,   Q_t = sum_i p_i^2,   R_t = sum_i p_i^2 log p_i,   E_{i~pi}[S_i] = H_t Q_t + R_t

computed in one pass over the logits, chunked over positions: the extra memory is two (chunk, vocab) float32
buffers, independent of the number of positions (verl's chunked entropy allocates about as much per chunk).
"""

from __future__ import annotations

import torch


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_i a[r, i] * b[r, i] per row, without materialising the product."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def entropy_and_vocab_stats(
    logits: torch.Tensor, chunk_size: int = 2048, temperature: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H, sum p^2, sum p^2 log p) of softmax(logits / temperature), each of shape logits.shape[:-1], in float32.
    No gradient flows through them. ``temperature`` broadcasts to logits.shape[:-1] + (1,) (per position); it is
    applied chunk by chunk, so no scaled copy of the logits is made.

    Two (chunk, vocab) buffers (log p; p, then p^2) are allocated once and reused for every chunk, and the row sums of
    products are row dot products, so nothing of vocabulary size is allocated per chunk."""
    flat = logits.reshape(-1, logits.shape[-1])
    if temperature is not None:
        temperature = temperature.clamp(min=1e-8).expand(*logits.shape[:-1], 1).reshape(-1, 1).float()  # as verl does
    out = torch.empty(3, flat.shape[0], dtype=torch.float32, device=logits.device)
    rows = min(chunk_size, flat.shape[0])
    log_p, p = (torch.empty(rows, flat.shape[1], dtype=torch.float32, device=logits.device) for _ in range(2))
    with torch.no_grad():
        for start in range(0, flat.shape[0], chunk_size):
            x = flat[start : start + chunk_size]
            n = x.shape[0]
            lp, pp = log_p[:n], p[:n]
            if temperature is None:
                lp.copy_(x)  # in float32, into the reused buffer (x may be the caller's own float32 logits)
            else:
                torch.div(x, temperature[start : start + n], out=lp)
            lp.sub_(lp.amax(dim=-1, keepdim=True))
            torch.exp(lp, out=pp)
            z = pp.sum(dim=-1, keepdim=True)
            lp.sub_(z.log())
            pp.div_(z)
            out[0, start : start + n] = -_row_dot(pp, lp)
            pp.square_()
            out[1, start : start + n] = pp.sum(-1)
            out[2, start : start + n] = _row_dot(pp, lp)
    entropy, sum_p2, sum_p2_logp = out.reshape(3, *logits.shape[:-1]).unbind(0)
    return entropy, sum_p2, sum_p2_logp
