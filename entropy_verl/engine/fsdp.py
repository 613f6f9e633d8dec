"""verl's FSDP actor engine, plus Clip-V's full-vocabulary statistics when a forward pass asks for them.

A micro-batch whose non-tensor data carries ``VOCAB_STATS_FLAG=True`` gets two more per-token outputs, laid out
exactly like verl's ``entropy`` (nested over prompt + response): ``sum_p2`` = sum_i p_i^2 and ``sum_p2_logp`` =
sum_i p_i^2 log p_i. They are computed from the same (temperature-scaled) logits as the log-probs, in one chunked
pass (``vocab_stats.entropy_and_vocab_stats``). In a forward-only pass (verl's old-log-prob recomputation, the only
place the trainer asks) that pass also yields the entropy, so verl's own entropy computation is skipped for that
micro-batch: the statistics replace the entropy pass instead of adding one. Without the flag the engine is verl's.

verl picks an engine class by (device, vendor); this one is registered under the vendor ``VOCAB_STATS_VENDOR`` for
every device and is selected with verl's ``VERL_ENGINE_VENDOR`` environment variable, which ``entropy_verl.main``
puts into the workers' runtime env only when a configured method needs the statistics. Every other run keeps verl's
engine class untouched.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor
from verl.utils import tensordict_utils as tu
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

from . import VOCAB_STATS_FLAG, VOCAB_STATS_OUTPUTS, VOCAB_STATS_VENDOR
from .vocab_stats import entropy_and_vocab_stats

ENGINE_DEVICES = ("cuda", "npu", "cpu")


class VocabStatsFSDPEngine(FSDPEngineWithLMHead):
    def prepare_model_outputs(self, output, output_args, micro_batch, logits_processor_func):
        if not tu.get_non_tensor_data(data=micro_batch, key=VOCAB_STATS_FLAG, default=False):
            return super().prepare_model_outputs(output, output_args, micro_batch, logits_processor_func)
        if tu.get_non_tensor_data(data=micro_batch, key="use_fused_kernels", default=False):
            raise NotImplementedError(
                "Clip-V's vocabulary statistics need the full logits, which fused kernels never "
                "materialise: set actor_rollout_ref.model.use_fused_kernels=false"
            )
        wants_entropy = tu.get_non_tensor_data(data=micro_batch, key="calculate_entropy", default=False)
        # Our pass yields the entropy too, but without gradient: only a forward-only pass may take it from us.
        fused = wants_entropy and not torch.is_grad_enabled()
        if fused:
            tu.assign_non_tensor(micro_batch, calculate_entropy=False)
        try:
            model_output = super().prepare_model_outputs(output, output_args, micro_batch, logits_processor_func)
        finally:
            if fused:
                tu.assign_non_tensor(micro_batch, calculate_entropy=True)
        entropy, sum_p2, sum_p2_logp = self._vocab_stats(output, output_args, micro_batch)
        if fused:
            model_output["entropy"] = entropy
        model_output.update(zip(VOCAB_STATS_OUTPUTS, (sum_p2, sum_p2_logp), strict=True))
        return model_output

    def _vocab_stats(self, output, output_args, micro_batch) -> tuple[torch.Tensor, ...]:
        """(H, sum p^2, sum p^2 log p) per token, nested like verl's entropy output (both of its logits layouts)."""
        logits = output.logits
        if isinstance(logits, DTensor):  # tensor parallel: sharded on the vocabulary
            logits = logits.full_tensor()
        chunk = self.engine_config.entropy_from_logits_chunk_size
        cu_seqlens = micro_batch["input_ids"].offsets()
        use_remove_padding = tu.get_non_tensor_data(data=micro_batch, key="use_remove_padding", default=True)
        if use_remove_padding:  # (1, total_nnz [/ sp + pad], vocab)
            temperature = output_args["temperature_rmpad"].unsqueeze(-1)
            stats = entropy_and_vocab_stats(logits.squeeze(0), chunk_size=chunk, temperature=temperature)
            stats = [self._gather_and_unpad_packed(s, output_args["pad_size"]) for s in stats]
            return tuple(torch.nested.nested_tensor_from_jagged(s, cu_seqlens) for s in stats)
        # (bsz, max_seqlen, vocab): keep each sequence's own length, then pack like verl does
        temperature = output_args["temperature"].view(-1, 1, 1)
        stats = entropy_and_vocab_stats(logits, chunk_size=chunk, temperature=temperature)
        lengths = cu_seqlens.diff()
        valid = torch.arange(logits.shape[1], device=logits.device) < lengths.unsqueeze(1)
        return tuple(torch.nested.nested_tensor_from_jagged(s[valid], cu_seqlens) for s in stats)


def register_vocab_stats_engine() -> None:
    """Register under (device, VOCAB_STATS_VENDOR) for every device; selected only through VERL_ENGINE_VENDOR."""
    registry = EngineRegistry._engines.get("language_model", {}).get("fsdp2", {})
    if (ENGINE_DEVICES[0], VOCAB_STATS_VENDOR) not in registry:
        EngineRegistry.register(
            model_type="language_model",
            backend=["fsdp", "fsdp2"],
            device=list(ENGINE_DEVICES),
            vendor=VOCAB_STATS_VENDOR,
        )(VocabStatsFSDPEngine)
