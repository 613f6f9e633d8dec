"""The ``hf`` rollout engine: sampled-token log-probs equal a teacher-forced forward of the same weights, sampling
controls do what they say, and new weights change what it generates."""

import copy

import pytest
import torch

from entropy_verl.rollout.hf.engine import HFGenerationEngine, SamplingParams

PROMPTS = [[6, 18, 10, 18, 8, 17, 4, 9, 16], [7, 18, 9, 18, 12, 17, 5, 16], [3, 18, 3, 18, 3, 17, 9, 16]]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from entropy_verl.embedded.model import make_model
    from entropy_verl.embedded.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(str(tmp_path_factory.mktemp("tok")))
    return make_model(tokenizer, seed=0), tokenizer


def make_engine(model, tokenizer, seed=0):
    return HFGenerationEngine(
        model=model, eos_token_ids=(tokenizer.eos_token_id,), pad_token_id=tokenizer.pad_token_id, seed=seed
    )


def teacher_forced_logprobs(model, prompt, response, temperature):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    scale = temperature if temperature > 0 else 1.0
    return torch.log_softmax(logits / scale, -1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, -1, 1.0), (0.7, 5, 1.0), (1.3, -1, 0.8), (0.0, -1, 1.0)])
def test_logprobs_match_teacher_forcing(tiny_model, temperature, top_k, top_p):
    model, tokenizer = tiny_model
    engine = make_engine(model, tokenizer)
    params = [SamplingParams(max_tokens=8, temperature=temperature, top_k=top_k, top_p=top_p, ignore_eos=True)]
    results = engine.generate(PROMPTS, params * len(PROMPTS))  # ragged prompts: exercises left padding + KV cache
    for prompt, result in zip(PROMPTS, results, strict=True):
        assert len(result.token_ids) == 8 and result.finish_reason == "length"
        expected = teacher_forced_logprobs(model, prompt, result.token_ids, temperature)
        assert torch.allclose(torch.tensor(result.log_probs), expected, atol=1e-4), (result.log_probs, expected)


def test_greedy_is_argmax_and_top_k_one_is_greedy(tiny_model):
    model, tokenizer = tiny_model
    engine = make_engine(model, tokenizer)
    greedy = engine.generate(PROMPTS, [SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)] * 3)
    top1 = engine.generate(PROMPTS, [SamplingParams(max_tokens=6, temperature=1.0, top_k=1, ignore_eos=True)] * 3)
    for prompt, g, t in zip(PROMPTS, greedy, top1, strict=True):
        assert g.token_ids == t.token_ids
        ids = list(prompt)
        for token in g.token_ids:  # step-by-step argmax without a cache
            with torch.no_grad():
                assert token == int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)


def test_top_k_and_top_p_restrict_support(tiny_model):
    model, tokenizer = tiny_model
    engine = make_engine(model, tokenizer, seed=1)
    prompt = PROMPTS[0]
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([prompt])).logits[0, -1], -1)
    order = probs.argsort(descending=True).tolist()
    firsts_k = {r.token_ids[0] for r in engine.generate([prompt] * 200, [SamplingParams(max_tokens=1, top_k=3)] * 200)}
    assert firsts_k <= set(order[:3]) and len(firsts_k) > 1
    cum = probs[order].cumsum(0)
    nucleus = set(order[: int((cum < 0.5).sum()) + 1])
    firsts_p = {
        r.token_ids[0] for r in engine.generate([prompt] * 200, [SamplingParams(max_tokens=1, top_p=0.5)] * 200)
    }
    assert firsts_p <= nucleus


def test_stops_at_eos_and_respects_per_request_max_tokens(tiny_model):
    model, tokenizer = tiny_model
    engine = make_engine(model, tokenizer)
    results = engine.generate(
        PROMPTS[:2], [SamplingParams(max_tokens=3, ignore_eos=True), SamplingParams(max_tokens=5, ignore_eos=True)]
    )
    assert [len(r.token_ids) for r in results] == [3, 5]
    # Declare the greedy first token an EOS: generation must stop right after it and report "stop".
    greedy_first = engine.generate([PROMPTS[0]], [SamplingParams(max_tokens=1, temperature=0.0)])[0].token_ids[0]
    stopper = HFGenerationEngine(model=model, eos_token_ids=(greedy_first,), pad_token_id=tokenizer.pad_token_id)
    stopped = stopper.generate([PROMPTS[0]], [SamplingParams(max_tokens=8, temperature=0.0)])[0]
    assert stopped.token_ids == [greedy_first] and stopped.finish_reason == "stop"


def test_weight_update_changes_generation(tiny_model):
    model, tokenizer = copy.deepcopy(tiny_model[0]), tiny_model[1]
    engine = make_engine(model, tokenizer)
    params = [SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)] * 3
    before = engine.generate(PROMPTS, params)
    # New weights, as verl's checkpoint engine sends them: full (name, tensor) pairs, tied lm_head included.
    torch.manual_seed(123)
    new = [(name, torch.randn_like(t) * 0.5) for name, t in model.state_dict().items() if "norm" not in name]
    assert engine.load_weights(new) == len(new)
    after = engine.generate(PROMPTS, params)
    assert [r.token_ids for r in before] != [r.token_ids for r in after]
    for prompt, result in zip(PROMPTS, after, strict=True):  # and the log-probs are those of the new weights
        expected = teacher_forced_logprobs(model, prompt, result.token_ids, 0.0)
        assert torch.allclose(torch.tensor(result.log_probs), expected, atol=1e-4)
    with pytest.raises(KeyError, match="not_a_weight"):
        engine.load_weights([("not_a_weight", torch.zeros(1))])


def test_a_stopped_wave_returns_unfinished_rows_aborted_with_their_tokens_so_far(tiny_model):
    """``should_stop`` is read before each token: after 4 tokens the row that needed 2 has finished ("length"), the
    others end "aborted" with the 4 tokens the unstopped wave starts with."""
    model, tokenizer = tiny_model
    params = [SamplingParams(max_tokens=2, temperature=0.0, ignore_eos=True)] + [
        SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    ] * 2
    full = make_engine(model, tokenizer).generate(PROMPTS, params)
    checks = iter(range(100))
    stopped = make_engine(model, tokenizer).generate(PROMPTS, params, should_stop=lambda: next(checks) >= 4)
    assert [r.finish_reason for r in stopped] == ["length", "aborted", "aborted"]
    assert [r.token_ids for r in stopped] == [full[0].token_ids] + [r.token_ids[:4] for r in full[1:]]
    assert [r.log_probs for r in stopped[1:]] == [r.log_probs[:4] for r in full[1:]]
