"""Integer arguments: what every entry point accepts (ints and integer scalars, as Python's
``range`` does) and refuses (bools, floats, strings, arrays of several elements)."""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix import assertions, ddpm, loss, noise, packing, parallel, rng, seeding, tokenizers
from ferrofix._args import (
    choice,
    flag,
    integer,
    number,
    optional_flag,
    optional_integer,
    optional_number,
)
from ferrofix.errors import ConfigError
from hypothesis import given
from hypothesis import strategies as st

INTEGER_FORMS = [
    pytest.param(lambda n: n, id="int"),
    pytest.param(np.int64, id="np.int64"),
    pytest.param(np.int32, id="np.int32"),
    pytest.param(np.uint16, id="np.uint16"),
    pytest.param(lambda n: np.array(n), id="0-d array"),
]

NOT_INTEGERS = [
    pytest.param(True, id="True"),
    pytest.param(np.True_, id="np.True_"),
    pytest.param(np.array(True), id="0-d bool array"),
    pytest.param(10.0, id="integral float"),
    pytest.param(np.float64(10.5), id="np.float64"),
    pytest.param(np.array(10.5), id="0-d float array"),
    pytest.param(np.array([10, 11]), id="two-element array"),
    pytest.param("10", id="str"),
    pytest.param([10], id="list"),
    pytest.param(None, id="None"),
]


@pytest.mark.parametrize("form", INTEGER_FORMS)
def test_integer_scalars_read_as_the_int_they_stand_for(form) -> None:
    value = integer("n", form(7), low=0, high=10)
    assert value == 7
    assert type(value) is int


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_everything_else_is_refused_with_the_allowed_range(value) -> None:
    with pytest.raises(ConfigError) as raised:
        integer("capacity", value, low=1, high=2**31 - 1)
    assert str(raised.value) == f"capacity: must be an integer in [1, 2**31 - 1], got {value!r}"


def test_torch_bools_and_fractional_tensors_are_refused_and_integer_tensors_read() -> None:
    torch = pytest.importorskip("torch")
    assert integer("n", torch.tensor(7)) == 7
    for value in (torch.tensor(True), torch.tensor(10.5), torch.tensor([1, 2])):
        with pytest.raises(ConfigError, match="n: must be an integer, got tensor"):
            integer("n", value)


@pytest.mark.parametrize(
    ("low", "high", "value", "message"),
    [
        (1, None, 0, "seq_len: must be an integer >= 1, got 0"),
        (None, 4, 5, "seq_len: must be an integer <= 4, got 5"),
        (
            0,
            2**63 - 1,
            2**63,
            "seq_len: must be an integer in [0, 2**63 - 1], got 9223372036854775808",
        ),
        (-(2**63), 2**63 - 1, -(2**63) - 1, "seq_len: must be an integer in [-2**63, 2**63 - 1]"),
        (1, 4, np.int64(9), "seq_len: must be an integer in [1, 4], got 9"),
    ],
)
def test_values_out_of_range_name_the_bounds(low, high, value, message) -> None:
    with pytest.raises(ConfigError) as raised:
        integer("seq_len", value, low=low, high=high)
    assert str(raised.value).startswith(message)


@given(st.integers(min_value=-(2**70), max_value=2**70), st.integers(-50, 50), st.integers(0, 100))
def test_a_value_passes_exactly_when_it_lies_within_the_bounds(value, low, width) -> None:
    high = low + width
    if low <= value <= high:
        assert integer("n", value, low=low, high=high) == value
    else:
        with pytest.raises(ConfigError):
            integer("n", value, low=low, high=high)


def test_optional_integer_passes_none_and_says_none_is_allowed() -> None:
    assert optional_integer("max_length", None, low=1) is None
    assert optional_integer("max_length", np.int64(3), low=1) == 3
    for bad, shown in ((0, "0"), (True, "True"), (2.0, "2.0")):
        with pytest.raises(ConfigError) as raised:
            optional_integer("max_length", bad, low=1)
        assert str(raised.value) == f"max_length: must be an integer >= 1 or None, got {shown}"


# Every public integer argument, called with a plain int and with a numpy integer scalar:
# the results must be equal (a size computed with numpy, e.g. lengths.max(), is common).
TOKENIZER = tokenizers.SimpleTokenizer.for_numbers(10)
IDS = np.array([[7, 8, 9, 10]])
PROBS = np.array([0.5])
LOGITS = np.linspace(-1.0, 1.0, 3 * 6, dtype=np.float32).reshape(1, 3, 6)
LABELS = np.array([[1, 2, 3]])

ENTRY_POINTS = [
    pytest.param(lambda n: packing.pack([3, 2, 3], n(10)).bins(), id="pack capacity"),
    pytest.param(
        lambda n: packing.pack_sequences([[1, 2]], n(4), pad_token_id=n(0))["input_ids"],
        id="pack_sequences capacity, pad_token_id",
    ),
    pytest.param(
        lambda n: packing.make_attention_mask(n(2), n(3), kind="random", seed=n(5)),
        id="make_attention_mask",
    ),
    pytest.param(
        lambda n: TOKENIZER(["1 2"], padding="max_length", max_length=n(4))["input_ids"],
        id="tokenizer max_length",
    ),
    pytest.param(
        lambda n: TOKENIZER.batch_encode(["1 2 3"], pad_to_multiple_of=n(4))[0],
        id="batch_encode pad_to_multiple_of",
    ),
    pytest.param(
        lambda n: TOKENIZER.pad([{"input_ids": [7]}], padding="max_length", max_length=n(3))[
            "input_ids"
        ],
        id="tokenizer pad max_length",
    ),
    pytest.param(
        lambda n: tokenizers.SimpleTokenizer.for_numbers(n(5)).vocab_size, id="for_numbers"
    ),
    pytest.param(
        lambda n: noise.mask_tokens(IDS, PROBS, mask_token_id=n(2), seed=n(3)),
        id="mask_tokens mask_token_id, seed",
    ),
    pytest.param(lambda n: noise.LogLinearSchedule().sample_t(n(4), seed=n(1)), id="sample_t"),
    pytest.param(lambda n: ddpm.DDPMSchedule(num_timesteps=n(10)).set_timesteps(n(5)), id="ddpm"),
    pytest.param(
        lambda n: loss.causal_lm_loss(LOGITS, LABELS, ignore_index=n(2)), id="loss ignore_index"
    ),
    pytest.param(lambda n: repr(loss.ChunkedCausalLoss(chunk_size=n(64))), id="ChunkedCausalLoss"),
    pytest.param(lambda n: rng.integers(0, n(10), (3,), n(7)), id="rng integers"),
]


@pytest.mark.parametrize("call", ENTRY_POINTS)
def test_public_integer_arguments_take_numpy_integers(call) -> None:
    expected = call(int)
    got = call(np.int64)
    if isinstance(expected, tuple):
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_array_equal(g, e)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        pytest.param(lambda: packing.pack([3], np.True_), "capacity", id="pack"),
        pytest.param(lambda: TOKENIZER(["1"], max_length=np.float64(4)), "max_length", id="tok"),
        pytest.param(lambda: noise.mask_tokens(IDS, PROBS, mask_token_id=True), "mask_token_id"),
        pytest.param(lambda: ddpm.DDPMSchedule(num_timesteps=np.array(10.0)), "num_timesteps"),
        pytest.param(lambda: loss.ChunkedCausalLoss(chunk_size=64.0), "chunk_size", id="chunk"),
        pytest.param(lambda: parallel.set_num_threads(np.True_), "n", id="set_num_threads"),
        pytest.param(lambda: seeding.reseed(np.array([1, 2])), "seed", id="reseed"),
    ],
)
def test_public_integer_arguments_refuse_bools_and_floats(call, name) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: must be an integer"):
        call()


REAL_FORMS = [
    pytest.param(lambda x: x, id="float"),
    pytest.param(np.float32, id="np.float32"),
    pytest.param(np.float16, id="np.float16"),
    pytest.param(lambda x: np.array(x), id="0-d array"),
]

NOT_NUMBERS = [
    pytest.param(True, id="True"),
    pytest.param(np.True_, id="np.True_"),
    pytest.param(np.array(True), id="0-d bool array"),
    pytest.param("0.5", id="str"),
    pytest.param(np.array("0.5"), id="0-d str array"),
    pytest.param(0.5 + 0j, id="complex"),
    pytest.param(np.array(0.5 + 0j), id="0-d complex array"),
    pytest.param(np.array([0.5]), id="one-element 1-d array"),
    pytest.param(None, id="None"),
]


@pytest.mark.parametrize("form", REAL_FORMS)
def test_real_scalars_read_as_the_float_they_stand_for(form) -> None:
    value = number("ratio", form(0.5))
    assert value == 0.5
    assert type(value) is float


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_bools_strings_and_complex_numbers_are_not_numbers(value) -> None:
    with pytest.raises(ConfigError) as raised:
        number("ratio", value, "a number in [0, 1)")
    assert str(raised.value) == f"ratio: must be a number in [0, 1), got {value!r}"


def test_torch_scalars_are_numbers_unless_bool_or_complex() -> None:
    torch = pytest.importorskip("torch")
    assert number("x", torch.tensor(0.5, dtype=torch.bfloat16)) == 0.5
    assert number("x", torch.tensor(3)) == 3.0
    for value in (torch.tensor(True), torch.tensor(1 + 0j), torch.tensor([0.5, 1.0])):
        with pytest.raises(ConfigError, match="x: must be a number, got tensor"):
            number("x", value)


def test_a_meta_tensor_scalar_is_refused_naming_the_argument() -> None:
    torch = pytest.importorskip("torch")
    for read, allowed in ((number, "a number"), (integer, "an integer")):
        with pytest.raises(ConfigError, match=f"^z: must be {allowed}, got a tensor torch cannot"):
            read("z", torch.tensor(1, device="meta"))


def test_a_number_whose_conversion_fails_is_refused_naming_the_argument() -> None:
    class Unreadable(float):
        def __float__(self) -> float:
            raise RuntimeError("no value yet")

    with pytest.raises(ConfigError, match=r"^z: must be a number, got Unreadable that cannot"):
        number("z", Unreadable(1.0))


def test_optional_number_passes_none_and_says_none_is_allowed() -> None:
    assert optional_number("softcap", None) is None
    with pytest.raises(ConfigError, match=r"^softcap: must be a number or None, got True$"):
        optional_number("softcap", True)


# Every public number argument, called with a Python float and with a numpy float32 of the
# same value: a tolerance or rate computed with numpy must give the same result.
FLOAT_ENTRY_POINTS = [
    pytest.param(
        lambda x: packing.make_attention_mask(2, 8, kind="random", ratio=x(0.25), seed=1),
        id="make_attention_mask ratio",
    ),
    pytest.param(lambda x: noise.LogLinearSchedule().sample_t(4, eps=x(0.5), seed=1), id="eps"),
    pytest.param(lambda x: noise.LinearSchedule(sigma_min=x(0.5)).sigma_min, id="sigma_min"),
    pytest.param(lambda x: ddpm.DDPMSchedule(10, beta_end=x(0.5)).betas, id="beta_end"),
    pytest.param(
        lambda x: loss.causal_lm_loss(LOGITS, LABELS, z_loss_scale=x(0.5), label_smoothing=x(0.5)),
        id="loss options",
    ),
    pytest.param(
        lambda x: assertions.compare_tensors(np.ones(3), np.zeros(3), rms_eps=x(0.5)).scale,
        id="rms_eps",
    ),
    pytest.param(
        lambda x: assertions.assert_close(
            np.ones(3), np.ones(3), rms_abs=x(0.5), compare_factor=x(0.5)
        ),
        id="assert_close tolerances",
    ),
]


@pytest.mark.parametrize("call", FLOAT_ENTRY_POINTS)
def test_public_number_arguments_take_numpy_floats(call) -> None:
    np.testing.assert_array_equal(call(np.float32), call(float))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        pytest.param(lambda: loss.causal_lm_loss(LOGITS, LABELS, z_loss_scale=np.True_), "z_loss"),
        pytest.param(lambda: assertions.assert_close(1.0, 1.0, rms_abs=True), "rms_abs"),
        pytest.param(lambda: assertions.compare_tensors(1.0, 1.0, rms_eps=True), "rms_eps"),
        pytest.param(lambda: ddpm.DDPMSchedule(beta_start="0.1"), "beta_start"),
        pytest.param(lambda: noise.LogLinearSchedule(eps="0.1"), "eps"),
    ],
)
def test_public_number_arguments_refuse_bools_and_strings(call, name) -> None:
    with pytest.raises(ConfigError, match=f"^{name}"):
        call()


def test_a_choice_returns_the_option_a_string_subclass_names() -> None:
    class Padding(str):
        pass

    option = choice("padding", Padding("longest"), (False, True, "longest"))
    assert option == "longest"
    assert type(option) is str


def test_a_choice_reads_a_numpy_bool_as_the_bool_it_is() -> None:
    assert choice("padding", np.True_, (False, True, "longest")) is True
    assert choice("padding", np.False_, (False, True, "longest")) is False


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1, id="1 is not True"),
        pytest.param(0, id="0 is not False"),
        pytest.param(["longest"], id="unhashable"),
        pytest.param("LONGEST", id="case matters"),
        pytest.param(b"longest", id="bytes"),
    ],
)
def test_a_choice_refuses_lookalikes_naming_the_options(value) -> None:
    with pytest.raises(ConfigError) as raised:
        choice("padding", value, (False, True, "longest", None))
    assert str(raised.value) == (
        f"padding: must be one of False, True, 'longest', None, got {value!r}"
    )


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_])
def test_a_flag_is_a_python_or_numpy_bool(value) -> None:
    got = flag("shift", value)
    assert got is bool(value)


@pytest.mark.parametrize("value", [1, 0, "yes", "", None, 1.0, np.int64(1), [True]])
def test_a_flag_is_never_read_by_its_truthiness(value) -> None:
    with pytest.raises(ConfigError) as raised:
        flag("shift", value)
    assert str(raised.value) == f"shift: must be True or False, got {value!r}"


def test_an_optional_flag_reads_none_as_the_default() -> None:
    assert optional_flag("return_attention_mask", None, True) is True
    assert optional_flag("return_attention_mask", None, False) is False
    assert optional_flag("return_attention_mask", np.False_, True) is False
    with pytest.raises(ConfigError) as raised:
        optional_flag("return_attention_mask", 0, True)
    assert str(raised.value) == "return_attention_mask: must be True, False or None, got 0"


# Every public flag, called with a Python bool and a numpy bool (the same result), and
# with 1 (refused, naming the flag).
FLAG_ENTRY_POINTS = [
    pytest.param(lambda b: TOKENIZER.encode("1 2", add_special_tokens=b), "add_special_tokens"),
    pytest.param(lambda b: TOKENIZER.encode_array("1", add_special_tokens=b), "add_special_tokens"),
    pytest.param(
        lambda b: TOKENIZER.batch_encode(["1"], 1, truncation=b)[0], "truncation", id="truncate"
    ),
    pytest.param(
        lambda b: TOKENIZER(["1"], return_special_tokens_mask=b, return_length=b),
        "return_special_tokens_mask",
    ),
    pytest.param(lambda b: TOKENIZER(["1"], return_attention_mask=b), "return_attention_mask"),
    pytest.param(lambda b: TOKENIZER.pad([{"input_ids": [7]}], return_attention_mask=b), "return"),
    pytest.param(lambda b: TOKENIZER.decode([1, 7], skip_special_tokens=b), "skip_special_tokens"),
    pytest.param(
        lambda b: TOKENIZER.batch_decode([[1, 7]], skip_special_tokens=b), "skip_special_tokens"
    ),
    pytest.param(
        lambda b: TOKENIZER.convert_ids_to_tokens([1, 7], skip_special_tokens=b),
        "skip_special_tokens",
    ),
    pytest.param(
        lambda b: TOKENIZER.get_special_tokens_mask([1, 7], already_has_special_tokens=b),
        "already_has_special_tokens",
    ),
    pytest.param(
        lambda b: tokenizers.SimpleTokenizer(["a"], unk_fallback=b).encode("a"), "unk_fallback"
    ),
    pytest.param(lambda b: loss.causal_lm_loss(LOGITS, LABELS, shift=b), "shift"),
    pytest.param(lambda b: loss.causal_lm_loss(LOGITS, LABELS, return_lse=b), "return_lse"),
    pytest.param(
        lambda b: loss.causal_lm_loss_and_grad(LOGITS.copy(), LABELS, in_place=b), "in_place"
    ),
    pytest.param(lambda b: packing.block_attention_mask(np.array([[0, 0, 1]]), causal=b), "causal"),
    pytest.param(lambda b: noise.LogLinearSchedule().sample_t(4, antithetic=b, seed=1), "anti"),
]


@pytest.mark.parametrize(("call", "name"), FLAG_ENTRY_POINTS)
def test_public_flags_take_numpy_bools_and_refuse_ints(call, name) -> None:
    for value in (True, False):
        expected = call(value)
        np.testing.assert_equal(call(np.bool_(value)), expected)
    with pytest.raises(ConfigError, match=f"^{name}"):
        call(1)
