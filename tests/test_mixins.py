"""Model-family mixins and model fixtures: a working tiny LM passes every mixin test, broken
ones fail with messages naming the fixture to look at."""

from __future__ import annotations

import pytest
import torch
from ferrofix.fixtures.models import BrokenModel, NaNModel
from ferrofix.mixins import BaseCollatorTests, BaseLossTests, BaseModelTests

TINY_LM = """
import pytest
import torch
from ferrofix.mixins import BaseCollatorTests, BaseLossTests, BaseModelTests


class TinyLM(torch.nn.Module):
    def __init__(self, num_embeddings, d_model, **_):
        super().__init__()
        self.embed = torch.nn.Embedding(num_embeddings, d_model)
        self.head = torch.nn.Linear(d_model, num_embeddings)

    def forward(self, ids, mask=None):
        hidden = self.embed(ids)
        if mask is not None:
            hidden = hidden * mask[..., None]
        return self.head(hidden)

    def get_named_params_for_weight_decay(self):
        return [(n, p) for n, p in self.named_parameters() if n.endswith("weight")]

    def get_named_params_for_no_weight_decay(self):
        return {n: p for n, p in self.named_parameters() if n.endswith("bias")}


@pytest.fixture
def model(tiny_model_kwargs):
    torch.manual_seed(0)
    return TinyLM(**tiny_model_kwargs)


@pytest.fixture
def run_forward(model):
    def run(batch_size=2, seq_len=16, partial_mask=False):
        ids = torch.randint(0, model.embed.num_embeddings, (batch_size, seq_len))
        mask = torch.ones(batch_size, seq_len)
        if partial_mask:
            mask[:, seq_len // 2 :] = 0
        return model(ids, mask)
    return run


class LMLoss:
    def __init__(self, model):
        self.model = model

    def __call__(self, batch):
        logits = self.model(batch["input_ids"])
        targets = batch["target_ids"].flatten()
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets)
        return {"loss": loss}


@pytest.fixture
def loss_fn(model):
    return LMLoss(model)


@pytest.fixture
def batch(simple_tokenizer):
    ids = simple_tokenizer(["1 2 3", "4 5 6"], return_tensors="pt")["input_ids"]
    return {"input_ids": ids, "target_ids": ids.roll(-1, 1)}


class Collator:
    block_size = 8

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, texts):
        out = self.tokenizer(
            texts, padding=True, truncation=True, max_length=8, return_tensors="pt"
        )
        return {**out, "target_ids": out["input_ids"].clone()}


@pytest.fixture
def collator(simple_tokenizer):
    return Collator(simple_tokenizer)


@pytest.fixture
def raw_examples():
    return ["1 2 3", "4", "5 6 7 8 9 10 11 12 13"]
"""

PASSING = (
    TINY_LM
    + """
import types

class TestTinyLM(BaseModelTests):
    pass


class TestOutputMapping(BaseModelTests):
    @pytest.fixture
    def run_forward(self, run_forward):
        return lambda **kwargs: {"loss": None, "logits": run_forward(**kwargs)}


class TestOutputObject(BaseModelTests):
    @pytest.fixture
    def run_forward(self, run_forward):
        return lambda **kwargs: types.SimpleNamespace(logits=run_forward(**kwargs))


class TestTinyLMLoss(BaseLossTests):
    pass


class TestCollator(BaseCollatorTests):
    pass
"""
)


def test_a_working_family_passes_every_mixin_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=3 * 4 + 5 + 2)


BROKEN = (
    TINY_LM
    + """
class TestWrongShape(BaseModelTests):
    @pytest.fixture
    def vocab_size(self):
        return 99


class TestDetached(BaseModelTests):
    @pytest.fixture
    def run_forward(self, model):
        def run(batch_size=2, seq_len=16, partial_mask=False):
            with torch.no_grad():
                return model(torch.zeros(batch_size, seq_len, dtype=torch.long))
        return run

    @pytest.fixture
    def model(self, tiny_model_kwargs):
        model = TinyLM(**tiny_model_kwargs)
        model.get_named_params_for_no_weight_decay = lambda: []
        return model


class TestTupleOutput(BaseModelTests):
    @pytest.fixture
    def run_forward(self, run_forward):
        return lambda **kwargs: (run_forward(**kwargs),)


class TestNaNLoss(BaseLossTests):
    @pytest.fixture
    def loss_fn(self, model):
        loss = LMLoss(model)
        return lambda batch: {"loss": loss(batch)["loss"] * float("nan")}


class TestLongCollator(BaseCollatorTests):
    @pytest.fixture
    def collator(self, simple_tokenizer):
        collator = Collator(simple_tokenizer)
        collator.block_size = 2
        return collator
"""
)


def test_broken_families_fail_naming_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BROKEN)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.stdout.fnmatch_lines_random(
        [
            "*run_forward fixture: run_forward() gave logits of shape (2, 16, 57), expected*99)*",
            "*run_forward fixture: the logits do not require grad*",
            "*model fixture: weight-decay groups miss*",
            "*loss_fn fixture: the loss is nan on the batch fixture*",
            "*loss_fn fixture: has no .model to check gradients on*",
            "*collator fixture: sequences of length 8 exceed collator.block_size = 2*",
            "*run_forward fixture: returned tuple, expected the logits (a tensor) or an output*",
        ]
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2 + 2 + 2 + 1 + 3


def test_mixins_are_not_collected_on_their_own() -> None:
    assert BaseModelTests.__test__ is False
    assert BaseLossTests.__test__ is False
    assert BaseCollatorTests.__test__ is False

    class TestMine(BaseModelTests):
        pass

    class Helper(BaseModelTests):
        pass

    assert TestMine.__test__ is True
    assert Helper.__test__ is False


def test_model_fixtures(
    tiny_model_kwargs, small_batch, tiny_model, mock_model, mock_optimizer, mock_scheduler
) -> None:
    assert tiny_model_kwargs == dict(
        num_embeddings=57,
        d_model=32,
        num_layers=1,
        nhead=2,
        dropout=0.0,
        rotary_emb_dim=16,
        max_length=64,
    )
    inputs, labels = small_batch
    assert inputs.shape == (8, 32)
    assert inputs.dtype == torch.float32
    assert labels.shape == (8,)
    assert labels.min() >= 0
    assert labels.max() < 4
    assert tiny_model(inputs).shape == (8, 4)
    assert mock_model(torch.ones(3, 10)).shape == (3, 1)
    optimizer = mock_optimizer(mock_model.parameters())
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 1e-3
    scheduler = mock_scheduler(optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert scheduler.step_size == 10


def test_small_batch_is_the_same_every_time(small_batch) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(small_batch[0], torch.randn(8, 32, generator=generator))


def test_mock_dataset_and_vocab_size(mock_dataset, vocab_size, simple_tokenizer) -> None:
    assert len(mock_dataset) == 10
    features, label = mock_dataset[3]
    assert features.shape == (10,)
    assert int(label) == 1
    assert vocab_size == simple_tokenizer.vocab_size == 57


def test_broken_and_nan_models() -> None:
    with pytest.raises(RuntimeError, match=r"BrokenModel\.forward always fails"):
        BrokenModel()(torch.ones(1))
    assert type(BrokenModel()).__name__ == "BrokenModel"
    out = NaNModel()(torch.ones(2, 10))
    assert out.shape == (2, 1)
    assert torch.isnan(out).all()


class TestModelSizesFollowAnOverriddenTokenizer:
    @pytest.fixture
    def simple_tokenizer(self):
        from ferrofix.tokenizers import SimpleTokenizer

        return SimpleTokenizer.for_numbers(10)

    def test_vocab_size_and_embeddings(self, tiny_model_kwargs, vocab_size) -> None:
        assert tiny_model_kwargs["num_embeddings"] == vocab_size == 17
