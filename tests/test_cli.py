"""The `ragtune` CLI: help everywhere, index add/info/files/remove, search --json, clean errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ragtune.cli import build_parser, main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_on_every_command(capsys):
    parser = build_parser()
    groups = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    assert {"index", "search", "advise"} <= set(groups.choices)
    for argv in (["--help"], ["index", "--help"], ["index", "add", "--help"], ["search", "--help"], ["index", "info", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert "usage: ragtune" in capsys.readouterr().out


def test_index_add_info_search_json(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    code, out, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64", "--json")
    assert code == 0
    report = json.loads(out)
    assert len(report["added"]) == 3 and report["index"]["chunks"] > 0
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", idx, "--k", "2", "--json")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "hybrid"
    top = data["hits"][0]
    assert top["source"].endswith("lora.md") and top["section"] == "QLoRA"
    assert {"dense", "bm25", "rrf"} <= set(top["scores"]) and top["ranks"]["bm25"] == 1
    code, out, _ = _run(capsys, "search", "distillation", "--index", idx, "--filter", "file_type=html", "--mode", "bm25")
    assert code == 0 and "quant.html" in out and "lora.md" not in out
    code, out, _ = _run(capsys, "index", "info", "--index", idx, "--json")
    info = json.loads(out)
    assert info["files"] == 3 and info["embedder"]["model_id"] == "hash-64"
    code, out, _ = _run(capsys, "index", "files", "--index", idx)
    assert "lora.md" in out


def test_readd_and_prune_from_cli(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")
    (docs_dir / "rag.txt").unlink()
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--prune")
    assert code == 0
    code, out, _ = _run(capsys, "index", "files", "--index", idx, "--json")
    assert not any(k.endswith("rag.txt") for k in json.loads(out))


def test_bad_files_are_named_and_exit_code_reflects_them(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    (docs_dir / "empty.txt").write_bytes(b"")
    code, out, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")
    assert code == 0 and "empty.txt: empty file (0 bytes)" in err and "3 added" in out
    code, out, err = _run(capsys, "index", "add", str(docs_dir / "empty.txt"), "--index", idx, "--strict")
    assert code == 1 and "empty.txt" in err


def test_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "notes.md").write_text("mine")
    proc = subprocess.run(
        [sys.executable, "-m", "ragtune.cli", "search", "x", "--index", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("ragtune: error:") and "not a ragtune index" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ragtune.cli", "search", "x", "--index", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "ragtune index add" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_filter_syntax(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")
    code, _, err = _run(capsys, "search", "x", "--index", idx, "--filter", "nokeyvalue")
    assert code == 2 and "expected KEY=VALUE" in err


def test_import_is_light():
    """`import ragtune` and `--help` must not pull torch, transformers, faiss or unstructured."""
    code = "import sys, ragtune, ragtune.cli; ragtune.cli.build_parser(); print(sorted(m for m in ('torch','transformers','faiss','unstructured','sentence_transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ask_and_search_refuse_a_missing_index_the_same_way(capsys, tmp_path):
    missing = str(tmp_path / "none")
    errors = []
    for argv in (["search", "LoRA", "--index", missing], ["ask", "What is LoRA?", "--index", missing,
                                                           "--generator", "extractive"]):
        code, out, err = _run(capsys, *argv)
        assert code == 1 and not out
        assert err.startswith("ragtune: error:") and err.count("\n") == 1 and "ragtune index add" in err
        errors.append(err)
    assert errors[0] == errors[1]


def test_human_search_output_explains_rank_and_retrievers(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", idx, "--k", "2")
    assert code == 0
    first = out.splitlines()[:2]
    assert first[0].startswith("[1] ") and "lora.md" in first[0]
    assert re.search(r"score \d\.\d{4} \(rrf\); dense: rank \d, cosine -?\d\.\d{3}; bm25: rank 1, score", first[1])


def test_search_shows_a_copied_passage_once_and_names_the_copy(capsys, tmp_path, docs_dir):
    import shutil

    shutil.copy(docs_dir / "lora.md", docs_dir / "lora-copy.md")
    idx = str(tmp_path / "idx")
    assert _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")[0] == 0
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", idx, "--k", "3")
    assert code == 0
    lines = out.splitlines()
    ranked = [line for line in lines if re.match(r"\[\d\] ", line)]
    assert len(ranked) == 3
    also = [line.strip() for line in lines if line.strip().startswith("also in: ")]
    assert also and all(line.endswith(("lora.md", "lora-copy.md")) for line in also)
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", idx, "--k", "3", "--json")
    hits = json.loads(out)["hits"]
    assert len({h["text"] for h in hits}) == len(hits) == 3 and any(h["also_in"] for h in hits)
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", idx, "--k", "3", "--json", "--all-copies")
    hits = json.loads(out)["hits"]
    assert len({h["text"] for h in hits}) < len(hits) and not any(h["also_in"] for h in hits)


def test_index_add_refuses_a_max_file_size_that_is_not_positive(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    for value in ("0", "-1"):
        code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64",
                            "--max-file-mb", value)
        assert code == 2 and "--max-file-mb must be a positive number" in err and "Traceback" not in err
    assert not (tmp_path / "idx").exists()  # refused before the index was created


def test_search_per_source_returns_one_hit_per_file(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    assert _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")[0] == 0
    code, out, _ = _run(capsys, "search", "model weights training", "--index", idx, "--k", "10", "--json")
    sources = [h["source"] for h in json.loads(out)["hits"]]
    assert code == 0 and len(sources) > len(set(sources))  # without it, a file holds several of the hits
    code, out, _ = _run(capsys, "search", "model weights training", "--index", idx, "--k", "10", "--per-source", "1",
                        "--json")
    per_file = [h["source"] for h in json.loads(out)["hits"]]
    assert code == 0 and len(per_file) == len(set(per_file)) == len(set(sources))
    assert per_file[0] == sources[0]  # each file at its best chunk
    code, _, err = _run(capsys, "search", "x", "--index", idx, "--per-source", "0")
    assert code == 2 and "--per-source must be a positive number" in err


def test_an_include_glob_that_matches_nothing_is_named(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64",
                        "--include", "*.nomatch")
    assert code == 0 and "matched --include *.nomatch" in err
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--include", "*.md")
    assert code == 0 and "matched --include" not in err


def test_a_filter_key_no_chunk_has_is_named_instead_of_a_bare_no_results(capsys, tmp_path, docs_dir):
    idx = str(tmp_path / "idx")
    assert _run(capsys, "index", "add", str(docs_dir), "--index", idx, "--embedder", "hash-64")[0] == 0
    code, out, err = _run(capsys, "search", "QLoRA", "--index", idx, "--filter", "fle_type=md")
    assert code == 0 and "no results" in out
    assert "no chunk has the metadata key 'fle_type'" in err and "file_type" in err
    assert "Warning" not in err  # the note only, not also the API's Python warning
    code, out, err = _run(capsys, "search", "QLoRA", "--index", idx, "--filter", "file_type=md")
    assert code == 0 and "lora.md" in out and "metadata key" not in err


def test_the_usual_filter_keys_are_not_checked_by_scanning_every_chunk():
    from ragtune.commands.common import note_unknown_filter_keys

    class Index:
        def metadata_keys(self):
            raise AssertionError("scanned every chunk's metadata for keys every index has")

    note_unknown_filter_keys(Index(), {"file_type": "pdf", "source": "*.md", "page": 3, "section": "LoRA"})


def test_an_interrupted_training_run_says_how_to_resume(monkeypatch, capsys, tmp_path):
    from ragtune.commands import tune as tune_cmd

    def run_train(args):  # Ctrl-C during `tune run`
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_cmd, "run_train", run_train)
    assert main(["tune", "run", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run")]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err


def test_chunk_tokens_zero_is_refused_and_one_past_the_window_is_named(capsys, tmp_path, docs_dir):
    idx = tmp_path / "idx"
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--embedder", "hash-64",
                        "--chunk-tokens", "0")
    assert code != 0 and "max_tokens: 0 is too small" in err and not idx.exists()
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--embedder", "hash-64",
                        "--chunk-tokens", "100000")
    assert code == 0 and "--chunk-tokens 100000 is above the embedding model's window" in err


def test_verify_json_says_not_ok_on_stdout_when_the_index_is_damaged(capsys, tmp_path, docs_dir):
    idx = tmp_path / "idx"
    assert _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--embedder", "hash-64")[0] == 0
    code, out, _ = _run(capsys, "index", "verify", "--index", str(idx), "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    (vectors,) = idx.glob("gen-*/vectors.faiss")
    vectors.write_bytes(vectors.read_bytes()[:-8])  # damaged
    code, out, err = _run(capsys, "index", "verify", "--index", str(idx), "--json")
    verdict = json.loads(out)
    assert code == 1 and verdict["ok"] is False and "vectors.faiss" in verdict["error"] and "ragtune: error:" in err


def test_adding_a_folder_without_documents_says_no_index_was_created(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "image.bin").write_bytes(b"\x00\x01")
    idx = tmp_path / "idx"
    code, _, err = _run(capsys, "index", "add", str(empty), "--index", str(idx), "--embedder", "hash-64")
    assert code == 0 and "nothing was indexed, so no index was created" in err
