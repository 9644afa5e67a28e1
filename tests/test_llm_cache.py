"""The persistent response cache: stable keys, atomic writes, unreadable entries are misses."""

from __future__ import annotations

import json

from procure_trl.perturb.llm.cache import ResponseCache, cache_key

MSGS = [{"role": "user", "content": "x"}]


def test_key_depends_on_model_messages_and_params_not_on_dict_order():
    base = cache_key("m", MSGS, {"temperature": 1.0, "max_tokens": 10})
    assert base == cache_key("m", MSGS, {"max_tokens": 10, "temperature": 1.0})
    assert base != cache_key("m2", MSGS, {"temperature": 1.0, "max_tokens": 10})
    assert base != cache_key("m", [{"role": "user", "content": "y"}], {"temperature": 1.0, "max_tokens": 10})
    assert base != cache_key("m", MSGS, {"temperature": 0.5, "max_tokens": 10})


def test_roundtrip_and_no_temporary_files_left(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache_key("m", MSGS, {})
    assert cache.get(key) is None
    cache.put(key, {"text": "answer", "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    assert cache.get(key)["text"] == "answer"
    assert len(cache) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.json"]


def test_corrupt_or_foreign_entry_is_a_miss_and_is_overwritten(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache_key("m", MSGS, {})
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"text": "trunc')  # what a non-atomic writer killed mid-write would leave
    assert cache.get(key) is None
    path.write_text(json.dumps({"text": "other", "key": "f" * 64}))  # an entry stored under another key
    assert cache.get(key) is None
    cache.put(key, {"text": "fresh"})
    assert cache.get(key)["text"] == "fresh"


def test_default_directory_follows_environment(tmp_path, monkeypatch):
    from procure_trl.perturb.llm.cache import default_cache_dir

    monkeypatch.setenv("PROCURE_LLM_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROCURE_LLM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "procure_trl" / "llm"
