#!/usr/bin/env bash
# setup_torch.sh - PyTorch (CPU) in its own venv, .venv-torch/ in the repo root,
# for the side-by-side training benchmark (bench/torch_train.py) and the plot
# of the uptraining experiment (bench/plot_uptraining.py, matplotlib). Never
# part of gqa's dependencies.
#
# PyPI only. The Linux x86-64 torch wheel on PyPI is built with CUDA and
# depends on several GB of nvidia-* / cuda-* wheels that a CPU run does not
# use. We tried torch --no-deps plus its pure-Python dependencies (filelock,
# typing-extensions, sympy/mpmath, networkx, jinja2/markupsafe, fsspec), but
# `import torch` 2.15.0 then fails (libcufile.so.0: cannot open shared object
# file: torch._C links the CUDA libraries), so the full install it is: about
# 5.5 GB in .venv-torch. GQA_TORCH_NODEPS=1 tries the small install first.
#
# Idempotent: nothing is done when the venv already imports the pinned torch
# and matplotlib. Environment:
#   PYTHON=/path/to/python3   interpreter that creates the venv (default: python3)
#   GQA_TORCH_NODEPS=1        try torch --no-deps first (falls back to the full install)
set -euo pipefail

TORCH_VERSION=2.15.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'setup_torch: %s\n' "$*"; }
die() { printf 'setup_torch: error: %s\n' "$*" >&2; exit 1; }

venv=$root/.venv-torch
py=$venv/bin/python

# A CPU training step: the check that torch works without the CUDA wheels.
check() {
    "$py" - "$TORCH_VERSION" <<'EOF'
import sys
import torch, matplotlib
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
m = torch.nn.Linear(8, 8)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 8)), torch.tensor([0, 1, 2, 3]))
loss.backward()
opt.step()
print(f"torch {torch.__version__} (CPU threads {torch.get_num_threads()}), "
      f"matplotlib {matplotlib.__version__}")
EOF
}

if [ -x "$py" ] && check >/dev/null 2>&1; then
    say "already installed: $(check)"
    exit 0
fi

python=${PYTHON:-python3}
if [ ! -x "$py" ]; then
    say "creating .venv-torch with $("$python" --version 2>&1)"
    "$python" -m venv "$venv" || die "'$python -m venv' failed (Debian: apt-get install python3-venv)"
fi
pip=("$py" -m pip install --disable-pip-version-check -q)

if [ "${GQA_TORCH_NODEPS:-0}" = 1 ]; then
    say "torch $TORCH_VERSION without the nvidia-* wheels (--no-deps)"
    "${pip[@]}" --no-deps "torch==$TORCH_VERSION"
    "${pip[@]}" filelock typing-extensions sympy mpmath networkx jinja2 markupsafe fsspec \
        numpy matplotlib
    if check 2>/dev/null; then
        say "ok"
        exit 0
    fi
    say "torch does not work without its dependencies; installing them all"
fi
"${pip[@]}" "torch==$TORCH_VERSION" matplotlib numpy
check || die "torch $TORCH_VERSION does not run a CPU training step"
say "ok"
