"""Embedded default: tokenizer, model, SFT loop and the cached, deterministic builder.

The full default build (250 SFT steps) takes over a minute on two cores, so these tests build with a
couple of SFT steps and small datasets through the very same ``ensure_embedded_default``.
"""

import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import SMALL_EMBEDDED as SMALL  # noqa: E402

from entropy_verl.embedded import ensure_embedded_default  # noqa: E402
from entropy_verl.embedded.build import content_digest, read_manifest  # noqa: E402
from entropy_verl.embedded.model import count_parameters, make_model  # noqa: E402
from entropy_verl.embedded.sft import SFTConfig, torch_threads, train_sft  # noqa: E402
from entropy_verl.embedded.tokenizer import TASK_CHARS, build_tokenizer  # noqa: E402
from entropy_verl.tasks import countdown  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(str(tmp_path_factory.mktemp("tok")))


# --- tokenizer -------------------------------------------------------------------------------------------


def test_tokenizer_loads_as_qwen2(tokenizer):
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert isinstance(tokenizer, transformers.PreTrainedTokenizerBase)
    assert len(tokenizer) == 22


def test_special_tokens(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end == tokenizer.eos_token_id and 0 <= im_end < len(tokenizer)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert 0 <= tokenizer.convert_tokens_to_ids("<|im_start|>") < len(tokenizer)


@pytest.mark.parametrize("ch", TASK_CHARS)
def test_every_task_char_is_one_token_and_round_trips(tokenizer, ch):
    ids = tokenizer.encode(ch, add_special_tokens=False)
    assert len(ids) == 1
    assert tokenizer.decode(ids) == ch


def test_byte_level_vocab(tokenizer):
    vocab = tokenizer.get_vocab()
    assert "Ġ" in vocab and "Ċ" in vocab  # space and newline in byte-level form
    assert tokenizer.encode("\n", add_special_tokens=False) == [vocab["Ċ"]]


def test_strings_tokenize_per_character(tokenizer):
    text = "3,7,5:16=7*3-5"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text


def test_eos_is_skipped_when_decoding_like_verl(tokenizer):
    ids = tokenizer.encode("7*3-5", add_special_tokens=False) + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "7*3-5"


def test_chat_template_renders_prompt_verbatim(tokenizer):
    msgs = [{"role": "user", "content": "3,7,5:16="}]
    out = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert out == tokenizer.encode("3,7,5:16=", add_special_tokens=False)
    assert len(out) == 9
    text = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == "3,7,5:16="


def test_chat_template_ends_assistant_turn_with_eos(tokenizer):
    msgs = [{"role": "user", "content": "3,7,5:16="}, {"role": "assistant", "content": "7*3-5"}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert text == "3,7,5:16=7*3-5<|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == 15 and ids[-1] == tokenizer.eos_token_id


# --- model -----------------------------------------------------------------------------------------------


def test_model_shape_and_param_count(tokenizer):
    model = make_model(tokenizer, seed=0)
    cfg = model.config
    assert cfg.model_type == "qwen2"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (128, 4, 4)
    assert (cfg.num_key_value_heads, cfg.intermediate_size, cfg.max_position_embeddings) == (4, 384, 64)
    assert cfg.vocab_size == len(tokenizer)
    assert cfg.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert (cfg.eos_token_id, cfg.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert count_parameters(model) == 857_472
    assert next(model.parameters()).dtype == torch.float32


def test_model_init_depends_only_on_seed(tokenizer):
    a, b, c = make_model(tokenizer, 0), make_model(tokenizer, 0), make_model(tokenizer, 1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


# --- SFT -------------------------------------------------------------------------------------------------


def test_sft_reduces_loss(tokenizer):
    model = make_model(tokenizer, seed=0)
    cfg = SFTConfig(steps=20, batch_size=64, warmup_steps=5, show_progress=False)
    with torch_threads(1):
        losses = train_sft(model, tokenizer, cfg)
    assert len(losses) == 20
    # Random init sits near log(22) = 3.09 nats; 20 steps at lr 1e-3 get well below that.
    assert losses[0] > 2.5
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5


# --- builder ---------------------------------------------------------------------------------------------


def test_build_layout_and_manifest(small_build):
    paths = small_build
    assert os.path.isdir(paths.model_dir)
    assert os.path.isfile(paths.train_parquet) and os.path.isfile(paths.val_parquet)
    manifest = read_manifest(paths.root)
    assert manifest["params"]["sft_steps"] == 2
    assert manifest["n_parameters"] == 857_472
    for key in ("greedy_acc", "sampled_acc", "entropy"):
        assert key in manifest["metrics"]
    assert manifest["build_seconds"] > 0
    # No temporary or backup directories left next to the root.
    assert os.listdir(os.path.dirname(paths.root)) == [os.path.basename(paths.root)]


def test_built_model_dir_loads_with_auto_classes(small_build):
    tok = transformers.AutoTokenizer.from_pretrained(small_build.model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(small_build.model_dir)
    assert type(tok).__name__ == "Qwen2Tokenizer" and tok.eos_token == "<|im_end|>"
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.vocab_size == len(tok)
    ids = torch.tensor([tok.encode("3,7,5:16=", add_special_tokens=False)])
    assert model(input_ids=ids).logits.shape == (1, 9, len(tok))


def test_built_parquets(small_build):
    import pandas as pd

    train = pd.read_parquet(small_build.train_parquet)
    val = pd.read_parquet(small_build.val_parquet)
    assert len(train) == 64 and len(val) == 16
    assert set(train["extra_info"].map(lambda e: e["split"])) == {"train"}
    assert set(val["extra_info"].map(lambda e: e["split"])) == {"val"}
    gts = lambda df: {r["ground_truth"] for r in df["reward_model"]}  # noqa: E731
    assert not gts(train) & gts(val)
    for gt in gts(val):
        assert countdown.solutions(*countdown.parse_ground_truth(gt))


def test_build_is_cached(small_build):
    weights = os.path.join(small_build.model_dir, "model.safetensors")
    before = (os.path.getmtime(weights), os.path.getmtime(small_build.manifest))
    again = ensure_embedded_default(small_build.root, **SMALL)
    assert again == small_build
    assert (os.path.getmtime(weights), os.path.getmtime(small_build.manifest)) == before


def test_missing_file_or_changed_params_trigger_rebuild(tmp_path):
    root = str(tmp_path / "embedded")
    paths = ensure_embedded_default(root, **SMALL)
    os.remove(paths.val_parquet)
    ensure_embedded_default(root, **SMALL)
    assert os.path.isfile(paths.val_parquet)
    ensure_embedded_default(root, **{**SMALL, "n_val": 8})
    assert read_manifest(root)["params"]["n_val"] == 8


def _tensors(model_dir):
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))


def test_build_is_deterministic(small_build, tokenizer, tmp_path):
    other = ensure_embedded_default(str(tmp_path / "embedded"), **SMALL)
    a, b = _tensors(small_build.model_dir), _tensors(other.model_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... and the equality is not trivial: SFT moved the weights away from the seed-0 initialisation.
    init = make_model(tokenizer, seed=0).model.embed_tokens.weight
    assert not torch.equal(a["model.embed_tokens.weight"], init)
    with open(small_build.train_parquet, "rb") as f1, open(other.train_parquet, "rb") as f2:
        assert f1.read() == f2.read()
    assert read_manifest(small_build.root)["metrics"] == read_manifest(other.root)["metrics"]


def test_force_rebuilds(tmp_path):
    root = str(tmp_path / "embedded")
    paths = ensure_embedded_default(root, **SMALL)
    first = os.path.getmtime(paths.manifest)
    os.utime(paths.manifest, (first - 100, first - 100))  # make a rebuild visible despite coarse mtimes
    ensure_embedded_default(root, force=True, **SMALL)
    assert os.path.getmtime(paths.manifest) > first - 100


def test_content_digest_tells_builds_apart_by_weights_and_data(small_build, tmp_path):
    """Equal for a rebuild (the same weights and rows), different when one weight or one prompt differs."""
    import shutil

    import pyarrow.parquet as pq
    from safetensors.torch import save_file

    other = ensure_embedded_default(str(tmp_path / "embedded"), **SMALL)
    assert content_digest(other.root) == content_digest(small_build.root)
    tensors = _tensors(other.model_dir)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1e-3
    save_file(tensors, os.path.join(other.model_dir, "model.safetensors"), metadata={"format": "pt"})
    assert content_digest(other.root) != content_digest(small_build.root)

    copy = tmp_path / "copy"
    shutil.copytree(small_build.root, copy)
    table = pq.read_table(copy / "data" / "val.parquet")
    pq.write_table(table.slice(1), copy / "data" / "val.parquet")
    assert content_digest(str(copy)) != content_digest(small_build.root)
