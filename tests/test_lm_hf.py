"""Local Hugging Face checkpoints: a tiny GPT-2 trained on local text, saved, loaded offline, analyzed."""

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from helpers import node_names as _node_names
from ridgelens.cli import main
from ridgelens.errors import DataError
from ridgelens.lm import file_split, load_hf_checkpoint
from ridgelens.objectives.lm import LMObjective
from ridgelens.operators import TorchHessianOperator

TEXT = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"  # real text, on every machine


def _tiny_gpt2(vocab=256):
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny GPT-2 trained briefly on textwrap.py's bytes and saved with save_pretrained."""
    model = _tiny_gpt2()
    w = file_split(TEXT, 8, 256).train
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(15):
        batch = w[step % 4 * 8: step % 4 * 8 + 8]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(d)
    return d


def test_hvp_of_a_loaded_checkpoint_matches_finite_differences(checkpoint):
    model, tokenize, how = load_hf_checkpoint(checkpoint)
    assert how.startswith("bytes")
    w = file_split(TEXT, 8, 64, tokenize=tokenize).train
    obj = LMObjective(model, w, dtype=torch.float64)
    assert obj.returns == "logits" and obj.vocab == 256
    theta = obj.theta0
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).numpy()
    eps = 1e-5
    fd = (obj.gradient(theta + eps * v) - obj.gradient(theta - eps * v)) / (2 * eps)
    hv = TorchHessianOperator(obj, theta) @ v
    assert abs(hv - fd).max() <= 1e-5 * abs(fd).max()


def test_a_checkpoint_with_its_own_tokenizer_is_read_with_it(tmp_path):
    """A folder holding a tokenizer (tokenizer.save_pretrained) tokenizes the text with it, offline, not as bytes."""
    tok = _bpe_tokenizer(300)
    _tiny_gpt2(vocab=len(tok)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tokenize, how = load_hf_checkpoint(tmp_path)
    assert how.startswith("the checkpoint's tokenizer")
    data = TEXT.read_bytes()
    ids = tokenize(data)
    assert ids.tolist() == tok(data.decode("utf-8"))["input_ids"]  # the folder's tokenizer, not bytes
    assert ids.numel() < len(data) and int(ids.max()) >= 256  # merges: fewer tokens than bytes, ids past the bytes
    obj = LMObjective(model, file_split(TEXT, 8, 64, tokenize=tokenize).train)
    assert obj.vocab == len(tok)


class _LossOnly(torch.nn.Module):
    """A causal LM whose forward returns only a loss (given labels), as some wrappers do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, labels=None):
        out = self.inner(input_ids=input_ids, labels=labels)
        return {"loss": out.loss} if labels is not None else {}


def test_a_forward_that_returns_only_a_loss_gives_the_same_hessian(checkpoint):
    model, tokenize, _ = load_hf_checkpoint(checkpoint)
    w = file_split(TEXT, 8, 64, tokenize=tokenize).train
    logits = LMObjective(model, w, dtype=torch.float64)
    loss_only = LMObjective(_LossOnly(model), w, dtype=torch.float64)
    assert loss_only.returns == "loss"
    # transformers' own loss casts the logits to float32 (ForCausalLMLoss), hence float32-level agreement
    assert loss_only.value(loss_only.theta0) == pytest.approx(logits.value(logits.theta0), rel=1e-6)
    v = torch.randn(logits.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    H1 = TorchHessianOperator(logits, logits.theta0)
    H2 = TorchHessianOperator(loss_only, loss_only.theta0)
    torch.testing.assert_close(H2 @ v, H1 @ v, rtol=1e-4, atol=1e-5 * float((H1 @ v).abs().max()))



def test_fused_tanh_gelu_is_the_same_function_with_one_gradient_node(checkpoint):
    """GPT-2's gelu_new modules become PyTorch's fused tanh GELU: the same logits and Hessian products (to
    rounding), a GELU gradient of one node in the Hessian's graph, and no parameter changed."""
    import copy

    from ridgelens.lm import fuse_tanh_gelu

    model, tokenize, _ = load_hf_checkpoint(checkpoint)
    assert model.config.activation_function == "gelu_new"
    fused = copy.deepcopy(model)
    assert fuse_tanh_gelu(fused) == model.config.n_layer and fuse_tanh_gelu(fused) == 0
    w = file_split(TEXT, 8, 64, tokenize=tokenize).train
    objs = [LMObjective(m, w, dtype=torch.float64) for m in (model, fused)]
    torch.testing.assert_close(objs[1].theta0, objs[0].theta0, rtol=0, atol=0)
    z = [o.outputs(o.flat_tensor(o.theta0), w[:, :-1]) for o in objs]
    torch.testing.assert_close(z[1], z[0], rtol=1e-14, atol=1e-14)
    v = torch.randn(objs[0].n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ops = [TorchHessianOperator(o, o.theta0, form="reuse") for o in objs]
    hv = [op @ v for op in ops]
    torch.testing.assert_close(hv[1], hv[0], rtol=1e-11, atol=1e-12 * float(hv[0].abs().max()))
    assert "_GeluGradBackward" in _node_names(ops[1]._graph[1])
    assert "_GeluGradBackward" not in _node_names(ops[0]._graph[1])


def test_cli_analyzes_the_checkpoint_folder(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["analyze", "--model", f"hf:{checkpoint}", "--text", str(TEXT), "--context", "8", "--tokens", "64",
               "--lambdas", "0.1,1", "--k", "2", "--subsamples", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((out / "results.json").read_text())
    assert r["model"]["kind"] == "hugging face causal LM" and r["n_tokens"] == 64
    assert "fused tanh GELU in 1 module" in r["model"]["activation"]
    assert set(r["curvature"]) == {"ggn", "hessian"}
    assert all(len(c["rel_error"]) == 2 for c in r["curvature"].values())
    assert not (out / "model.pt").exists()  # θ̂ is the checkpoint's own weights: the folder holds them


def test_polished_checkpoint_weights_are_written(checkpoint, tmp_path, capsys):
    """hf:DIR --polish analyzes other weights than the folder's: model.pt holds them, and loaded into the
    checkpoint's model they give the training loss results.json reports after polishing."""
    out = tmp_path / "out"
    rc = main(["analyze", "--model", f"hf:{checkpoint}", "--text", str(TEXT), "--context", "8", "--tokens", "64",
               "--lambdas", "0.1", "--k", "2", "--subsamples", "0", "--curvature", "ggn", "--polish",
               "--polish-iters", "5", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "model.pt" in cap.out
    p = json.loads((out / "results.json").read_text())["polish"]
    model, tokenize, _ = load_hf_checkpoint(checkpoint)
    before = LMObjective(model, file_split(TEXT, 8, 64, tokenize=tokenize).train, dtype=torch.float64)
    assert before.value(before.theta0) == pytest.approx(p["loss_before"], rel=1e-6)
    missing, unexpected = model.load_state_dict(torch.load(out / "model.pt", weights_only=True), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the token embedding, saved once
    after = LMObjective(model, file_split(TEXT, 8, 64, tokenize=tokenize).train, dtype=torch.float64)
    assert after.value(after.theta0) == pytest.approx(p["loss_after"], rel=1e-6) and p["moved"] > 0


def _bpe_tokenizer(vocab_size):
    import tokenizers

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train([str(TEXT)], tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["[UNK]"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="[UNK]")


class _Boom:
    """Unpickling this runs a command: a weights file must never be unpickled as objects."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("case", ["no-config", "wrong-shape", "small-vocab", "context", "missing", "masked-lm",
                                  "tokenizer-past-vocab", "extra-weight", "pickled-objects", "tokenizer-class"])
def test_bad_checkpoints_give_one_line_and_no_output(checkpoint, tmp_path, capsys, case):
    d = tmp_path / "ckpt"
    context = "8"
    if case == "extra-weight":  # transformers drops a weight the model lacks with only a log line
        from safetensors.torch import load_file, save_file

        d.mkdir()
        (d / "config.json").write_text((checkpoint / "config.json").read_text())
        save_file({**load_file(checkpoint / "model.safetensors"), "bogus.weight": torch.zeros(3)},
                  d / "model.safetensors", metadata={"format": "pt"})
    elif case == "pickled-objects":
        d.mkdir()
        (d / "config.json").write_text((checkpoint / "config.json").read_text())
        torch.save({"x": _Boom(tmp_path / "ran")}, d / "pytorch_model.bin")
    elif case == "tokenizer-class":
        _tiny_gpt2().save_pretrained(d)
        (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "NoSuchTokenizer"}))
    if case == "masked-lm":  # loads as BertLMHeadModel, but bidirectional: its logits see the next token
        cfg = transformers.BertConfig(vocab_size=256, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=64)
        torch.manual_seed(0)
        transformers.BertForMaskedLM(cfg).save_pretrained(d)
    elif case == "tokenizer-past-vocab":  # a 400-token tokenizer beside a 256-entry model
        _tiny_gpt2(vocab=256).save_pretrained(d)
        _bpe_tokenizer(400).save_pretrained(d)
    if case == "no-config":
        d.mkdir()
        (d / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    elif case == "wrong-shape":
        d.mkdir()
        (d / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
        cfg = json.loads((checkpoint / "config.json").read_text())
        cfg["n_embd"] = 32
        (d / "config.json").write_text(json.dumps(cfg))
    elif case == "small-vocab":
        _tiny_gpt2(vocab=100).save_pretrained(d)
    elif case == "context":
        d = checkpoint
        context = "32"  # the model's n_positions is 16
    out = tmp_path / "out"
    capsys.readouterr()  # the set-up's own output (save_pretrained's progress bar)
    rc = main(["analyze", "--model", f"hf:{d}", "--text", str(TEXT), "--context", context, "--tokens", "64",
               "--lambdas", "0.1", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    err = [ln for ln in lines if ln.startswith("ridgelens: error:")]  # after progress lines, if any
    assert rc == 2 and len(err) == 1 and lines[-1] == err[0], lines
    assert {"no-config": "config.json", "wrong-shape": "cannot be loaded", "small-vocab": "fewer than the 256",
            "context": "larger than the model's context of 16", "missing": "does not exist",
            "masked-lm": "the model is not causal", "tokenizer-past-vocab": "outside the model's input embedding of 256",
            "extra-weight": "weights the model does not have: bogus.weight",
            "pickled-objects": "never executed", "tokenizer-class": "names tokenizer_class 'NoSuchTokenizer'"
            }[case] in err[0]
    assert "weights_only` set to `False" not in err[0] and not (tmp_path / "ran").exists()
    assert not out.exists()


def test_built_in_lm_options_are_refused_for_a_checkpoint(checkpoint, tmp_path, capsys):
    """--layers/--width/--heads/--steps shape and train the built-in LM; a checkpoint was silently run without them."""
    rc = main(["analyze", "--model", f"hf:{checkpoint}", "--text", str(TEXT), "--context", "8", "--tokens", "64",
               "--layers", "3", "--steps", "2", "--lambdas", "0.1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--layers, --steps are for --model lm" in err[0], err
    assert not (tmp_path / "o").exists()


def test_python_loader_errors_are_typed(tmp_path):
    with pytest.raises(DataError, match=r"config\.json"):
        load_hf_checkpoint(tmp_path)


@pytest.mark.slow
def test_torchrun_hf_checkpoint_writes_what_one_process_writes(checkpoint, tmp_path):
    """``torchrun --nproc-per-node 2 -m ridgelens analyze --model hf:DIR``: the numbers of one process, to 1e-6.

    The 8 windows of 8 tokens go 2 to a batch (--max-logits 4096), 2 batches per rank.
    """
    from test_distributed import one_and_torchrun
    from test_distributed_lm import numbers

    args = ["analyze", "--model", f"hf:{checkpoint}", "--text", str(TEXT), "--context", "8", "--tokens", "64",
            "--lambdas", "0.1,1", "--k", "2", "--subsamples", "0", "--max-logits", "4096"]
    out, _ = one_and_torchrun(args, tmp_path)
    assert out.count("wrote ") == 1 and "(2 ranks)" in out  # rank 0 alone prints and writes
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert (a["n_ranks"], b["n_ranks"], a["n_batches"], b["n_batches"]) == (1, 2, 4, 2)
    assert b["model"]["kind"] == "hugging face causal LM" and a["n_tokens"] == b["n_tokens"] == 64
    assert a["n_val_tokens"] == b["n_val_tokens"] == 16  # one batch, held whole by each rank: counted once
    x, y = numbers(a), numbers(b)
    assert set(x) == set(y)
    # The smallest Ritz values come from Lanczos runs stopped at a loose tolerance in the Gauss-Newton
    # matrix's near-null cluster: each is compared within its residual ‖Cq − σq‖ (as for the byte LM).
    low = {k: k.replace("_eigenvalues.", "_residuals.") for k in x if ".most_negative_eigenvalues." in k}
    low["analyses.ggn.min_eigenvalue"] = "curvature.ggn.most_negative_residuals.0"  # the same Ritz value
    top = max(abs(v) for k, v in x.items() if ".top_eigenvalues." in k)
    for key, res in low.items():
        # within the two residuals, plus the products' rounding (the ranks sum their batches in another order),
        # which scales with the operator's norm: the largest top eigenvalue found
        assert abs(x[key] - y[key]) <= x[res] + y[res] + 1e-12 * top, (key, x[key], y[key], x[res], y[res])
    compared = [k for k in x if not k.endswith("seconds") and k not in ("n_ranks", "n_batches")
                and k not in low and "_residuals." not in k and not k.startswith("settings.")]
    assert len(low) >= 2 and len(compared) > 20
    for key in compared:
        assert np.isnan(x[key]) == np.isnan(y[key]), key
        if not np.isnan(x[key]):
            assert abs(x[key] - y[key]) <= 1e-6 * max(abs(x[key]), 1e-12), (key, x[key], y[key])
