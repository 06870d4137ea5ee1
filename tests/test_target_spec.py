"""--target NAME=SPEC: parsing, refusals, and the spec's round trips (pickle, hash, text)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.errors import UsageError
from qeval.targets import TargetSpec, parse_assignments, parse_target, targets_from_precisions, with_options

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
precisions = st.sampled_from(["fp32", "bf16", "int8", "int4", "gptq-int4", "nf4"])
models = st.from_regex(r"[a-z][a-z0-9_\-/]{0,15}", fullmatch=True)
hosts = st.from_regex(r"(127\.0\.0\.1|localhost|api\.example\.com)(:[1-9][0-9]{1,4})?", fullmatch=True)
served = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,20}", fullmatch=True))


@given(names, models, precisions)
def test_a_model_target_reads_back_from_its_own_text(name, model, precision):
    spec = parse_target(f"{name}={model}@{precision}")
    assert spec == TargetSpec(name=name, kind="model", model=model, precision=precision)
    assert parse_target(str(spec)) == spec
    assert not spec.remote


@given(names, hosts, served)
def test_an_endpoint_target_reads_back_from_its_own_text(name, host, model):
    text = f"{name}=openai:http://{host}/v1" + (f"#{model}" if model else "")
    spec = parse_target(text)
    assert (spec.kind, spec.url, spec.served_model) == ("openai", f"http://{host}/v1", model)
    assert parse_target(str(spec)) == spec
    assert spec.remote
    # a cell spec names its target: it must travel to another machine and key a cache
    assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(pickle.loads(pickle.dumps(spec)))


def test_a_trailing_slash_is_dropped():
    assert parse_target("s=openai:http://127.0.0.1:8000/v1/").url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fp32", "NAME=SPEC"),
        ("=smollm2-135m@fp32", "NAME=SPEC"),
        ("bad name=smollm2-135m@fp32", "not usable"),
        ("a=smollm2-135m", "names no precision"),
        ("a=smollm2-135m@int3", "int3"),
        ("a=openai:ftp://host/v1", "not an http(s) URL"),
        ("a=openai:http://127.0.0.1:8000", "ending in /v1"),
        ("a=openai:http://user:sk-secret@127.0.0.1:8000/v1", "--api-key-env"),
    ],
)
def test_bad_targets_say_what_and_how(text, says):
    with pytest.raises(UsageError, match=r"(?s).*" + __import__("re").escape(says)):
        parse_target(text)


def test_a_url_with_credentials_never_echoes_them():
    with pytest.raises(UsageError) as err:
        parse_target("a=openai:http://user:sk-secret123@127.0.0.1:8000/v1")
    assert "sk-secret123" not in str(err.value)


def test_model_and_precisions_are_shorthand_for_targets():
    assert targets_from_precisions("m", ["fp32", "int4"]) == (
        TargetSpec("fp32", "model", "m", "fp32"), TargetSpec("int4", "model", "m", "int4"))


def test_key_env_and_revision_attach_to_the_named_targets():
    specs = [parse_target("inc=openai:http://127.0.0.1:1/v1"), parse_target("can=m@fp32")]
    out = with_options(specs, parse_assignments(["inc=MY_KEY"], "--api-key-env", "VAR"),
                       parse_assignments(["inc=v3"], "--target-revision", "REV"))
    assert out[0].api_key_env == "MY_KEY" and out[0].revision == "v3"
    assert out[1].api_key_env is None
    assert "MY_KEY" not in str(out[0])  # the spec text never carries key material


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (["nope=VAR"], "not a target here"),
        (["can=VAR"], "only an openai: endpoint"),
        (["inc=sk-abcdefghijklmnop"], "NAME of an environment variable"),
    ],
)
def test_key_env_refusals(keys, says):
    specs = [parse_target("inc=openai:http://127.0.0.1:1/v1"), parse_target("can=m@fp32")]
    with pytest.raises(UsageError, match=says) as err:
        with_options(specs, parse_assignments(keys, "--api-key-env", "VAR"), {})
    assert "abcdefghijklmnop" not in str(err.value)


def test_a_name_given_twice_is_refused():
    specs = [parse_target("a=m@fp32"), parse_target("a=m@int8")]
    with pytest.raises(UsageError, match="more than once"):
        with_options(specs, {}, {})
