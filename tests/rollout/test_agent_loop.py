"""The CPU agent-loop worker builds verl's single-turn agent loop once and reuses it for every sample: that is right
only while the loop keeps no per-sample state on itself or on its tokenizer builder. These checks fail when a verl
upgrade adds such state (then drop the class from STATELESS_AGENT_LOOPS)."""

from __future__ import annotations

import ast
import inspect
import textwrap

from entropy_verl.rollout.agent_loop import STATELESS_AGENT_LOOPS


def attributes_set_outside_init(cls) -> list[str]:
    """``Class.method: self.x = ...`` for every assignment to an attribute of ``self`` in a method (other than
    ``__init__``) of ``cls`` or its bases."""
    found = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.name == "__init__":
                continue
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else []
                targets += [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
                for target in targets:
                    for sub in ast.walk(target):
                        if (
                            isinstance(sub, ast.Attribute)
                            and isinstance(sub.value, ast.Name)
                            and sub.value.id == "self"
                        ):
                            found.append(f"{klass.__name__}.{fn.name}: {ast.unparse(node)}")
    return found


def test_the_checker_sees_state_kept_on_self():
    class Counting:
        def __init__(self):
            self.calls = 0

        async def run(self):
            self.calls += 1

    assert attributes_set_outside_init(Counting) == ["Counting.run: self.calls += 1"]


def test_reused_agent_loops_keep_no_per_sample_state():
    for cls in STATELESS_AGENT_LOOPS:
        assert attributes_set_outside_init(cls) == [], cls


def test_the_tokenizer_builder_the_embedded_model_gets_keeps_no_per_sample_state(tmp_path):
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    from entropy_verl.embedded.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(str(tmp_path / "tok"))
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen2", chat_template_kwargs={})
    assert attributes_set_outside_init(type(builder)) == [], type(builder)


def test_the_cpu_groups_select_the_reusing_manager(run_config):
    from verl.utils.import_utils import load_class_from_fqn

    from entropy_verl.rollout.agent_loop import AgentLoopManagerReusingLoops

    for hardware in ("embedded_cpu", "embedded_cpu_vllm"):
        fqn = run_config(f"hardware={hardware}").actor_rollout_ref.rollout.agent.agent_loop_manager_class
        assert load_class_from_fqn(fqn, "AgentLoopManager") is AgentLoopManagerReusingLoops
    assert run_config("hardware=cluster_gpu").actor_rollout_ref.rollout.agent.get("agent_loop_manager_class") is None
