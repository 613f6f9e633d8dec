"""The vLLM worker extension for CPU runs: verl's weight sync, loaded through vLLM's layer-wise reload.

verl's ``vLLMColocateWorkerExtension.update_weights_from_ipc`` receives each bucket of new weights and calls the
model's ``load_weights`` in place, then ``process_weights_after_loading``. On vLLM's CPU backend that cannot work:
after the first load every linear layer's weight is repacked for oneDNN/SGL kernels (``layer.weight`` becomes an empty
parameter without ``weight_loader``; the packed copy lives in the layer's ``cpu_linear`` closure), so the in-place
load raises, and a second ``process_weights_after_loading`` would repack an already-packed layer. vLLM's own answer
for reloading a processed model is its layer-wise reload (``initialize_layerwise_reload`` puts each layer back in
checkpoint format, loads, re-runs the layer's processing once it is complete, and copies the result into the
original storage). This extension wraps verl's receive loop in it.

Two more CPU-specific points: verl's receiver hands out *views* of its shared-memory bucket (on CUDA it would copy to
the device), and the layer-wise reload keeps loaded tensors until a layer is complete, so each bucket is copied out
before loading; and a loading error is logged here, because the receiver's clean-up would otherwise replace it with
a ``BufferError`` about the bucket's exported views (docs/upstream/verl-shm-receiver-views.md).
"""

from __future__ import annotations

import json
import logging
import os
import time

import torch
from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver
from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

from . import WEIGHT_SYNC_LOG

logger = logging.getLogger(__name__)


def _not_rotary_noise(record: logging.LogRecord) -> bool:
    """vLLM's layer-wise reload warns "RotaryEmbedding: Failed to load weights" at every sync: the rotary cos/sin
    cache is a buffer no checkpoint carries, and the reload keeps the one it has (the right one). Drop that line."""
    return not (record.args and record.args[0] == "RotaryEmbedding" and "Failed to load" in str(record.msg))


logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_not_rotary_noise)


class CPUWeightSyncExtension(vLLMColocateWorkerExtension):
    def update_weights_from_ipc(self, peft_config: dict | None = None, base_sync_done=False, use_shm: bool = False):
        if peft_config:
            raise NotImplementedError("the CPU vLLM rollout syncs full weights only (no LoRA adapters)")
        start = time.perf_counter()
        model = self.model_runner.model
        initialize_layerwise_reload(model)
        loaded = 0

        def load_bucket(weights: list[tuple[str, torch.Tensor]], is_last: bool) -> None:
            nonlocal loaded
            try:  # copy out of the shared-memory bucket: the layer-wise reload holds tensors past this call
                self._update_weights([(n, t.clone()) for n, t in weights], peft_config=None, base_sync_done=False)
            except Exception:
                logger.exception("loading a weight bucket into vLLM failed")
                raise
            loaded += len(weights)

        receiver = BucketedWeightReceiver(
            zmq_handle=self._get_zmq_handle(), device=torch.device("cpu"), use_shm=use_shm
        )
        receiver.receive_weights(on_bucket_received=load_bucket)
        finalize_layerwise_reload(model, self.model_runner.vllm_config.model_config)
        self._log_sync(loaded, time.perf_counter() - start)

    def weights_fingerprint(self) -> float:
        """Sum of every parameter that still holds its values (norms, embeddings): changes when a sync lands."""
        return float(sum(p.detach().double().sum() for p in self.model_runner.model.parameters() if p.numel()))

    def _log_sync(self, tensors: int, seconds: float) -> None:
        """One line per sync next to the run's metrics (verl's file logger path), for the tests and for a user
        wondering whether the rollout ever saw new weights."""
        metrics_path = os.environ.get("VERL_FILE_LOGGER_PATH")
        if not metrics_path:
            return
        self._syncs = getattr(self, "_syncs", 0) + 1
        record = {
            "sync": self._syncs,
            "pid": os.getpid(),
            "tensors": tensors,
            "seconds": round(seconds, 4),
            "fingerprint": self.weights_fingerprint(),
        }
        with open(os.path.join(os.path.dirname(metrics_path), WEIGHT_SYNC_LOG), "a") as f:
            f.write(json.dumps(record) + "\n")
