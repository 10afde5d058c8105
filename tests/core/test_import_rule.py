"""core/ must stay UI-free: importing it (and running a job) loads neither textual nor rich."""
import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_core_does_not_load_textual_or_rich():
    code = (
        "import sys\n"
        "import recipe_tui.core, recipe_tui.core.config, recipe_tui.core.events, recipe_tui.core.jobs\n"
        "import recipe_tui.core.trainer, recipe_tui.core.models, recipe_tui.core.data, recipe_tui.core.rundir\n"
        "from recipe_tui.core.checks import registry\n"
        "registry()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported UI modules: {out.stdout.strip()}"


def test_headless_cli_does_not_load_textual():
    code = (
        "import sys\n"
        "from recipe_tui.tui import cli\n"
        "cli.main(['list'])\n"
        "print('LOADED' if any(m.split('.')[0] == 'textual' for m in sys.modules) else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "CLEAN"
