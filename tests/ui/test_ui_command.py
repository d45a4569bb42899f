"""`ragtune ui`: starts Streamlit on loopback with telemetry off; bad options are one clean error line."""

from __future__ import annotations

import argparse

from ragtune.cli import main
from ragtune.commands.ui import streamlit_command


def test_the_app_is_served_on_loopback_headless_without_usage_statistics_file_watching_or_tracebacks():
    cmd = streamlit_command(argparse.Namespace(address="127.0.0.1", port=8600))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("ui/app.py")
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags == {"--server.address": "127.0.0.1", "--server.port": "8600", "--server.headless": "true",
                     "--browser.gatherUsageStats": "false", "--server.maxUploadSize": "25",
                     "--server.fileWatcherType": "none", "--client.showErrorDetails": "type"}


def test_an_impossible_port_is_one_error_line(capsys):
    assert main(["ui", "--port", "70000"]) == 2  # ConfigError's exit code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port must be between 1 and 65535" in err
