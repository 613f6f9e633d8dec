"""EntroPIC's entropy-steering term (Yang et al., arXiv:2511.15248, Eq. 9-10).

    L = L_PPO + alpha * token-mean_{t: p_t > tau} ( -r_t * |A_t| )

alpha comes from the driver's PI controller (``entropy_verl.controllers.pi``). Minimising -r|A| on already-confident
tokens raises their probability (entropy falls) when alpha > 0, and lowers it (entropy rises) when alpha < 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.controllers.pi import PIController
from entropy_verl.registry import register

from .context import LossContext
from .masked import selected_token_mean, valid_token_mean

ALPHA = PIController.outputs.alpha


@dataclass(frozen=True)
class EntroPICTermConfig:
    prob_threshold: float = 0.95
    """The term acts on tokens whose current probability exceeds this; in [0, 1) (paper: 0.95)."""

    def __post_init__(self):
        if not 0.0 <= self.prob_threshold < 1.0:
            raise ValueError(f"prob_threshold must be in [0, 1), got {self.prob_threshold}")


@register("entropic", kind="term", config=EntroPICTermConfig, reads=(ALPHA,))
def entropic_term(ctx: LossContext, cfg: EntroPICTermConfig):
    """EntroPIC's steering term alpha * token-mean_{t: p_t > tau}(-r_t |A_t|) (arXiv:2511.15248, Eq. 9-10).

    Reads: ``ctx.coefficients`` (``alpha``, the PI controller's), ``ctx.prob`` and ``ctx.ratio`` (from ``ctx.log_prob``,
    ``ctx.old_log_prob``), ``ctx.advantages``, ``ctx.response_mask``, ``ctx.global_batch_info`` (verl's normaliser, by
    ``selected_token_mean``).
    """
    alpha = float(ctx.coefficients[ALPHA])
    selected = ctx.response_mask & (ctx.prob.detach() > cfg.prob_threshold)
    steering = selected_token_mean(-ctx.ratio * ctx.advantages.abs(), selected, ctx)
    return alpha * steering, {"alpha": alpha, "selected_frac": valid_token_mean(selected, ctx), "term": steering.item()}
