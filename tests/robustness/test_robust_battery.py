"""The issue-14 battery, kept as a suite: bad files, bad queries, kills, disk full, concurrency.

Every test asserts the battery's target: zero trials that lost, corrupted or crashed anything. The
sizes keep the suite to a few minutes; ``bench/robustness.py`` runs the same battery bigger.
"""

from __future__ import annotations

import pytest

import battery


def _assert_clean(tally: battery.Tally) -> None:
    assert tally.trials > 0
    assert tally.ok, "\n".join([tally.line(), *tally.notes])


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path):
    _assert_clean(battery.bad_files(tmp_path))


def test_a_thousand_tiny_files_in_one_add(tmp_path):
    # 10,000 run in bench/robustness.py; the code path is the same (about 45 ms of parsing per file).
    _assert_clean(battery.tiny_files(tmp_path, 1000))


def test_bad_queries_are_answered_or_refused_with_a_message(tmp_path):
    index = battery.new_index(tmp_path / "index")
    _assert_clean(battery.bad_queries(index))


def test_sigkill_at_random_moments_of_an_update_never_damages_the_index(tmp_path):
    tally = battery.kill_trials(tmp_path, n=20, seed=14)
    assert tally.trials >= 20
    _assert_clean(tally)


def test_disk_full_on_a_small_tmpfs_leaves_the_previous_generation(tmp_path):
    tally = battery.disk_full_tmpfs(tmp_path)
    if tally is None:
        pytest.skip("cannot mount a tmpfs here (needs root); test_disk_full_injected covers ENOSPC")
    _assert_clean(tally)


def test_disk_full_injected_at_each_write_step(tmp_path):
    _assert_clean(battery.disk_full_injected(tmp_path))


def test_readers_sharing_one_index_while_a_writer_publishes(tmp_path):
    _assert_clean(battery.concurrent_readers(tmp_path, rounds=8))


def test_two_writers_at_once(tmp_path):
    _assert_clean(battery.two_writers(tmp_path, trials=2))
