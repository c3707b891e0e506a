"""The Jupyter kernel of the running environment, whatever kernels are registered globally.

A kernelspec named `python3` may point at any Python on the machine (papermill's and nbval's users
trip on this); ours names the running interpreter by its absolute path and lives inside the
environment (`sys.prefix`), so the venv always runs its own code.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from analysis.errors import StudyError

KERNEL_NAME = "prepost-compendium"
DISPLAY_NAME = "Python (prepost compendium)"


def _spec_dir() -> Path:
    return Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def ensure_kernel() -> str:
    """Register (or repair) the kernelspec for this interpreter; return its name.

    Stops, naming the package and how to reinstall it, when the kernel's command line cannot run:
    without ipykernel every notebook failed with "Kernel died before replying to kernel_info".
    """
    if importlib.util.find_spec("ipykernel_launcher") is None:
        raise StudyError(
            f"the Jupyter kernel cannot start: the package ipykernel is not installed in {sys.prefix} "
            f"(`{sys.executable} -m ipykernel_launcher` is the kernel's command line); reinstall it with "
            f"`{sys.executable} -m pip install --no-deps --require-hashes -r requirements.lock` (what `make venv` "
            f"installs), or `{sys.executable} -m pip install ipykernel`")
    spec = {
        # The kernel application's own log (not the cells' output, which the notebook keeps) says at every
        # start that TCP is unencrypted and at every shutdown that it caught the interrupt: noise on our
        # progress lines. A kernel that dies is reported by the runner from nbclient's error.
        "argv": [
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=CRITICAL"
        ],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }
    target = _spec_dir() / "kernel.json"
    try:
        if not target.is_file() or json.loads(target.read_text()) != spec:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(spec, indent=1) + "\n")
    except OSError as error:
        raise StudyError(f"cannot register kernel '{KERNEL_NAME}' in {target.parent}: {error}; "
                         f"kernels available: {available_kernels()}") from None
    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        raise StudyError(f"kernel '{KERNEL_NAME}' not found after registering it in {target.parent}; "
                         f"kernels available: {available_kernels()}") from None
    return KERNEL_NAME


def available_kernels() -> str:
    specs = KernelSpecManager().find_kernel_specs()
    return ", ".join(f"{name} ({path})" for name, path in sorted(specs.items())) or "none"
