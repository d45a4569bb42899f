from ragtune.progress import emit, terminal_progress


def test_emit_calls_the_callback_with_stage_counts_and_message():
    seen = []
    emit(lambda *a: seen.append(a), "embed", 2, 5, "2 of 5 files")
    assert seen == [("embed", 2, 5, "2 of 5 files")]


def test_emit_survives_a_failing_callback_and_none():
    def broken(*_):
        raise RuntimeError("display gone")

    emit(broken, "train", 1, None)  # must not raise
    emit(None, "train", 1, None)


def test_terminal_progress_draws_one_bar_per_stage_when_forced(capsys):
    with terminal_progress(force=True) as bar:
        bar("parse", 1, 3, "a.pdf")
        bar("parse", 3, 3, "")
        bar("embed", 10, 10, "")
        assert set(bar._bars) == {"parse", "embed"}
        assert bar._bars["parse"].n == 3
    assert "parse" in capsys.readouterr().err


def test_terminal_progress_is_silent_when_disabled(capsys):
    bar = terminal_progress(force=False)
    bar("parse", 1, 3, "")
    bar.close()
    assert capsys.readouterr().err == ""
