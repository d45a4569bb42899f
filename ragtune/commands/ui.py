"""``ragtune ui``: start the web app (Streamlit) on this machine.

    ragtune ui                       # http://127.0.0.1:8501, index .ragtune/index
    ragtune ui --port 8600 --index my-index --generator local

The app listens on 127.0.0.1 only unless --address says otherwise; Streamlit's usage statistics are off.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ragtune.commands.common import add_index_option
from ragtune.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("ui", help="start the web app (chat, documents, advisor, fine-tune, evaluate)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_index_option(p)
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("RAGTUNE_UI_PORT", "8501")),
                   help="port (env RAGTUNE_UI_PORT; default 8501)")
    p.add_argument("--generator", choices=["extractive", "local"], default=None,
                   help="the generator selected at start (env RAGTUNE_UI_GENERATOR; default extractive)")
    p.set_defaults(func=cmd_ui)


def streamlit_command(args) -> list[str]:
    from ragtune.ui import app_path

    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.maxUploadSize", "25",  # MB; the page enforces its own limit with a clearer message
        # A served app, not a development loop: no watching of every imported source file (a change would
        # unload modules under a running session), and an uncaught exception shows its type and a generic
        # line in the page, never a traceback (that goes to the console).
        "--server.fileWatcherType", "none", "--client.showErrorDetails", "type",
    ]


def cmd_ui(args) -> int:
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("the web app needs streamlit: pip install 'ragtune[ui]' (make run installs it)")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    env = dict(os.environ)
    if args.index is not None:
        env["RAGTUNE_INDEX"] = str(args.index)
    if args.generator:
        env["RAGTUNE_UI_GENERATOR"] = args.generator
    print(f"ragtune UI: http://{args.address}:{args.port}  (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(streamlit_command(args), env=env)
    except KeyboardInterrupt:
        return 0
